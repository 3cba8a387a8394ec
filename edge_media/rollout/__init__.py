"""Signed audio-model releases on the hub: verify, install, smoke-test, shadow, promote, roll back.

:mod:`.release` (the signed manifest, keys, cohorts), :mod:`.source` (where releases are read), :mod:`.store`
(installed files and the rollout tables), :mod:`.smoke` (the smoke test), :mod:`.manager` (check, install,
rollback, status). The service's shadow run, hot swap and watch are in ``edge_media.service.model_rollout``.
Nothing is imported here: a module that needs only :mod:`.store` (the owner's erasure) does not load the rest.
"""
