"""Fault suite, privacy invariants as standing properties (issue 14, item 6).

Seeded random interleavings of what owners and the hub do (grant and withdraw both purposes, through the service
or only in the ledger as another process would; flag misdetections; new recordings offered for product
improvement; camera restrictions; sending passes, some against a partner store that is down, some with a
withdrawal landing in the middle of the pass; erasure; restarts) on a hub with two owners, whose partner bucket is
a real S3 bucket (moto) behind a tap that judges every PUT when it is made:

* no byte reaches the partner without consent in force at the time of sending. Consent is the test's own record
  of what it granted and withdrew, not the hub's ledger; whose sample it is comes from its audio bytes (each owner's
  clip anonymises to known bytes), not from the hub's tables; a sample whose audio went up under consent may finish
  (its JSON, the manifest), and is then owed a retraction;
* what was queued when its owner erased is never sent (what a failed pass had already put up is removed); what
  went out before a withdrawal is retracted (or removed) by the next pass that reaches the partner, also when the
  owner granted again meanwhile; nothing in the bucket got there around the tap; after a pass that reaches the
  partner nothing is left in flight, listed twice or without its audio, though API requests open the queue while
  the sender uploads and anonymises; a pass against a store that is down stops at its first failure;
* every object in the bucket is read back by an independent parser (a hand-written FLAC walker: metadata blocks,
  then every frame chained by CRC-8 headers and CRC-16 footers to the last byte; the JSON checked against an
  allow-list written here) and searched for camera and owner names, clip ids, camera hashes, the hub's id, its
  install secret, the source files' tags and encoder strings, and times finer than a month: in keys, bodies, user
  metadata and tags.

The sources carry the names and a street address in their container and stream tags, and the recordings offered
for product improvement are tagged copies, so an anonymiser that kept any tag would be caught. MQTT and webhook
messages are not checked here: they go to the owner's own broker and receivers and name cameras by design
(edge_media/notify/messages.py); tests/test_names_stay_home.py covers the clip store.

Short variant: 8 interleavings of 28 steps; long (``-m faults``): 30 of 40. The unmarked tests at the end pin the
sequences behind the defects the interleavings found, so every plain run repeats them.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import secrets
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import pytest

from edge_media.config import load_config
from edge_media.errors import UsageError
from edge_media.notify import hub_node_id
from edge_media.privacy import OwnerRights
from edge_media.privacy.anonymise import anonymise
from edge_media.privacy.consent import ConsentLedger
from edge_media.privacy.flags import FlagRequest, decide_flag
from edge_media.privacy.notices import Purpose
from edge_media.service.catalog import ClipCatalog, ClipRecord
from edge_media.service.consenting import grant_consent, withdraw_consent
from edge_media.service.context import HubContext
from edge_media.service.feedback import (
    FeedbackThread,
    ProductImprovement,
    Recording,
    build_partner_store,
    clip_file,
    open_queue,
)
from edge_media.service.flagging import audio_event_labels, flag_clip
from edge_media.service.hub import Service
from uploader import ObjectInfo, ObjectStore, StoreError
from uploader.outbox import Outbox
from uploader.s3_store import CONNECTION_ERROR

from audio_fixtures import alarm_scene, make_camera_clip
from clip_hub import Hub, copy_hub, write_config
from s3_fixtures import empty_bucket

MIS, PI = Purpose.MISDETECTION_FEEDBACK, Purpose.PRODUCT_IMPROVEMENT
OWNER_OF = {"kitchen-cam": "alice-smithson", "porch-cam": "bob-okafor"}
CAMERA_OF = {owner: camera for camera, owner in OWNER_OF.items()}
OWNERS = tuple(CAMERA_OF)
ADDRESS = "14 Elm Street, Springfield"  # what a camera's or an NVR's export may write into its tags
WEIGHTS = {"grant": 5, "withdraw": 2, "flag": 4, "record": 4, "send": 4, "midpass": 1.5, "restrict": 1,
           "restart": 1, "erase": 0.6}
PEEK = 0.5  # how often an API request opens the queue while the sender uploads or anonymises
# The JSON beside each sample, as the partner's documentation (docs/feedback-dataset.md) promises it.
SAMPLE_KEYS = {"sample_id", "purpose", "predicted", "score", "corrected", "model_name", "model_version",
               "duration_s", "sample_rate", "recipe", "month"}
KEY_SHAPES = [re.compile(r"samples/\d{4}-\d{2}/[0-9a-f-]{36}\.(flac|json)"),
              re.compile(r"manifests/[0-9a-f-]{36}\.jsonl"), re.compile(r"retractions/[0-9a-f-]{36}\.json")]
FINE_TIMES = [re.compile(rb"\d{4}-\d{2}-\d{2}"), re.compile(rb"\d{8}T\d{4}"), re.compile(rb"\b1[6-9]\d{8}\b"),
              re.compile(rb"\d{2}:\d{2}:\d{2}")]
VENDOR = [b"Lavf", b"Lavc", b"libFLAC", b"reference ", b"ffmpeg", b"FFmpeg", b"encoder", b"HomeHub"]


# -- the recorded hub -------------------------------------------------------------------------------------------


def tag(src: Path, dst: Path, camera: str, *, when: str) -> Path:
    """``src`` remuxed with the household written into its container and stream tags."""
    owner = OWNER_OF[camera]
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        out.metadata.update({"title": f"{camera} at {ADDRESS}", "artist": owner, "comment": f"{owner}'s {camera}",
                             "creation_time": when, "encoder": "HomeHub NVR 2.1"})
        streams = {}
        for s in inp.streams:
            streams[s.index] = out.add_stream_from_template(s)
            streams[s.index].metadata.update({"title": camera, "handler_name": f"{camera} {owner}"})
        for pkt in inp.demux():
            if pkt.dts is not None:
                pkt.stream = streams[pkt.stream_index]
                out.mux(pkt)
    assert camera.encode() in dst.read_bytes(), "the file really carries the name"
    return dst


@dataclass(frozen=True)
class Recorded:
    hub: Hub
    media: dict[str, Path]
    templates: dict[str, Path]  # camera -> a tagged copy of its recorded clip: what product improvement is offered
    attribution: dict[str, str]  # sha256 of an anonymised FLAC -> the owner whose clip it comes from
    needles: list[bytes]  # what no partner object may carry
    labels: tuple[str, ...]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Recorded:
    root = tmp_path_factory.mktemp("privacy")
    (root / "media").mkdir()
    when = "2026-11-30T07:41:09.000000Z"
    kitchen, _ = alarm_scene(48000, alarm_s=8.0)
    porch, _ = alarm_scene(48000, silence_s=1.0, lead_noise_s=1.5, alarm_s=5.0, seed=11)
    media = {}
    for camera, samples in (("kitchen-cam", kitchen), ("porch-cam", porch)):
        plain = make_camera_clip(root / "media" / f"{camera}-plain.mp4", samples, rate=48000, fps=10, size=(320, 180))
        media[camera] = tag(plain, root / "media" / f"{camera}.mp4", camera, when=when)
    hub = Hub(write_config(root / "hub.toml", root / "data", media, owners=OWNER_OF), root / "data")
    svc = Service(load_config(hub.config))
    svc.run()
    svc.close()
    ctx = HubContext.open(load_config(hub.config))
    try:
        labels = audio_event_labels(ctx.config)
        clips = ClipCatalog(ctx).list_clips()
        assert sorted(str(c.camera) for c in clips) == sorted(OWNER_OF), "one clip per camera, each with audio"
        templates, attribution = {}, {}
        for clip in clips:
            camera = str(clip.camera)
            with clip_file(ctx, clip) as path:
                templates[camera] = tag(path, root / f"{camera}-offered.mp4", camera, when=when)
            for span in spans(clip, labels):
                sample = anonymise(templates[camera], span=span, purpose=PI.value, predicted=None, score=None,
                                   corrected=None, model_name="m", model_version="1", month="2026-11")
                attribution[hashlib.sha256(sample.flac).hexdigest()] = OWNER_OF[camera]
        needles = household(ctx, clips, media, templates, when)
    finally:
        ctx.close()
    return Recorded(hub, media, templates, attribution, needles, labels)


def spans(clip: ClipRecord, labels: Iterable[str]) -> list[tuple[float, float] | None]:
    """What the anonymiser is asked to cut from ``clip``: the whole clip (missed events, product improvement) and
    each event label's span, exactly as a 'wrong' flag computes it."""
    out: list[tuple[float, float] | None] = [None]
    assert clip.details is not None
    for label in sorted({e.label for e in clip.details.events}):
        flag = decide_flag(clip, FlagRequest("wrong", label), labels, flag_id="x", created=0.0)
        out.append((flag.event_start_s or 0.0, flag.event_end_s or 0.0))
    return out


