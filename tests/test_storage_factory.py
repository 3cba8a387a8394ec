"""edge_media.storage.build_store: the configured backend, and S3 credentials from env vars or a file."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from edge_media.config import parse_config
from edge_media.service.storage import StorageConfigError, build_store, resolve_credentials
from uploader import LocalStore
from uploader.s3_store import MIB, S3Store

from s3_fixtures import S3Server, empty_bucket

SECRET = "s3cr3t-Value-never-printed"


def s3_config_text(endpoint: str = "127.0.0.1:9000", extra: str = "", bucket: str = "clips-test") -> str:
    return (
        '[service]\ndata_dir = "/tmp/edge-media-unused"\n[storage]\nbackend = "s3"\n'
        f'[storage.s3]\nendpoint = "{endpoint}"\nbucket = "{bucket}"\npart_size_mb = 8\n{extra}'
    )


def test_local_backend(tmp_path: Path) -> None:
    config = parse_config(f'[service]\ndata_dir = "{tmp_path}"\n')
    store = build_store(config)
    assert isinstance(store, LocalStore) and store.root == tmp_path / "store"


def test_s3_from_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_KEY", "AKIDHUB")
    monkeypatch.setenv("HUB_SECRET", SECRET)
    config = parse_config(s3_config_text(extra='access_key_env = "HUB_KEY"\nsecret_key_env = "HUB_SECRET"\n'))
    store = build_store(config)
    assert isinstance(store, S3Store)
    assert (store.endpoint, store.bucket, store.region) == ("127.0.0.1:9000", "clips-test", "us-east-1")
    assert store.part_size == 8 * MIB and store.create_bucket
    assert store.secure is False  # loopback: plain HTTP unless secure = true
    assert SECRET not in repr(store)


def test_tls_on_for_remote_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_MEDIA_S3_ACCESS_KEY", "AKID")
    monkeypatch.setenv("EDGE_MEDIA_S3_SECRET_KEY", SECRET)
    store = build_store(parse_config(s3_config_text("s3.example.net:443")))
    assert isinstance(store, S3Store) and store.secure is True


def test_missing_env_vars_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_MEDIA_S3_ACCESS_KEY", raising=False)
    monkeypatch.setenv("EDGE_MEDIA_S3_SECRET_KEY", SECRET)
    with pytest.raises(StorageConfigError) as info:
        build_store(parse_config(s3_config_text()))
    message = str(info.value)
    assert "EDGE_MEDIA_S3_ACCESS_KEY" in message and "credentials_file" in message
    assert "EDGE_MEDIA_S3_SECRET_KEY" not in message and SECRET not in message


@pytest.mark.parametrize(
    "content",
    [
        f'access_key = "AKIDFILE"\nsecret_key = "{SECRET}"\n',
        f"# hub credentials\n\nACCESS_KEY=AKIDFILE\nSECRET_KEY='{SECRET}'\n",
    ],
)
def test_s3_from_credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    monkeypatch.setenv("EDGE_MEDIA_S3_ACCESS_KEY", "from-env-not-used")
    monkeypatch.setenv("EDGE_MEDIA_S3_SECRET_KEY", "from-env-not-used")
    path = tmp_path / "s3.credentials"
    path.write_text(content)
    path.chmod(0o600)
    s3 = parse_config(s3_config_text(extra=f'credentials_file = "{path}"\n')).storage.s3
    assert s3 is not None
    assert resolve_credentials(s3) == ("AKIDFILE", SECRET)
    assert isinstance(build_store(parse_config(s3_config_text(extra=f'credentials_file = "{path}"\n'))), S3Store)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('access_key = "AKID"\n', "lacks secret_key"),
        (f"{SECRET}\n", "line 1: expected name = value"),
        (f"access_key = AKID\nsecret = {SECRET}\n", "line 2: unknown name"),
        ('access_key = "AKID"\nsecret_key = ""\n', "lacks secret_key"),
    ],
)
def test_bad_credentials_file_never_prints_the_secret(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "s3.credentials"
    path.write_text(content)
    s3 = parse_config(s3_config_text(extra=f'credentials_file = "{path}"\n')).storage.s3
    assert s3 is not None
    with pytest.raises(StorageConfigError) as info:
        resolve_credentials(s3)
    assert expected in str(info.value) and str(path) in str(info.value) and SECRET not in str(info.value)


def test_missing_credentials_file(tmp_path: Path) -> None:
    s3 = parse_config(s3_config_text(extra=f'credentials_file = "{tmp_path}/nope"\n')).storage.s3
    assert s3 is not None
    with pytest.raises(StorageConfigError, match="cannot read S3 credentials_file .*nope"):
        resolve_credentials(s3)


def test_world_readable_credentials_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s3.credentials"
    path.write_text(f"access_key=AKID\nsecret_key={SECRET}\n")
    path.chmod(0o644)
    s3 = parse_config(s3_config_text(extra=f'credentials_file = "{path}"\n')).storage.s3
    assert s3 is not None
    with caplog.at_level(logging.WARNING):
        resolve_credentials(s3)
    assert "chmod 600" in caplog.text and SECRET not in caplog.text


def test_built_store_talks_to_the_server(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_MEDIA_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("EDGE_MEDIA_S3_SECRET_KEY", s3_server.secret_key)
    secure = "true" if s3_server.secure else "false"
    bucket = f"edge-media-factory-{uuid.uuid4().hex[:12]}"
    store = build_store(parse_config(s3_config_text(s3_server.endpoint, f"secure = {secure}\n", bucket)))
    try:
        store.put_bytes("factory/k", b"hello", tags={"kind": "clip"})
        assert store.get_object("factory/k") == b"hello"
    finally:
        empty_bucket(s3_server, bucket)
