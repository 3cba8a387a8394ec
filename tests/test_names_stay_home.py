"""Nothing that leaves the hub names a camera, a microphone or an owner (issue 9, defect 1).

A camera "garden" and an unpaired microphone "hall-mic", both owned by "alice", record through the whole
service into a real S3 server (moto over HTTP); then every object in the bucket is read back — its key, its
bytes, its user metadata and its tags — and searched for the names. The camera's source file itself carries
the names in its container and stream metadata, so a recorder that copied them into the clip would be caught.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import av
import pytest
from test_microphone import FileMic

from edge_media.config import parse_config
from edge_media.service.context import HubContext
from edge_media.service.hub import Service
from edge_media.service.publish import (
    REDACTED_FIELDS,
    UPLOADED_EVENT_FIELDS,
    UPLOADED_FIELDS,
    ClipPublisher,
    upload_sidecar,
)
from recorder import ClipSidecar
from recorder.events import Event
from uploader import LocalStore
from uploader.outbox import Outbox

from audio_fixtures import alarm_scene, encode_audio
from media import MovingBox, VideoSpec, make_video

NAMES = ("garden", "alice", "hall-mic")

CONFIG = """
[service]
data_dir = "{data}"
[recording]
pre_roll_s = 1.0
post_roll_s = 1.0
[owners.alice]
plan = "basic"
[[cameras]]
name = "garden"
owner = "alice"
record_url = "{video}"
[[microphones]]
name = "hall-mic"
owner = "alice"
"""


def tagged_copy(src: Path, dst: Path) -> Path:
    """Remux ``src`` with the names written into the container's and the streams' metadata, as a camera
    or an NVR export may do."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        out.metadata.update({"title": "garden", "comment": "alice's hall-mic", "artist": "alice"})
        streams = {}
        for s in inp.streams:
            streams[s.index] = out.add_stream_from_template(s)
            streams[s.index].metadata.update({"title": "garden", "handler_name": "garden"})
        for pkt in inp.demux():
            if pkt.dts is not None:
                pkt.stream = streams[pkt.stream_index]
                out.mux(pkt)
    assert b"garden" in dst.read_bytes(), "the source really carries the name"
    return dst


def leaks(blob: bytes) -> list[str]:
    low = blob.lower()
    return [n for n in NAMES if n.encode() in low]


def test_no_object_key_tag_metadata_or_byte_in_the_store_names_a_source_or_owner(tmp_path, s3_store):
    """Regression (issue 9, defect 1): the uploaded JSON sidecar carried ``"camera": "garden"`` in plain
    text although no name may leave the hub."""
    plain = make_video(tmp_path / "plain.mp4", VideoSpec(duration_s=6, boxes=[MovingBox(2.0, 3.0)], audio=True))
    video = tagged_copy(plain, tmp_path / "garden.mp4")
    samples, _ = alarm_scene(16000, silence_s=1.0, lead_noise_s=1.0, alarm_s=5.0, tail_s=4.0)
    wav = encode_audio(tmp_path / "hall-mic.flac", samples, 16000)
    svc = Service(parse_config(CONFIG.format(data=tmp_path / "data", video=video)), store=s3_store)
    svc.mics = [svc._mic(svc.config.microphones[0], source=FileMic(wav, realtime=True))]  # the device only
    svc.run()
    try:
        garden, mic = svc.ctx.camera_hash("garden"), svc.ctx.camera_hash("hall-mic")
    finally:
        svc.close()

    objects = list(s3_store.list_objects("", with_tags=True))
    keys = [o.key for o in objects]
    assert len(keys) == 4, f"a camera clip and a microphone clip, each with its sidecar: {keys}"
    assert {k.split("/")[1] for k in keys} == {garden, mic}
    for info in objects:
        stat = s3_store.stat_object(info.key)
        exposed = {"key": info.key.encode(), "body": s3_store.get_object(info.key),
                   "metadata": json.dumps(dict(stat.metadata)).encode(),
                   "tags": json.dumps(s3_store.get_tags(info.key)).encode(),
                   "content-type": stat.content_type.encode()}
        for what, blob in exposed.items():
            assert not leaks(blob), f"{info.key}: its {what} names {leaks(blob)}"
    sidecars = [json.loads(s3_store.get_object(k)) for k in keys if k.endswith(".json")]
    assert {s["camera_hash"] for s in sidecars} == {garden, mic} and not any("camera" in s for s in sidecars)
    assert {e["label"] for s in sidecars for e in s["events"]} >= {"motion", "smoke_co_alarm"}, "events kept"