def household(ctx: HubContext, clips: list[ClipRecord], media: dict[str, Path], templates: dict[str, Path],
              when: str) -> list[bytes]:
    """Everything that would identify the household or the hub, as it may appear in an object."""
    texts = {*OWNER_OF, *OWNERS, ADDRESS, "Elm Street", when[:19], ctx.secret.hex(), hub_node_id(ctx.secret),
             str(ctx.config.service.data_dir)}
    texts |= {ctx.camera_hash(c) for c in OWNER_OF} | {c.clip_id for c in clips}
    texts |= {p.name for p in [*media.values(), *templates.values()]} | {p.stem for p in templates.values()}
    out = []
    for text in texts:
        for enc in (text.encode(), text.encode("utf-16-le")):
            out += [enc, enc.lower()]
    return sorted(set(out))


# -- the independent reader -------------------------------------------------------------------------------------


def crc_table(poly: int, width: int) -> list[int]:
    top, mask, table = 1 << (width - 1), (1 << width) - 1, []
    for i in range(256):
        c = i << (width - 8)
        for _ in range(8):
            c = ((c << 1) ^ poly) & mask if c & top else (c << 1) & mask
        table.append(c)
    return table


CRC8, CRC16 = crc_table(0x07, 8), crc_table(0x8005, 16)


def crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = CRC8[crc ^ b]
    return crc


@dataclass(frozen=True)
class Flac:
    blocks: list[int]  # metadata block types, in order
    rate: int
    channels: int
    bits: int
    total: int  # samples, from STREAMINFO
    frames: int
    framed: int  # samples the frames carry
    trailing: int  # bytes after the last frame that ends in a good CRC-16


def frame_header(data: bytes, i: int) -> tuple[int, int] | None:
    """(block size, header length) if a valid FLAC frame header (RFC 9639 §9.1, CRC-8 checked) starts at ``i``."""
    if i + 6 > len(data) or data[i] != 0xFF or data[i + 1] not in (0xF8, 0xF9):
        return None
    size_code, rate_code = data[i + 2] >> 4, data[i + 2] & 0x0F
    if size_code == 0 or rate_code == 15 or data[i + 3] & 1 or data[i + 3] >> 4 > 10:
        return None
    ones = next(n for n in range(9) if not data[i + 4] & (0x80 >> n))  # the coded frame number:
    if ones == 1 or ones > 7:  # UTF-8-like, its leading ones count its bytes
        return None
    pos = i + 5 + max(0, ones - 1)
    if size_code == 6:
        size, pos = data[pos] + 1, pos + 1
    elif size_code == 7:
        size, pos = int.from_bytes(data[pos:pos + 2], "big") + 1, pos + 2
    else:
        size = {1: 192}.get(size_code) or (576 << (size_code - 2) if size_code <= 5 else 256 << (size_code - 8))
    pos += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if pos >= len(data) or crc8(data[i:pos]) != data[pos]:
        return None
    return size, pos + 1 - i


def walk_flac(data: bytes) -> Flac:
    """The container read by hand: metadata blocks, then frames chained header to header, each closed by its
    CRC-16, to the last byte. Nothing else the encoder or a tagger could add has a place to hide."""
    assert data[:4] == b"fLaC", "not a FLAC stream (or something before it, e.g. an ID3v2 tag)"
    pos, blocks = 4, []
    streaminfo = b""
    while True:
        head, length = data[pos], int.from_bytes(data[pos + 1:pos + 4], "big")
        blocks.append(head & 0x7F)
        if head & 0x7F == 0:
            streaminfo = data[pos + 4:pos + 4 + length]
        pos += 4 + length
        if head & 0x80:
            break
    bits = int.from_bytes(streaminfo[10:18], "big")
    rate, channels = bits >> 44, ((bits >> 41) & 0x7) + 1
    depth, total = ((bits >> 36) & 0x1F) + 1, bits & ((1 << 36) - 1)
    frames = framed = 0
    start = pos
    while start < len(data):
        header = frame_header(data, start)
        assert header is not None, f"byte {start}: not a frame header (data between frames)"
        end = next_frame(data, start, header[1])
        if end is None:
            break
        frames, framed, start = frames + 1, framed + header[0], end
    return Flac(blocks, rate, channels, depth, total, frames, framed, len(data) - start)


def next_frame(data: bytes, start: int, header_len: int) -> int | None:
    """Where the frame at ``start`` ends: the first place after its header where its CRC-16 holds and another frame
    header (or the end of the stream) follows."""
    crc, table = 0, CRC16
    for i in range(start, len(data)):
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ data[i]]
        end = i + 1
        if crc == 0 and end - start > header_len + 2 and (end == len(data) or frame_header(data, end) is not None):
            return end  # a CRC over the frame and its own CRC-16 comes out 0
    return None


# -- the partner bucket behind its tap --------------------------------------------------------------------------


