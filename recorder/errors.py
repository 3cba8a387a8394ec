"""The recorder's one error base. ``recorder`` must not import ``edge_media`` (a layer never reaches up), so
it has its own; ``edge_media.errors.domain_errors()`` lists it so the CLI reports it as one line."""


class RecorderError(Exception):
    """Base of every error the recorder raises on purpose. ``str()`` names the problem in one line."""
