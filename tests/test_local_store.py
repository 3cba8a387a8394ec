"""uploader.LocalStore against the ObjectStore contract (S3 semantics), plus its crash safety."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from uploader import LocalStore, ObjectInfo, ObjectStore, StoreError
from uploader.store import validate_key, validate_tags


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_is_an_object_store(store: LocalStore) -> None:
    assert isinstance(store, ObjectStore)


def test_round_trip_with_tags_metadata_and_checksum(store: LocalStore, tmp_path: Path) -> None:
    data = b"clip bytes " * 100_000  # > 1 chunk
    src = tmp_path / "clip.mp4"
    src.write_bytes(data)
    before = datetime.now(UTC)
    info = store.put_object(
        "cam/2024/clip.mp4",
        src,
        content_type="video/mp4",
        metadata={"camera": "front", "clip-id": "c1"},
        tags={"plan": "basic", "retain-until": "2024-01-08T00:00:00Z"},
    )
    assert isinstance(info, ObjectInfo)
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.last_modified >= before and info.last_modified.tzinfo is not None
    assert info.tags == {"plan": "basic", "retain-until": "2024-01-08T00:00:00Z"}

    assert store.get_object("cam/2024/clip.mp4") == data
    stat = store.stat_object("cam/2024/clip.mp4")
    assert (stat.size, stat.etag, stat.sha256, stat.content_type) == (info.size, info.etag, info.sha256, "video/mp4")
    assert stat.metadata == {"camera": "front", "clip-id": "c1"}
    assert stat.tags is None  # like S3's HEAD: tags are fetched separately
    assert store.get_tags("cam/2024/clip.mp4") == info.tags

    dest = tmp_path / "down" / "again.mp4"
    got = store.fget_object("cam/2024/clip.mp4", dest)
    assert dest.read_bytes() == data and got.sha256 == info.sha256
    assert not list(dest.parent.glob(".*part"))


def test_info_is_frozen(store: LocalStore) -> None:
    info = store.put_bytes("k", b"x", metadata={"a": "b"})
    with pytest.raises(AttributeError):
        info.size = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        info.metadata["a"] = "c"  # type: ignore[index]


def test_put_bytes_overwrites(store: LocalStore) -> None:
    store.put_bytes("k", b"one", tags={"a": "1"})
    info = store.put_bytes("k", b"second")
    assert store.get_object("k") == b"second"
    assert info.size == 6 and store.get_tags("k") == {}


def test_missing_key(store: LocalStore, tmp_path: Path) -> None:
    for call in (store.stat_object, store.get_object, store.get_tags):
        with pytest.raises(StoreError) as info:
            call("nope/x")
        assert info.value.code == "NoSuchKey" and info.value.key == "nope/x"
    with pytest.raises(StoreError, match="NoSuchKey"):
        store.fget_object("nope", tmp_path / "d")
    with pytest.raises(StoreError, match="NoSuchKey"):
        store.set_tags("nope", {"a": "b"})


def test_list_by_prefix_sorted(store: LocalStore) -> None:
    for key in ["b/2", "a/1", "a/10", "a/2", "ab", "a/sub/x", "c"]:
        store.put_bytes(key, key.encode(), tags={"k": key.replace("/", "-")})
    assert [o.key for o in store.list_objects()] == ["a/1", "a/10", "a/2", "a/sub/x", "ab", "b/2", "c"]
    assert [o.key for o in store.list_objects("a/")] == ["a/1", "a/10", "a/2", "a/sub/x"]
    assert [o.key for o in store.list_objects("a")] == ["a/1", "a/10", "a/2", "a/sub/x", "ab"]
    assert [o.key for o in store.list_objects("a/1")] == ["a/1", "a/10"]
    assert [o.key for o in store.list_objects("zzz/")] == []
    assert all(o.tags is None for o in store.list_objects())
    assert [dict(o.tags or {}) for o in store.list_objects("b", with_tags=True)] == [{"k": "b-2"}]


def test_remove_batch_including_missing_key(store: LocalStore) -> None:
    for key in ["x/1", "x/2", "y"]:
        store.put_bytes(key, b"d")
    errors = store.remove_objects(["x/1", "never-existed", "y", "../bad"])
    assert [(e.code, e.key) for e in errors] == [("InvalidKey", "../bad")]
    assert [o.key for o in store.list_objects()] == ["x/2"]
    store.remove_objects(["x/2"])
    # Empty directories are pruned, so a key may reuse a former prefix's name.
    store.put_bytes("x", b"now a file")
    assert [o.key for o in store.list_objects()] == ["x"]


def test_set_tags_replaces(store: LocalStore) -> None:
    store.put_bytes("k", b"d", tags={"plan": "basic", "event": "motion"})
    store.set_tags("k", {"plan": "plus"})
    assert store.get_tags("k") == {"plan": "plus"}
    assert store.get_object("k") == b"d"


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "..", "a/./b", "trailing/", "a\x00b", "x" * 1025])
def test_invalid_keys(store: LocalStore, key: str) -> None:
    with pytest.raises(StoreError) as info:
        store.put_bytes(key, b"d")
    assert info.value.code == "InvalidKey"
    assert not list((store.root / "objects").iterdir())


def test_valid_unicode_key() -> None:
    assert validate_key("cam/été/clip 1.mp4") == "cam/été/clip 1.mp4"


@pytest.mark.parametrize(
    "tags",
    [
        {f"k{i}": "v" for i in range(11)},
        {"k" * 129: "v"},
        {"k": "v" * 257},
        {"": "v"},
        {"bad*char": "v"},
        {"k": "semi;colon"},
        {"aws:reserved": "v"},
    ],
)
def test_invalid_tags(store: LocalStore, tags: dict[str, str]) -> None:
    with pytest.raises(StoreError) as info:
        store.put_bytes("k", b"d", tags=tags)
    assert info.value.code == "InvalidTag"
    store.put_bytes("k", b"d")
    with pytest.raises(StoreError, match="InvalidTag"):
        store.set_tags("k", tags)


def test_tag_limits_accept_the_maximum() -> None:
    tags = {f"k{i}": "v" for i in range(10)} | {"k0": "a b+c-d=e.f_g:h/i@j"}
    assert validate_tags(tags) == tags
    assert validate_tags({"k" * 128: "v" * 256})


@pytest.mark.parametrize("metadata", [{"Upper": "v"}, {"k": "non-ascii é"}, {"k": "x" * 3000}])
def test_invalid_metadata(store: LocalStore, metadata: dict[str, str]) -> None:
    with pytest.raises(StoreError, match="InvalidArgument"):
        store.put_bytes("k", b"d", metadata=metadata)


def test_key_conflict_between_object_and_prefix(store: LocalStore) -> None:
    store.put_bytes("a", b"1")
    with pytest.raises(StoreError) as info:
        store.put_bytes("a/b", b"2")
    assert info.value.code == "KeyConflict"
    store.put_bytes("p/q", b"3")
    with pytest.raises(StoreError, match="KeyConflict"):
        store.put_bytes("p", b"4")
    assert [o.key for o in store.list_objects()] == ["a", "p/q"]


def test_leftover_temp_files_are_invisible(store: LocalStore) -> None:
    """A crash mid-write leaves a temp file (and maybe renamed bytes without a record): never listed."""
    store.put_bytes("cam/ok", b"complete")
    (store.root / "tmp" / "deadbeef.part").write_bytes(b"half a cl")
    (store.root / "objects" / "cam" / "orphan").write_bytes(b"renamed but never committed")
    (store.root / "meta" / "cam" / "junk.json.part").write_bytes(b"{")
    assert [o.key for o in store.list_objects()] == ["cam/ok"]
    with pytest.raises(StoreError, match="NoSuchKey"):
        store.stat_object("cam/orphan")
    # Writing the key again commits it normally.
    store.put_bytes("cam/orphan", b"retry")
    assert store.get_object("cam/orphan") == b"retry"


def test_stale_temp_files_removed_on_open(tmp_path: Path) -> None:
    import os

    LocalStore(tmp_path)
    stale, fresh = tmp_path / "tmp" / "old.part", tmp_path / "tmp" / "new.part"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (0, 0))
    LocalStore(tmp_path)
    assert not stale.exists() and fresh.exists()


def test_torn_overwrite_is_detected(store: LocalStore, tmp_path: Path) -> None:
    """Crash between the bytes rename and the record rename of an overwrite: reads refuse, not lie."""
    store.put_bytes("k", b"old")
    (store.root / "objects" / "k").write_bytes(b"new")
    with pytest.raises(StoreError, match="BadDigest"):
        store.get_object("k")
    with pytest.raises(StoreError, match="BadDigest"):
        store.fget_object("k", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_no_temp_files_left_after_writes(store: LocalStore) -> None:
    store.put_bytes("a/b", b"1", tags={"t": "1"})
    store.set_tags("a/b", {"t": "2"})
    store.remove_objects(["a/b"])
    assert list((store.root / "tmp").iterdir()) == []


def test_concurrent_writers_sharing_directories(store: LocalStore) -> None:
    # Threads share prefixes, so directory creation and pruning race with each other's writes.
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                key = f"cam{n % 3}/w{n}/{i:03d}"
                store.put_bytes(key, f"{n}-{i}".encode(), tags={"w": str(n)})
                store.set_tags(key, {"w": str(n), "i": str(i)})
                if i % 2:
                    assert store.remove_objects([f"cam{n % 3}/w{n}/{i - 1:03d}"]) == []
        except BaseException as exc:  # surfaced below: an exception in a thread would not fail the test
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    listed = list(store.list_objects(with_tags=True))
    assert len(listed) == 6 * 10
    for info in listed:
        tags = dict(info.tags or {})
        assert store.get_object(info.key) == f"{tags['w']}-{int(tags['i'])}".encode()