class PartnerTap(ObjectStore):
    """The real partner store; every successful PUT is judged by the interleaving at the moment it is made, and
    ``down`` makes every call fail as an unreachable store does."""

    def __init__(self, inner: ObjectStore, judge) -> None:
        self.inner, self.judge, self.down = inner, judge, False
        self.grace = 0  # with ``down``: calls that still succeed first (an outage that starts mid-pass)
        self.calls_down = 0  # calls refused since ``down`` was last set

    def _up(self, key: str = "") -> None:
        if self.down and self.grace > 0:
            self.grace -= 1
        elif self.down:
            self.calls_down += 1
            raise StoreError(CONNECTION_ERROR, "partner store unreachable (test)", key=key or None)

    def put_object(self, key: str, path: Path, **options: object) -> ObjectInfo:
        self._up(key)
        info = self.inner.put_object(key, path, **options)  # type: ignore[arg-type]
        self.judge(key, Path(path).read_bytes())
        return info

    def put_bytes(self, key: str, data: bytes, **options: object) -> ObjectInfo:
        self._up(key)
        info = self.inner.put_bytes(key, data, **options)  # type: ignore[arg-type]
        self.judge(key, data)
        return info

    def get_object(self, key: str) -> bytes:
        self._up(key)
        return self.inner.get_object(key)

    def fget_object(self, key: str, dest: Path) -> ObjectInfo:
        self._up(key)
        return self.inner.fget_object(key, dest)

    def stat_object(self, key: str) -> ObjectInfo:
        self._up(key)
        return self.inner.stat_object(key)

    def list_objects(self, prefix: str = "", *, with_tags: bool = False) -> Iterator[ObjectInfo]:
        self._up()
        return self.inner.list_objects(prefix, with_tags=with_tags)

    def remove_objects(self, keys: Iterable[str]) -> list[StoreError]:
        self._up()
        return self.inner.remove_objects(keys)

    def get_tags(self, key: str) -> dict[str, str]:
        return self.inner.get_tags(key)

    def set_tags(self, key: str, tags: Mapping[str, str]) -> None:
        self._up(key)
        self.inner.set_tags(key, tags)


@dataclass
class Sent:
    owner: str | None  # from the audio bytes; None: no owner's clip makes these bytes
    purpose: str
    ok: bool  # consent in force (the test's record) when its audio went up


@dataclass
class Tally:
    steps: Counter[str] = field(default_factory=Counter)
    samples: int = 0
    sent_bytes: int = 0
    unconsented_bytes: int = 0
    violations: list[str] = field(default_factory=list)
    down_calls: int = 0  # most partner calls one pass made against a store that was down
    peeks: int = 0  # API requests that opened the queue while the sender was busy
    flacs: dict[str, Flac] = field(default_factory=dict)  # sha256 -> parsed
    objects: int = 0
    identifying: list[str] = field(default_factory=list)


