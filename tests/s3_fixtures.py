"""A real S3 server for tests: ``moto_server`` as a subprocess on a loopback port, or an external server.

Set ``EDGE_MEDIA_TEST_S3_ENDPOINT`` (host:port), ``EDGE_MEDIA_TEST_S3_ACCESS_KEY`` and
``EDGE_MEDIA_TEST_S3_SECRET_KEY`` (and ``EDGE_MEDIA_TEST_S3_SECURE=1`` for TLS) to run the same tests against
e.g. a MinIO. Fixtures:

* ``s3_server`` (session): where the server is, as an ``S3Server``.
* ``s3_store`` (function): an ``S3Store`` on a fresh bucket, emptied and removed afterwards.
* ``restartable_s3`` (function): a private ``MotoServer`` a test may ``stop()`` and ``start()`` again on the
  same port (moto keeps its state in memory, so a restarted server is empty). Skipped with an external server.
* ``MotoServer(env=...)`` can also be started by hand, e.g. with ``INITIAL_NO_AUTH_ACTION_COUNT=0`` so that
  moto checks credentials (it accepts any by default).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from minio.deleteobjects import DeleteObject

from edge_media.tools.devserver import MOTO_ACCESS_KEY, MOTO_SECRET_KEY, MotoServer, S3Server, free_port  # noqa: F401
from uploader.s3_store import S3Store

ENV_ENDPOINT = "EDGE_MEDIA_TEST_S3_ENDPOINT"
ENV_ACCESS_KEY = "EDGE_MEDIA_TEST_S3_ACCESS_KEY"
ENV_SECRET_KEY = "EDGE_MEDIA_TEST_S3_SECRET_KEY"
ENV_SECURE = "EDGE_MEDIA_TEST_S3_SECURE"


def _external_server() -> S3Server | None:
    endpoint = os.environ.get(ENV_ENDPOINT)
    if not endpoint:
        return None
    access_key, secret_key = os.environ.get(ENV_ACCESS_KEY, ""), os.environ.get(ENV_SECRET_KEY, "")
    if not access_key or not secret_key:
        pytest.fail(f"{ENV_ENDPOINT} is set but {ENV_ACCESS_KEY} / {ENV_SECRET_KEY} are not", pytrace=False)
    secure = os.environ.get(ENV_SECURE, "0").lower() in ("1", "true", "yes")
    return S3Server(endpoint, access_key, secret_key, secure=secure, external=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    external = _external_server()
    if external is not None:
        yield external
        return
    server = MotoServer().start()
    try:
        yield server.info
    finally:
        server.close()


def empty_bucket(server: S3Server, bucket: str) -> None:
    """Remove every object of ``bucket`` and the bucket itself (ignores a bucket already gone)."""
    client = server.client()
    if not client.bucket_exists(bucket):
        return
    names = [DeleteObject(obj.object_name) for obj in client.list_objects(bucket, recursive=True)]
    for error in client.remove_objects(bucket, names):
        raise AssertionError(f"cleanup of {bucket} failed: {error}")
    client.remove_bucket(bucket)


@pytest.fixture
def s3_store(s3_server: S3Server) -> Iterator[S3Store]:
    store = s3_server.store()
    yield store
    empty_bucket(s3_server, store.bucket)


@pytest.fixture
def restartable_s3(s3_server: S3Server) -> Iterator[MotoServer]:
    if s3_server.external:
        pytest.skip("needs a moto_server it can stop and restart (an external S3 server is configured)")
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.close()
