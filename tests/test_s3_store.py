"""uploader.S3Store against a real S3 server over HTTP (moto_server, or an external one): no mocks."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from uploader import ObjectInfo, ObjectStore, StoreError
from uploader.s3_store import MIB, S3Store, is_permanent

from s3_fixtures import MOTO_ACCESS_KEY, MOTO_SECRET_KEY, MotoServer, S3Server, empty_bucket

TAGS = {"plan": "basic", "retain-until": "2024-01-08T00:00:00Z", "event": "motion person", "kind": "clip"}


def test_is_an_object_store(s3_store: S3Store) -> None:
    assert isinstance(s3_store, ObjectStore)


def test_round_trip_with_tags_metadata_and_checksum(s3_store: S3Store, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    src = tmp_path / "clip.mp4"
    src.write_bytes(data)
    before = datetime.now(UTC) - timedelta(seconds=2)  # server clock granularity is 1 s
    meta = {"camera-hash": "ab12", "clip-id": "c1"}
    info = s3_store.put_object("clips/ab12/2024/clip.mp4", src, content_type="video/mp4", metadata=meta, tags=TAGS)
    assert isinstance(info, ObjectInfo)
    assert info.size == len(data) and info.etag == hashlib.md5(data).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.tags == TAGS and info.metadata == meta and info.content_type == "video/mp4"

    assert s3_store.get_object("clips/ab12/2024/clip.mp4") == data
    stat = s3_store.stat_object("clips/ab12/2024/clip.mp4")
    assert (stat.size, stat.etag, stat.sha256, stat.content_type) == (info.size, info.etag, info.sha256, "video/mp4")
    assert stat.metadata == meta  # our checksum header is not part of the user's metadata
    assert stat.tags is None and stat.last_modified >= before and stat.last_modified.tzinfo is not None
    assert s3_store.get_tags("clips/ab12/2024/clip.mp4") == TAGS

    dest = tmp_path / "down" / "again.mp4"
    got = s3_store.fget_object("clips/ab12/2024/clip.mp4", dest)
    assert dest.read_bytes() == data and got.sha256 == info.sha256 and got.metadata == meta
    assert not list(dest.parent.glob(".*part"))


def test_info_is_frozen_and_overwrite_replaces(s3_store: S3Store) -> None:
    info = s3_store.put_bytes("k", b"one", metadata={"a": "b"}, tags={"a": "1"})
    with pytest.raises(AttributeError):
        info.size = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.metadata["a"] = "c"  # type: ignore[index]
    again = s3_store.put_bytes("k", b"second")
    assert s3_store.get_object("k") == b"second" and again.size == 6
    assert s3_store.get_tags("k") == {} and s3_store.stat_object("k").metadata == {}


def test_multipart_upload_is_verified(s3_server: S3Server, tmp_path: Path) -> None:
    store = s3_server.store(part_size=5 * MIB)
    try:
        data = os.urandom(11 * MIB + 123)  # three parts
        src = tmp_path / "big.mp4"
        src.write_bytes(data)
        info = store.put_object("big.mp4", src, content_type="video/mp4", tags={"kind": "clip"})
        assert info.etag.endswith("-3") and info.size == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest() and info.tags == {"kind": "clip"}
        assert store.stat_object("big.mp4").sha256 == info.sha256
        assert store.get_tags("big.mp4") == {"kind": "clip"}
        got = store.fget_object("big.mp4", tmp_path / "back.mp4")
        assert (tmp_path / "back.mp4").read_bytes() == data and got.size == len(data)
    finally:
        empty_bucket(s3_server, store.bucket)


def test_list_by_prefix_sorted_with_tags(s3_store: S3Store) -> None:
    for key in ["b/2", "a/1", "a/10", "a/2", "ab", "a/sub/x", "c"]:
        s3_store.put_bytes(key, key.encode(), tags={"k": key.replace("/", "-")})
    assert [o.key for o in s3_store.list_objects()] == ["a/1", "a/10", "a/2", "a/sub/x", "ab", "b/2", "c"]
    assert [o.key for o in s3_store.list_objects("a/")] == ["a/1", "a/10", "a/2", "a/sub/x"]
    assert [o.key for o in s3_store.list_objects("a")] == ["a/1", "a/10", "a/2", "a/sub/x", "ab"]
    assert [o.key for o in s3_store.list_objects("zzz/")] == []
    assert all(o.tags is None for o in s3_store.list_objects())
    listed = list(s3_store.list_objects("a/1", with_tags=True))
    assert [(o.key, dict(o.tags or {})) for o in listed] == [("a/1", {"k": "a-1"}), ("a/10", {"k": "a-10"})]
    assert listed[0].size == 3 and listed[0].etag == hashlib.md5(b"a/1").hexdigest()


def test_remove_objects_batches_and_ignores_missing_keys(s3_store: S3Store) -> None:
    keys = [f"many/{i:05d}" for i in range(1100)]  # > one DeleteObjects request of 1000
    with ThreadPoolExecutor(8) as pool:  # the store is thread-safe; this only keeps the test quick
        list(pool.map(lambda key: s3_store.put_bytes(key, b"x"), keys))
    s3_store.put_bytes("keep", b"k")
    errors = s3_store.remove_objects([*keys, "never-existed", "../bad"])
    assert [(e.code, e.key) for e in errors] == [("InvalidKey", "../bad")]
    assert [o.key for o in s3_store.list_objects()] == ["keep"]


def test_set_tags_replaces(s3_store: S3Store) -> None:
    s3_store.put_bytes("k", b"d", tags={"plan": "basic", "event": "motion"})
    s3_store.set_tags("k", {"plan": "plus"})
    assert s3_store.get_tags("k") == {"plan": "plus"}
    s3_store.set_tags("k", {})
    assert s3_store.get_tags("k") == {} and s3_store.get_object("k") == b"d"


def test_missing_key(s3_store: S3Store, tmp_path: Path) -> None:
    for call in (s3_store.stat_object, s3_store.get_object, s3_store.get_tags):
        with pytest.raises(StoreError) as info:
            call("nope/x")
        assert info.value.code == "NoSuchKey" and info.value.key == "nope/x"
    with pytest.raises(StoreError, match="NoSuchKey"):
        s3_store.fget_object("nope", tmp_path / "d")
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob(".*part"))
    with pytest.raises(StoreError, match="NoSuchKey"):
        s3_store.set_tags("nope", {"a": "b"})


def test_validation_matches_local_store(s3_store: S3Store) -> None:
    for key in ["", "/abs", "a//b", "a/../b"]:
        with pytest.raises(StoreError) as info:
            s3_store.put_bytes(key, b"d")
        assert info.value.code == "InvalidKey"
    with pytest.raises(StoreError, match="InvalidTag"):
        s3_store.put_bytes("k", b"d", tags={"bad*char": "v"})
    with pytest.raises(StoreError, match="InvalidArgument"):
        s3_store.put_bytes("k", b"d", metadata={"sha256": "mine"})  # reserved for the checksum
    assert list(s3_store.list_objects()) == []


def test_missing_bucket_without_create_is_permanent(s3_server: S3Server) -> None:
    store = s3_server.store(create_bucket=False)
    with pytest.raises(StoreError) as info:
        store.put_bytes("k", b"d")
    assert info.value.code == "NoSuchBucket" and store.bucket in str(info.value) and is_permanent(info.value)


def test_invalid_bucket_name_is_permanent(s3_server: S3Server) -> None:
    with pytest.raises(StoreError) as info:
        s3_server.store("Not_A_Bucket")
    assert info.value.code == "InvalidBucketName" and is_permanent(info.value)


def test_wrong_credentials_are_permanent_and_never_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """moto accepts any credentials unless INITIAL_NO_AUTH_ACTION_COUNT=0 makes it check them against its
    (empty) IAM user list: then every key is unknown."""
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()
    try:
        caplog.set_level(logging.DEBUG)
        store = server.info.store()
        assert MOTO_SECRET_KEY not in repr(store) and MOTO_ACCESS_KEY not in repr(store)
        assert not any(MOTO_SECRET_KEY in str(value) for value in vars(store).values())
        for call in (lambda: store.put_bytes("k", b"d"), lambda: list(store.list_objects())):
            with pytest.raises(StoreError) as info:
                call()
            assert info.value.code == "InvalidAccessKeyId" and is_permanent(info.value)
            assert MOTO_SECRET_KEY not in str(info.value) and MOTO_ACCESS_KEY not in str(info.value)
        assert MOTO_SECRET_KEY not in caplog.text
    finally:
        server.close()


def test_wrong_secret_and_missing_permission_are_permanent() -> None:
    """A real IAM user (made while moto still lets the first 2 requests through unauthenticated): a wrong
    secret gives SignatureDoesNotMatch, the right one without any policy AccessDenied."""
    boto3 = pytest.importorskip("boto3")
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "2"}).start()
    try:
        setup = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        iam = boto3.client("iam", endpoint_url=f"http://{server.endpoint}", **setup)
        iam.create_user(UserName="hub")
        key = iam.create_access_key(UserName="hub")["AccessKey"]
        wrong_secret = "W" * 40
        for secret, code in ((wrong_secret, "SignatureDoesNotMatch"), (key["SecretAccessKey"], "AccessDenied")):
            server_as_hub = S3Server(server.endpoint, key["AccessKeyId"], secret)
            with pytest.raises(StoreError) as info:
                server_as_hub.store().put_bytes("k", b"d")
            assert info.value.code == code and is_permanent(info.value)
            assert secret not in str(info.value) and secret not in repr(info.value)
    finally:
        server.close()


def test_download_with_a_wrong_checksum_is_bad_digest(s3_server: S3Server, s3_store: S3Store, tmp_path: Path) -> None:
    """An object whose bytes do not match its recorded sha256 (written by another client) is never returned."""
    s3_store.put_bytes("good", b"ok")  # creates the bucket
    client = s3_server.client()
    client.put_object(s3_store.bucket, "bad", io.BytesIO(b"data"), 4, metadata={"sha256": "0" * 64})
    for call in (lambda: s3_store.get_object("bad"), lambda: s3_store.fget_object("bad", tmp_path / "bad")):
        with pytest.raises(StoreError) as info:
            call()
        assert info.value.code == "BadDigest" and info.value.key == "bad"
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".*part"))


def test_server_down_is_a_quick_retryable_error_and_the_store_recovers(restartable_s3: MotoServer) -> None:
    store = restartable_s3.info.store()
    store.put_bytes("before", b"1")
    restartable_s3.stop()
    for call in (lambda: store.put_bytes("during", b"2"), lambda: store.stat_object("before")):
        started = time.monotonic()
        with pytest.raises(StoreError) as info:
            call()
        assert time.monotonic() - started < 15
        assert info.value.code == "ConnectionError" and not is_permanent(info.value)
        assert MOTO_SECRET_KEY not in str(info.value)
    restartable_s3.start()  # same port; moto's state is gone, so the store must re-create its bucket
    store.put_bytes("after", b"3")
    assert store.get_object("after") == b"3"
    assert [o.key for o in store.list_objects()] == ["after"]


def test_is_permanent_classification() -> None:
    for code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "InvalidBucketName"):
        assert is_permanent(StoreError(code))
    for code in ("ConnectionError", "InternalError", "SlowDown", "ServiceUnavailable", "BadDigest"):
        assert not is_permanent(StoreError(code))
