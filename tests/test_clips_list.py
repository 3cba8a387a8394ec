"""``edge-media clips list`` on clips the service really recorded: stored in the local store or in S3 (moto over
HTTP), kept as a local copy, or still in the spool because the store is down; text and JSON; filters; bad input."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
from pathlib import Path

import pytest

from edge_media.cli import main
from edge_media.privacy.flags import Flags
from uploader.index import ClipIndex, IndexedObject, insert
from uploader.outbox import Outbox, OutboxItem

from clip_hub import copy_hub, make_media, record_hub

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("list-media"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, media):
    return record_hub(tmp_path_factory.mktemp("list-hub"), media)


def listing(config: Path, capsys, *args: str) -> list[dict]:
    assert main(["clips", "list", "--config", str(config), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_every_stored_clip_with_camera_owner_times_events_and_key(recorded, capsys):
    clips = {c["camera"]: c for c in listing(recorded.config, capsys)}
    assert set(clips) == {"kitchen", "porch"}
    kitchen, porch = clips["kitchen"], clips["porch"]
    assert (kitchen["owner"], porch["owner"]) == ("alice", "bob")
    assert [e["label"] for e in kitchen["events"]] == ["smoke_co_alarm"] and kitchen["events"][0]["score"] > 0.5
    assert 2.0 <= kitchen["events"][0]["start_s"] <= 5.0, "seconds into the clip: ~3 s after a 1 s pre-roll"
    assert [e["label"] for e in porch["events"]] == ["motion"]
    assert (kitchen["audio"], porch["audio"], porch["video"]) == (True, False, True)
    for clip in clips.values():
        assert ISO.fullmatch(clip["start"]) and ISO.fullmatch(clip["end"]) and ISO.fullmatch(clip["retain_until"])
        assert clip["start"] <= clip["end"]
        assert clip["where"] == "stored" and clip["local_copy"] is None
        assert clip["key"] == f"clips/{clip['camera_hash']}/{clip['start'][:10].replace('-', '/')}/" \
                              f"{clip['clip_id']}.mp4"
        assert (recorded.data / "store" / "objects" / clip["key"]).exists(), "the key is where the store has it"


def test_text_is_an_aligned_table_with_the_same_rows(recorded, capsys):
    clips = listing(recorded.config, capsys)
    assert main(["clips", "list", "--config", str(recorded.config)]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["CLIP", "CAMERA", "OWNER", "START", "END", "EVENTS", "WHERE", "KEY"]
    assert [r.split()[0] for r in rows] == [c["clip_id"] for c in clips], "same clips, same (newest-first) order"
    kitchen = next(r for r in rows if " kitchen " in r)
    assert re.search(r"smoke_co_alarm \d\.\d\d", kitchen) and " stored " in kitchen
    assert header.index("EVENTS") == kitchen.index("smoke_co_alarm"), "columns line up"


def test_filters_by_camera_owner_and_limit(recorded, capsys):
    every = listing(recorded.config, capsys)
    assert [c["camera"] for c in listing(recorded.config, capsys, "--camera", "porch")] == ["porch"]
    assert [c["camera"] for c in listing(recorded.config, capsys, "--owner", "alice")] == ["kitchen"]
    assert listing(recorded.config, capsys, "--owner", "bob", "--camera", "kitchen") == []
    assert listing(recorded.config, capsys, "--limit", "1") == every[:1], "the newest"
    assert main(["clips", "list", "--config", str(recorded.config), "--owner", "bob", "--camera", "kitchen"]) == 0
    assert capsys.readouterr().out.strip() == "no clips"


@pytest.mark.parametrize(("args", "message"), [
    (["--camera", "attic"], "--camera: no camera or microphone named 'attic'"),
    (["--owner", "mallory"], "--owner: no owner 'mallory' in this config"),
    (["--limit", "0"], "--limit: must be at least 1"),
])
def test_bad_input_is_one_line_and_exit_2(recorded, capsys, args, message):
    assert main(["clips", "list", "--config", str(recorded.config), *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [captured.err.strip()] and message in captured.err
    assert captured.out == ""


def test_a_kept_local_copy_is_listed_as_stored_with_its_file(media, tmp_path, capsys):
    hub = record_hub(tmp_path, {"porch": media["porch"]}, storage="[storage]\nkeep_local_days = 1\n")
    [clip] = listing(hub.config, capsys)
    assert clip["where"] == "stored" and clip["key"] and Path(clip["local_copy"]).is_file()
    assert [e["label"] for e in clip["events"]] == ["motion"]
    assert main(["clips", "list", "--config", str(hub.config)]) == 0
    assert "stored, local copy" in capsys.readouterr().out


def unreachable_s3(bucket: str = "hub-clips") -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f'[storage]\nbackend = "s3"\n[storage.s3]\nendpoint = "127.0.0.1:{port}"\nbucket = "{bucket}"\n'


def test_clips_not_uploaded_yet_are_listed_from_the_spool_and_can_be_flagged(media, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EDGE_MEDIA_S3_ACCESS_KEY", "key")
    monkeypatch.setenv("EDGE_MEDIA_S3_SECRET_KEY", "secret")
    hub = record_hub(tmp_path, media, storage=unreachable_s3())
    clips = {c["camera"]: c for c in listing(hub.config, capsys)}
    assert {c["where"] for c in clips.values()} == {"spool"} and {c["key"] for c in clips.values()} == {None}
    assert all(Path(c["local_copy"]).is_file() for c in clips.values())
    assert [e["label"] for e in clips["kitchen"]["events"]] == ["smoke_co_alarm"], "events from the spool sidecar"
    assert main(["clips", "list", "--config", str(hub.config)]) == 0
    assert capsys.readouterr().out.count("spool (not uploaded)") == 2
    kitchen = clips["kitchen"]["clip_id"]
    assert main(["feedback", "flag", "--config", str(hub.config), "--clip", kitchen, "--wrong", "smoke_co_alarm"]) == 0
    db = hub.db()
    assert [f.clip_id for f in Flags(db).list_flags()] == [kitchen]
    db.close()


def s3_storage(server, bucket: str) -> str:
    return (f'[storage]\nbackend = "s3"\n[storage.s3]\nendpoint = "{server.endpoint}"\nbucket = "{bucket}"\n'
            f"secure = {str(server.secure).lower()}\n")


def test_s3_clips_list_events_from_the_outbox_then_from_the_stored_sidecar(media, tmp_path, capsys, monkeypatch,
                                                                          s3_server, s3_store):
    monkeypatch.setenv("EDGE_MEDIA_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("EDGE_MEDIA_S3_SECRET_KEY", s3_server.secret_key)
    hub = record_hub(tmp_path, {"kitchen": media["kitchen"]}, storage=s3_storage(s3_server, s3_store.bucket))
    [clip] = listing(hub.config, capsys)
    assert clip["where"] == "stored" and s3_store.stat_object(clip["key"]) is not None
    assert [e["label"] for e in clip["events"]] == ["smoke_co_alarm"]
    # A clip uploaded by a version that did not keep the uploaded sidecar in its outbox row: the events come from
    # the sidecar object in the bucket (the redacted copy, which keeps events).
    with sqlite3.connect(hub.data / "edge-media.db") as conn:
        conn.execute("UPDATE outbox SET sidecar_body = NULL")
    [again] = listing(hub.config, capsys)
    assert again == clip, "the same details, read from the store"
    assert main(["feedback", "flag", "--config", str(hub.config), "--clip", clip["clip_id"], "--wrong",
                 "smoke_co_alarm", "--truth", "siren"]) == 0
    db = hub.db()
    [flag] = Flags(db).list_flags()
    db.close()
    assert (flag.truth, flag.score) == ("siren", pytest.approx(clip["events"][0]["score"], abs=1e-4))


def test_store_down_and_no_local_sidecar_lists_events_as_unknown_and_flagging_fails_at_run_time(
        media, tmp_path, capsys, monkeypatch, restartable_s3):
    server = restartable_s3.info
    server.client().make_bucket("hub-clips")
    monkeypatch.setenv("EDGE_MEDIA_S3_ACCESS_KEY", server.access_key)
    monkeypatch.setenv("EDGE_MEDIA_S3_SECRET_KEY", server.secret_key)
    hub = record_hub(tmp_path, {"kitchen": media["kitchen"]}, storage=s3_storage(server, "hub-clips"))
    with sqlite3.connect(hub.data / "edge-media.db") as conn:
        conn.execute("UPDATE outbox SET sidecar_body = NULL")
    restartable_s3.stop()
    [clip] = listing(hub.config, capsys)
    assert clip["where"] == "stored" and clip["events"] is None and clip["audio"] is None
    assert main(["clips", "list", "--config", str(hub.config)]) == 0
    assert " unknown " in capsys.readouterr().out
    code = main(["feedback", "flag", "--config", str(hub.config), "--clip", clip["clip_id"], "--missed", "siren"])
    err = capsys.readouterr().err
    assert code == 1 and "events cannot be read" in err and len(err.strip().splitlines()) == 1
    db = hub.db()
    assert Flags(db).list_flags() == []
    db.close()


def test_a_camera_removed_from_the_config_still_lists_its_clips_by_hash(recorded, media, tmp_path, capsys):
    hub = copy_hub(recorded, tmp_path, {"kitchen": media["kitchen"]})
    clips = {c["owner"]: c for c in listing(hub.config, capsys)}
    assert clips["alice"]["camera"] == "kitchen" and clips["bob"]["camera"] is None
    assert main(["clips", "list", "--config", str(hub.config)]) == 0
    assert f"(removed {clips['bob']['camera_hash'][:8]})" in capsys.readouterr().out


def test_index_lists_clips_newest_first_with_sidecar_key_and_uploaded_body(db):
    """The repository method under ``clips list``: clip objects only, joined with their sidecar object and the
    sidecar JSON the outbox row kept; filters and limit in SQL."""
    def stored(clip_id: str, owner: str, cam: str, wall_end: str, body: str | None) -> None:
        base = f"clips/{cam}/2026/11/30/{clip_id}"
        Outbox(db).enqueue(OutboxItem(clip_id=clip_id, owner=owner, camera_hash=cam, clip_path=Path("c"),
                                      sidecar_path=Path("s"), clip_key=f"{base}.mp4", sidecar_key=f"{base}.json",
                                      tags={}, plan="basic", size=10, sha256="x", wall_end=wall_end,
                                      retain_until=2e9, sidecar_body=body))  # fmt: skip
        with db.tx() as conn:
            insert(conn, [IndexedObject(f"{base}{ext}", clip_id, owner, cam, kind, "basic", wall_end, 2e9, 10, None,
                                        None, 1.0) for ext, kind in ((".mp4", "clip"), (".json", "sidecar"))])

    stored("a", "alice", "h1", "2026-11-30T10:00:00.000Z", '{"events": []}')
    stored("b", "bob", "h2", "2026-11-30T12:00:00.000Z", None)
    stored("c", "alice", "h3", "2026-11-30T11:00:00.000Z", '{"x": 1}')
    index = ClipIndex(db)
    assert [c.clip_id for c in index.list_clips()] == ["b", "c", "a"], "newest recording first; sidecars not listed"
    first = index.list_clips(limit=1)[0]
    assert (first.key, first.sidecar_key, first.sidecar_body) == ("clips/h2/2026/11/30/b.mp4",
                                                                   "clips/h2/2026/11/30/b.json", None)
    assert [c.clip_id for c in index.list_clips(owner="alice")] == ["c", "a"]
    assert [c.clip_id for c in index.list_clips(camera_hashes=["h1", "h2"], limit=5)] == ["b", "a"]
    assert [c.sidecar_body for c in index.list_clips(clip_id="a")] == ['{"events": []}']
    assert index.list_clips(owner="alice", camera_hashes=["h2"]) == []