class Interleaving:
    def __init__(self, rec: Recorded, folder: Path, bucket_toml: str, rng: random.Random, tally: Tally) -> None:
        self.rec, self.rng, self.tally = rec, rng, tally
        self.hub = copy_hub(rec.hub, folder, rec.media, owners=OWNER_OF)
        with self.hub.config.open("a") as f:
            f.write(bucket_toml)
        self.consent = {(o, p): False for o in OWNERS for p in Purpose}
        self.restricted: set[str] = set()
        self.samples: dict[str, Sent] = {}
        self.must_retract: set[str] = set()
        self.doomed: set[str] = set()  # queued when their owner erased
        self.midpass = False
        self.peek_rate = PEEK
        self.trace: list[str] = []
        self.n = 0
        self.open()
        self.tap = PartnerTap(build_partner_store(self.ctx.config), self.judge)
        self.thread = self.sender()

    def open(self) -> None:
        """The service's side, as it starts (the sender recovers a crashed run's leftovers)."""
        self.ctx = HubContext.open(load_config(self.hub.config))
        self.queue = open_queue(self.ctx, recover=True)
        self.rights = OwnerRights(self.ctx.store, self.ctx.spool, self.ctx.db)
        prepare = self.queue.prepare

        def meanwhile(*args, **kwargs):  # the sender anonymises a recording; an API request may come in
            prepared = prepare(*args, **kwargs)
            self.peek()
            return prepared

        self.queue.prepare = meanwhile  # type: ignore[method-assign]

    def peek(self) -> None:
        """Sometimes: an owner lists their disclosures through the API (it opens the queue) right now."""
        if self.rng.random() < self.peek_rate:
            self.tally.peeks += 1
            open_queue(self.ctx).disclosures(self.rng.choice(OWNERS))

    def sender(self) -> FeedbackThread:
        improvement = ProductImprovement(self.ctx, self.queue, restricted=self.rights.restricted)
        return FeedbackThread(self.queue, self.tap, 3600, threading.Event(), improvement)

    def close(self) -> None:
        self.ctx.close()

    # -- what the tap sees --

    def judge(self, key: str, data: bytes) -> None:
        kind = key.split("/")[0]
        if kind == "samples" and key.endswith(".flac"):
            self.judge_audio(Path(key).stem, data)
        elif kind == "samples":
            sent = self.samples.get(Path(key).stem)
            if sent is None or json.loads(data).get("purpose") != sent.purpose:
                self.fail(f"{key}: JSON without its audio, or of another purpose")
            elif not sent.ok:
                self.tally.unconsented_bytes += len(data)
        elif kind == "manifests":
            ids = [Path(json.loads(line)["file_name"]).stem for line in data.decode().splitlines()]
            if len(ids) != len(set(ids)):
                self.fail(f"{key} lists a sample twice (claimed twice in one pass)")
            for sample_id, line in zip(ids, data.decode().splitlines()):
                sent = self.samples.get(sample_id)
                if sent is None or not sent.ok:
                    self.tally.unconsented_bytes += len(line) + 1
                    self.fail(f"{key} lists a sample not sent under consent")
        elif kind != "retractions":
            self.fail(f"unexpected object {key}")

    def judge_audio(self, sample_id: str, data: bytes) -> None:
        owner = self.rec.attribution.get(hashlib.sha256(data).hexdigest())
        rows = self.ctx.db.query("SELECT owner, purpose FROM feedback_outbox WHERE sample_id = ?", (sample_id,))
        purpose = rows[0]["purpose"] if rows else "?"
        if owner is None or not rows or rows[0]["owner"] != owner:
            self.fail(f"sample {sample_id}: audio of {owner}, queued for {rows[0]['owner'] if rows else None}")
        ok = owner is not None and self.consent[(owner, Purpose(purpose))] if rows else False
        if sample_id in self.doomed:
            ok = False
            self.fail(f"sample {sample_id} was queued when its owner erased, and was sent")
        self.samples[sample_id] = Sent(owner, purpose, ok)
        self.tally.samples += 1
        self.tally.sent_bytes += len(data)
        if not ok:
            self.tally.unconsented_bytes += len(data)
        if ok and self.midpass:  # the owner withdraws while this sample is on its way
            self.midpass = False
            self.withdraw(str(owner), Purpose(purpose), service=self.rng.random() < 0.5)
        self.peek()

    def fail(self, what: str) -> None:
        self.tally.violations.append(f"{what} (steps: {' '.join(self.trace[-12:])})")

    # -- the steps --

    def step(self) -> None:
        name = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
        owner, purpose = self.rng.choice(OWNERS), self.rng.choice(list(Purpose))
        self.trace.append(f"{name}:{owner[0]}:{purpose.value[0]}")
        self.tally.steps[name] += 1
        if name == "grant":
            self.grant(owner, purpose)
        elif name == "withdraw":
            self.withdraw(owner, purpose, service=self.rng.random() < 0.6)
        elif name == "flag":
            self.flag(owner)
        elif name == "record":
            self.record(owner)
        elif name in ("send", "midpass"):
            self.midpass = name == "midpass"
            self.send(down=name == "send" and self.rng.random() < 0.2)
        elif name == "restrict":
            self.restrict(owner)
        elif name == "restart":
            self.close()
            self.open()
            self.thread = self.sender()
        else:
            self.erase(owner)

    def grant(self, owner: str, purpose: Purpose) -> None:
        ledger = ConsentLedger(self.ctx.db)
        version = ledger.notices.current(purpose, ledger.clock()).version
        grant_consent(ledger, owner, purpose, notice_version=version, actor=owner, method="api")
        self.consent[(owner, purpose)] = True

    def withdraw(self, owner: str, purpose: Purpose, *, service: bool) -> None:
        """As the API and CLI do (deleting and retracting at once), or in the ledger only, as another process
        might: the running sender's change feed and its claim-time check must then hold the line."""
        if service:
            withdraw_consent(self.ctx, owner, purpose, actor=owner, method="api")
        else:
            ConsentLedger(self.ctx.db).withdraw(owner, purpose, actor=owner, method="cli")
        if self.consent[(owner, purpose)]:
            self.must_retract |= {i for i, s in self.samples.items() if s.ok and (s.owner, s.purpose) ==
                                  (owner, purpose.value)}
        self.consent[(owner, purpose)] = False

    def flag(self, owner: str) -> None:
        clips = [c for c in ClipCatalog(self.ctx).list_clips() if c.owner == owner]
        if not clips:
            return  # erased
        clip = self.rng.choice(clips)
        assert clip.details is not None
        events = sorted({e.label for e in clip.details.events})
        if self.rng.random() < 0.4:
            request = FlagRequest("wrong", self.rng.choice(events), self.rng.choice([None, "nothing"]), "api:t")
        else:
            request = FlagRequest("missed", self.rng.choice(sorted(set(self.rec.labels) - set(events))), None, "api:t")
        before = {i.sample_id for i in self.queue.pending()}
        try:
            outcome = flag_clip(self.ctx, clip, request)
        except UsageError:
            return  # flagged before
        new = [i for i in self.queue.pending() if i.sample_id not in before]
        expected = self.consent[(owner, MIS)]
        if outcome.partner_queued != expected or len(new) != int(expected) or any(i.owner != owner for i in new):
            self.fail(f"flag of {owner}: queued {[i.owner for i in new]}, consent {expected}")

    def record(self, owner: str) -> None:
        camera = CAMERA_OF[owner]
        self.n += 1
        rec = Recording(f"rec-{self.n}-{secrets.token_hex(4)}", camera, self.rec.templates[camera], True,
                        time.time())
        assert self.thread.improvement is not None
        offered = self.thread.improvement.offer(rec)
        if offered != (self.consent[(owner, PI)] and camera not in self.restricted):
            self.fail(f"recording of {camera} offered={offered}")

    def restrict(self, owner: str) -> None:
        camera = CAMERA_OF[owner]
        scope = self.ctx.scope(owner)
        if camera in self.restricted:
            self.rights.unrestrict(scope, camera)
            self.restricted.discard(camera)
        else:
            self.rights.restrict(scope, camera)
            self.restricted.add(camera)

    def erase(self, owner: str) -> None:
        """Nothing of the owner stays queued or offered; a sample tried before (possibly up, unlisted) stays only
        as a row the sender removes from the partner (``settled`` checks it is gone after the next pass)."""
        self.doomed |= {i.sample_id for i in self.queue.pending(owner)}
        self.rights.erase(self.ctx.scope(owner), outbox=Outbox(self.ctx.db))
        left = self.ctx.db.query("SELECT sample_id FROM feedback_outbox WHERE owner = ? AND state = 'pending'",
                                 (owner,))
        incoming = self.queue.spool / "incoming"
        offers = [p for p in incoming.glob("*.json") if json.loads(p.read_bytes())["owner"] == owner]
        if left or offers:
            self.fail(f"after {owner}'s erasure: {len(left)} queued, {len(offers)} offered")

    def send(self, *, down: bool, grace: int | None = None) -> None:
        """One pass of the service's sender; ``down``: the partner fails, after ``grace`` calls (default: random)."""
        grace = self.rng.choice([0, 0, 2, 4, 6]) if grace is None else grace
        self.tap.down, self.tap.calls_down, self.tap.grace = down, 0, grace
        try:
            self.thread.check_withdrawals()
            self.thread.run_once()
        finally:
            self.tap.down = False
        self.midpass = False
        self.tally.down_calls = max(self.tally.down_calls, self.tap.calls_down)
        if not down:
            self.settled()

    def settled(self) -> None:
        """After a pass that reached the partner: nothing of a withdrawn purpose waits, every sample sent before a
        withdrawal is retracted or gone, and the bucket holds only what the tap saw go in."""
        for (owner, purpose), held in self.consent.items():
            waiting = [i for i in self.queue.pending(owner) if i.purpose == purpose]
            if not held and waiting:
                self.fail(f"{len(waiting)} {purpose.value} sample(s) of {owner} wait after a withdrawal and a pass")
        for row in self.ctx.db.query("SELECT sample_id, state FROM feedback_outbox"):
            if row["state"] != "pending" or not all(p.is_file() for p in self.queue.files(row["sample_id"])):
                self.fail(f"sample {row['sample_id']} left {row['state']} or without its files after a pass")
        listed: set[str] = set()
        present = set()
        for obj in self.tap.inner.list_objects(""):
            if obj.key.startswith("retractions/"):
                listed |= set(json.loads(self.tap.inner.get_object(obj.key))["sample_ids"])
            elif obj.key.endswith(".flac"):
                present.add(Path(obj.key).stem)
        for sample_id in sorted((self.must_retract & present) - listed):
            self.fail(f"sample {sample_id} sent before a withdrawal: neither retracted nor removed")
        for sample_id in sorted(present - set(self.samples)):
            self.fail(f"sample {sample_id} is in the bucket but never went through the tap")