def test_every_sidecar_field_is_either_uploaded_or_redacted() -> None:
    """A field added to the clip sidecar must be classified before it can leave the hub: the uploaded copy is
    built from an allowlist, and this test fails until the new field is put on one side or the other."""
    fields = {f.name for f in dataclasses.fields(ClipSidecar)}
    assert fields == set(UPLOADED_FIELDS) | set(REDACTED_FIELDS)
    assert {f.name for f in dataclasses.fields(Event)} == set(UPLOADED_EVENT_FIELDS)


def test_upload_sidecar_replaces_the_name_by_the_hash_and_keeps_the_rest() -> None:
    sidecar = ClipSidecar(
        clip_id="20261130T120000Z-0a1b2c3d", camera="garden", events=[Event("motion", 0.4, 1.0, 3.0, 3.0)],
        stream_start=0.0, stream_end=4.0, wall_start="2026-11-30T12:00:00.000Z", wall_end="2026-11-30T12:00:04.000Z",
        duration_s=4.0, size_bytes=1234, sha256="ab" * 32, model_versions={"motion": "1"}, video_codec="h264",
        audio_codec=None, width=640, height=360, file="20261130T120000Z-0a1b2c3d.mp4")
    uploaded = json.loads(upload_sidecar(sidecar, "f00dfeedf00dfeed"))
    local = sidecar.to_dict()
    assert uploaded.pop("camera_hash") == "f00dfeedf00dfeed" and "garden" not in json.dumps(uploaded)
    assert uploaded == {k: v for k, v in local.items() if k != "camera"}


@pytest.mark.parametrize("state", ["pending", "failed"])
def test_a_row_queued_by_an_older_version_gets_the_redacted_sidecar_at_start(tmp_path, state, restartable_s3):
    """Rows queued before the outbox carried the redacted sidecar would upload the spool's file (with the
    name): the start-up rescan gives them the redacted body."""
    video = make_video(tmp_path / "v.mp4", VideoSpec(duration_s=6, boxes=[MovingBox(2.0, 3.0)]))
    config = parse_config(CONFIG.format(data=tmp_path / "data", video=video).split("[[microphones]]")[0])
    restartable_s3.stop()  # the store is down: the clip stays queued
    svc = Service(config, store=restartable_s3.info.store(bucket="names"))
    svc.run()
    svc.close()
    ctx = HubContext.open(config, store=LocalStore(tmp_path / "unused"))
    try:
        outbox = Outbox(ctx.db)
        [item] = outbox.pending()
        with ctx.db.tx() as conn:  # what an older version left: no body, the row in ``state``
            conn.execute("UPDATE outbox SET sidecar_body = NULL, state = ? WHERE id = ?", (state, item.id))
        ClipPublisher(ctx, outbox).requeue_spool()
        body = json.loads(outbox.get(item.clip_id).sidecar_body)
        assert body["camera_hash"] == ctx.camera_hash("garden") and "camera" not in body
        assert json.loads(item.sidecar_path.read_text())["camera"] == "garden", "the spool keeps the name"
    finally:
        ctx.close()


def test_the_worker_uploads_the_body_not_the_local_sidecar_and_never_twice(tmp_path):
    """The uploader side of the redaction: ``sidecar_body`` is what lands at ``sidecar_key``; the local sidecar
    file is only deleted; a retry finds the body already stored (by hash) and does not PUT it again."""
    from dataclasses import replace as dc_replace

    from test_outbox import make_item

    from uploader.db import Database
    from uploader.worker import UploadWorker

    store, db = LocalStore(tmp_path / "store"), Database(tmp_path / "state.db")
    try:
        outbox = Outbox(db)
        item = make_item(tmp_path / "spool", "c1")
        item.sidecar_path.write_text('{"camera": "garden"}')
        outbox.enqueue(dc_replace(item, sidecar_body='{"camera_hash": "cam1"}'))
        claimed = outbox.claim()
        store.put_bytes(item.sidecar_key, b'{"camera_hash": "cam1"}')  # an earlier attempt got this far
        before = store.stat_object(item.sidecar_key).last_modified
        outbox.mark_retry(claimed, "timeout", 0.0)
        assert UploadWorker(store, outbox).run_once() and outbox.get("c1").state == "done"
        assert store.get_object(item.sidecar_key) == b'{"camera_hash": "cam1"}'
        assert store.stat_object(item.sidecar_key).last_modified == before, "found by hash, not sent again"
        assert not item.sidecar_path.exists() and not item.clip_path.exists()
    finally:
        db.close()
