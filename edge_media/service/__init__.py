"""The running hub: process wiring (``hub``), one camera's pipeline (``camera``), microphones, the
model batchers, publishing finished clips to the outbox, spool housekeeping, plan changes, and the
context (store, spool, database, install secret) that the service and the storage commands share.

The only package that wires ``recorder`` and ``uploader`` together. Import the modules directly
(``edge_media.service.hub.Service``): this package imports nothing, so a storage command does not
load the models."""