# -- the audit of the bucket ------------------------------------------------------------------------------------


def audit_bucket(client, bucket: str, rec: Recorded, tally: Tally) -> None:
    """Every object, read with a plain S3 client (not the hub's store): key, user metadata, tags and body."""
    for obj in client.list_objects(bucket, recursive=True):
        key = obj.object_name
        tally.objects += 1
        response = client.get_object(bucket, key)
        try:
            body = response.read()
        finally:
            response.close()
            response.release_conn()
        stat = client.stat_object(bucket, key)
        user = {k: v for k, v in (stat.metadata or {}).items() if k.lower().startswith("x-amz-meta-")}
        tags = dict(client.get_object_tags(bucket, key) or {})
        findings = check_object(key, body, rec, tally)
        if set(user) - {"x-amz-meta-sha256"} or tags:
            findings.append(f"user metadata {sorted(user)} / tags {tags}")
        exposed = (key.encode(), json.dumps(user).encode(), json.dumps(tags).encode())
        findings += [f"names {n!r}" for n in rec.needles if any(n in part for part in exposed)]
        tally.identifying += [f"{key}: {f}" for f in findings]


def check_object(key: str, body: bytes, rec: Recorded, tally: Tally) -> list[str]:
    findings = [] if any(shape.fullmatch(key) for shape in KEY_SHAPES) else [f"key shape {key!r}"]
    findings += [f"carries {n!r}" for n in rec.needles if len(n) >= 6 and n in body]
    if key.endswith(".flac"):
        digest = hashlib.sha256(body).hexdigest()
        if digest not in tally.flacs:
            tally.flacs[digest] = walk_flac(body)
        flac = tally.flacs[digest]
        if flac.blocks != [0]:
            findings.append(f"metadata blocks {flac.blocks} (only STREAMINFO may be there)")
        if (flac.rate, flac.channels, flac.bits) != (16000, 1, 16) or flac.framed != flac.total or flac.trailing:
            findings.append(f"stream {flac}")
        findings += [f"vendor string {v!r}" for v in VENDOR if v in body]
        return findings
    findings += [f"a time finer than a month: {m.group()!r}" for r in FINE_TIMES for m in r.finditer(body)]
    if key.startswith("samples/"):
        findings += check_meta(json.loads(body))
    elif key.startswith("manifests/"):
        for line in body.decode().splitlines():
            entry = json.loads(line)
            findings += check_meta({k: v for k, v in entry.items() if k != "file_name"})
            expected = r"samples/\d{4}-\d{2}/" + re.escape(entry["sample_id"]) + r"\.flac"
            if not re.fullmatch(expected, entry["file_name"]):
                findings.append(f"manifest file_name {entry['file_name']!r}")
    else:
        retraction = json.loads(body)
        if set(retraction) != {"retraction_id", "created_month", "sample_ids"}:
            findings.append(f"retraction fields {sorted(retraction)}")
    return findings


def check_meta(meta: dict) -> list[str]:
    """The sample JSON against the allow-list, each value a short token of its kind."""
    if set(meta) != SAMPLE_KEYS:
        return [f"sample JSON fields {sorted(set(meta) ^ SAMPLE_KEYS)} off the allow-list"]
    token = re.compile(r"[a-z][a-z0-9_]{0,39}")
    bad = [k for k in ("predicted", "corrected") if meta[k] is not None and not token.fullmatch(meta[k])]
    bad += [k for k in ("model_name", "model_version", "recipe") if not re.fullmatch(r"[A-Za-z0-9._+-]{1,40}", meta[k])]
    if uuid.UUID(meta["sample_id"]).version != 4 or not re.fullmatch(r"\d{4}-\d{2}", meta["month"]):
        bad.append("sample_id / month")
    if meta["purpose"] not in {p.value for p in Purpose} or meta["sample_rate"] != 16000 or meta["duration_s"] > 30:
        bad.append("purpose / rate / duration")
    return [f"sample JSON {k}={meta.get(k)!r}" for k in bad]


# -- the tests --------------------------------------------------------------------------------------------------


@contextmanager
def partner_world(rec: Recorded, folder: Path, server, seed: int, tally: Tally) -> Iterator[Interleaving]:
    """An interleaving on a copy of the recorded hub, its partner bucket fresh, both gone afterwards."""
    bucket = f"partner-{seed}-{secrets.token_hex(3)}"
    toml = (f'\n[feedback.partner]\nbackend = "s3"\n[feedback.partner.s3]\nendpoint = "{server.endpoint}"\n'
            f'bucket = "{bucket}"\nsecure = {str(server.secure).lower()}\n')
    world = Interleaving(rec, folder, toml, random.Random(seed), tally)
    try:
        yield world
        audit_bucket(server.client(), bucket, rec, tally)
    finally:
        world.close()
        empty_bucket(server, bucket)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    monkeypatch.setenv("EDGE_MEDIA_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("EDGE_MEDIA_S3_SECRET_KEY", s3_server.secret_key)
    return s3_server


@pytest.mark.faults
def test_no_byte_leaves_without_consent_and_nothing_that_leaves_identifies_the_home(recorded, tmp_path, s3_env,
                                                                                    figures):
    runs, steps = (30, 40) if figures.long else (8, 28)
    tally = Tally()
    started = time.monotonic()
    for run in range(runs):
        with partner_world(recorded, tmp_path / f"run{run}", s3_env, 1400 + run, tally) as world:
            for owner in OWNERS:  # where the household stands when the run starts
                for purpose in Purpose:
                    if world.rng.random() < 0.6:
                        world.grant(owner, purpose)
            for _ in range(steps):
                world.step()
            world.grant(OWNERS[0], MIS)  # a last pass that reaches the partner, then everything is read back
            world.send(down=False)
    elapsed = time.monotonic() - started
    figures.add("interleavings x steps (seeded: grant, withdraw, flag, record, send, send with a withdrawal "
                "mid-pass, restrict, restart, erase; 1 in 5 passes against a store that is down)", "-",
                f"{runs} x {steps} ({elapsed:.0f} s)", True)
    figures.add("steps by kind", "-", ", ".join(f"{k} {v}" for k, v in sorted(tally.steps.items())), True)
    figures.add("samples sent to the partner bucket", "> 0", f"{tally.samples} ({tally.sent_bytes} bytes)",
                tally.samples > 0)
    figures.add("bytes reaching the partner without consent in force when sent", "0", tally.unconsented_bytes,
                tally.unconsented_bytes == 0)
    figures.add("invariant breaks (erased queue sent, withdrawn not retracted, bypass, misattributed, claimed "
                "twice, left in flight or without its audio)", "0", len(tally.violations), not tally.violations)
    figures.add("API requests opening the queue while the sender uploaded or anonymised", "-", tally.peeks, True)
    figures.add("partner calls in one pass against a store that is down (max)", "<= 3", tally.down_calls,
                tally.down_calls <= 3)
    figures.add("partner objects read back (keys, bodies, user metadata, tags) / distinct FLACs walked frame by "
                "frame", "-", f"{tally.objects} / {len(tally.flacs)}", True)
    figures.add("identifying fields found (names, ids, hub id, secret, tags, encoder, times finer than a month)",
                "0", len(tally.identifying), not tally.identifying)
    assert tally.samples > 0 and tally.flacs, "the interleavings sent something"
    assert tally.unconsented_bytes == 0, tally.violations[:5]
    assert not tally.violations, "\n".join(tally.violations[:10])
    assert tally.down_calls <= 3, "a pass against a down store keeps trying (retry, not `limit` times, next pass)"
    assert not tally.identifying, "\n".join(tally.identifying[:10])


def test_an_erasure_after_a_pass_that_failed_past_its_upload_removes_the_unlisted_sample(recorded, tmp_path,
                                                                                          s3_env):
    """Regression: erasure forgot a sample whose audio and JSON were up but whose pass failed at the manifest;
    its objects stayed in the partner bucket, unlisted, without a disclosure, never removed, even after the
    owner had withdrawn."""
    tally = Tally()
    with partner_world(recorded, tmp_path / "w", s3_env, 7, tally) as world:
        owner = OWNERS[0]
        world.grant(owner, MIS)
        world.flag(owner)
        world.send(down=True, grace=4)  # stat + put the FLAC, stat + put the JSON: up; the manifest: refused
        assert len(world.samples) == 1 and world.ctx.db.query("SELECT attempts FROM feedback_outbox")[0][0] == 1
        world.withdraw(owner, MIS, service=True)
        world.erase(owner)
        world.send(down=False)
        assert not list(world.tap.inner.list_objects("samples/")), "removed by the pass after the erasure"
    assert not tally.violations and not tally.identifying, tally.violations


def test_an_api_request_while_the_sender_works_leaves_its_items_alone(recorded, tmp_path, s3_env):
    """Regression: every opening of the feedback queue (an API flag or disclosure listing, a withdrawal) ran the
    start-up recovery: a sample the sender had prepared but not queued yet lost its files (its row then failed
    every pass, 100 times per pass), and the item being uploaded became pending again."""
    tally = Tally()
    with partner_world(recorded, tmp_path / "w", s3_env, 8, tally) as world:
        world.peek_rate = 1.0  # an API request at every chance
        for owner in OWNERS:
            world.grant(owner, PI)
            world.grant(owner, MIS)
            world.record(owner)
            world.flag(owner)
        world.send(down=False)
        assert tally.peeks >= 4 and len(world.samples) == 4 and not world.queue.pending()
    assert not tally.violations and not tally.identifying, tally.violations + tally.identifying


def test_a_withdrawal_the_sender_learns_of_after_a_regrant_still_retracts_what_went_before(recorded, tmp_path,
                                                                                           s3_env):
    """Regression: a withdrawal recorded in the ledger whose clean-up did not run (the process died right after
    its commit) reaches the sender through the change feed; if the owner had granted again meanwhile, nothing sent
    under the withdrawn grant was ever retracted."""
    tally = Tally()
    with partner_world(recorded, tmp_path / "w", s3_env, 9, tally) as world:
        owner = OWNERS[1]
        world.grant(owner, MIS)
        world.flag(owner)
        world.send(down=False)
        assert len(world.samples) == 1
        world.withdraw(owner, MIS, service=False)  # the ledger only: its clean-up never ran
        world.grant(owner, MIS)
        world.send(down=False)  # the sender replays the withdrawal: the earlier sample is retracted
        assert len(list(world.tap.inner.list_objects("retractions/"))) == 1
    assert not tally.violations, tally.violations
