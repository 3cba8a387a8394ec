"""The hub's side of the feedback path: the partner store, flags and new recordings into the feedback outbox,
and the sender thread that empties it and reacts to withdrawals within a second.

Consent is asked before any audio is even decoded (no consent, no processing), again in the transaction that
queues the sample, and again when the sender claims it (:mod:`edge_media.privacy.feedback_send`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from recorder import ClipSidecar
from recorder.sidecar import parse_iso_utc
from uploader import LocalStore, ObjectStore, StoreError
from uploader.s3_store import MIB, S3Store

from ..config import Config
from ..errors import EdgeMediaError
from ..model_files import read_manifest
from ..privacy.anonymise import MISSED, AnonymiseError, month_of
from ..privacy.consent import ConsentLedger
from ..privacy.feedback import FeedbackQueue, Prepared, spool_of, write_atomic
from ..privacy.feedback_send import FeedbackSender, PassResult
from ..privacy.flags import Flag
from ..privacy.notices import Purpose
from .catalog import ClipRecord
from .context import HubContext
from .storage import StorageConfigError, resolve_credentials

log = logging.getLogger(__name__)

AUDIO_MODEL = "audio_events"
WATCH_S = 0.5  # how often the sender thread looks for withdrawals (the promise: within 1 s)


def build_partner_store(config: Config) -> ObjectStore:
    """The partner's feedback store: its own bucket and credentials, resolved exactly as ``[storage.s3]``."""
    partner = config.feedback.partner
    if partner.backend == "local":
        return LocalStore(config.partner_path)
    s3 = partner.s3
    if s3 is None:
        raise StorageConfigError("[feedback.partner] backend = 's3' needs a [feedback.partner.s3] table")
    access_key, secret_key = resolve_credentials(s3)
    return S3Store(endpoint=s3.endpoint, access_key=access_key, secret_key=secret_key, bucket=s3.bucket,
                   region=s3.region, secure=s3.use_tls, part_size=s3.part_size_mb * MIB,
                   create_bucket=s3.create_bucket)  # fmt: skip


def model_identity(config: Config) -> tuple[str, str]:
    """(name, version) of the audio model a sample's labels come from."""
    if config.audio.model is not None:
        return "custom_audio_model", "unknown"
    entry = read_manifest()["models"].get(AUDIO_MODEL) or {}
    return AUDIO_MODEL, str(entry.get("version") or "unknown")


def open_queue(ctx: HubContext, *, recover: bool = False) -> FeedbackQueue:
    """The hub's feedback queue; ``recover`` only where a sender starts (see :class:`FeedbackQueue`)."""
    return FeedbackQueue(ctx.db, spool_of(ctx.db), ConsentLedger(ctx.db), recover=recover)


@contextmanager
def clip_file(ctx: HubContext, clip: ClipRecord) -> Iterator[Path]:
    """The clip's file on this hub, or a temporary download of the stored object."""
    if clip.local_path and Path(clip.local_path).is_file():
        yield Path(clip.local_path)
        return
    if clip.key is None:
        raise AnonymiseError(f"clip {clip.clip_id}: its file is neither on this hub nor stored")
    tmp = Path(tempfile.mkdtemp(prefix="clip-", dir=ctx.config.service.data_dir))
    try:
        try:
            ctx.store.fget_object(clip.key, tmp / Path(clip.key).name)
        except StoreError as exc:
            raise FeedbackUnavailable(f"clip {clip.clip_id}: cannot read it from the store ({exc.code})") from None
        yield tmp / Path(clip.key).name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class FeedbackUnavailable(EdgeMediaError):
    """The clip's audio cannot be read right now (the store is down): exit 1, nothing stored."""


class FlagFeedback:
    """The flag command's hook (see :class:`FlagService`): an audio flag's sample, queued with the flag."""

    def __init__(self, ctx: HubContext, clip: ClipRecord, queue: FeedbackQueue | None = None) -> None:
        self.ctx, self.clip = ctx, clip
        self.queued: str | None = None  # the sample id, once inserted
        self.queue = queue if queue is not None else open_queue(ctx)

    def prepare(self, flag: Flag) -> Prepared | None:
        """The anonymised sample of ``flag``, or None when consent does not allow it now (nothing decoded)."""
        purpose = Purpose.MISDETECTION_FEEDBACK
        if not self.ctx.config.feedback.enabled or not self.queue.allows(flag.owner, purpose):
            return None
        details = self.clip.details
        assert details is not None  # decide_flag refuses a clip whose details are unknown
        name, version = model_identity(self.ctx.config)
        wrong = flag.kind == "wrong"
        span = (flag.event_start_s or 0.0, flag.event_end_s or 0.0) if wrong else None
        with clip_file(self.ctx, self.clip) as path:
            return self.queue.prepare(flag.owner, purpose, path, label=flag.label, span=span,
                                      predicted=flag.label if wrong else MISSED, score=flag.score if wrong else None,
                                      corrected=(flag.truth or "unknown") if wrong else flag.label,
                                      model_name=name, model_version=version,
                                      month=month_of(details.wall_start))  # fmt: skip

    def insert(self, conn: sqlite3.Connection, prepared: Prepared) -> bool:
        ok = self.queue.insert(conn, prepared)
        self.queued = prepared.sample.sample_id if ok else None
        return ok

    def discard(self, prepared: Prepared) -> None:
        self.queue.discard(prepared.sample.sample_id)


@dataclass(frozen=True)
class Recording:
    """A new clip, as product improvement needs it (local only)."""

    clip_id: str
    camera: str
    path: Path
    has_audio: bool
    wall_start: float

    @classmethod
    def from_sidecar(cls, path: Path, sidecar: ClipSidecar) -> Recording:
        return cls(sidecar.clip_id, sidecar.camera, path, bool(sidecar.audio_codec), parse_iso_utc(sidecar.wall_start))


class ProductImprovement:
    """Every new recording's audio, anonymised whole (bounded to ``MAX_S``, speech masked) and queued while its
    owner's product-improvement consent holds, up to ``[feedback] daily_byte_cap`` per UTC day. Restricted
    cameras and clips without audio send nothing.

    :meth:`offer` runs on the recorder's thread, so it only checks and hard-links the finished clip into
    ``feedback/incoming/`` (before the uploader may delete it); the sender thread's :meth:`process` decodes and
    anonymises. Consent is checked again when the sample is queued, and again when it is sent."""

    def __init__(self, ctx: HubContext, queue: FeedbackQueue, *, restricted: Callable[[], set[str]] = set,
                 wake: Callable[[], None] = lambda: None) -> None:  # fmt: skip
        self.ctx, self.queue, self.restricted, self.wake = ctx, queue, restricted, wake
        self.incoming = queue.spool / "incoming"

    def offer(self, rec: Recording) -> bool:
        cfg = self.ctx.config
        owner = self.ctx.owner_of(rec.camera)
        if not cfg.feedback.enabled or not rec.has_audio or self.ctx.camera_hash(rec.camera) in self.restricted():
            return False
        if not self.queue.allows(owner, Purpose.PRODUCT_IMPROVEMENT):
            return False
        self.incoming.mkdir(parents=True, exist_ok=True)
        target = self.incoming / f"{rec.clip_id}{rec.path.suffix}"
        try:
            os.link(rec.path, target)
        except FileExistsError:
            pass
        except OSError:  # another file system: a copy, still before the uploader may delete the clip
            shutil.copyfile(rec.path, target)
        meta = {"clip_id": rec.clip_id, "camera": rec.camera, "owner": owner, "file": target.name,
                "wall_start": rec.wall_start}
        write_atomic(self.incoming / f"{rec.clip_id}.json", json.dumps(meta).encode())
        self.wake()
        return True

    def process(self) -> int:
        """Anonymise and queue what :meth:`offer` left (also a previous run's leftovers); returns how many queued."""
        if not self.incoming.is_dir():
            return 0
        queued = 0
        for meta_path in sorted(self.incoming.glob("*.json")):
            meta = json.loads(meta_path.read_bytes())
            clip = self.incoming / meta["file"]
            try:
                queued += self._queue(clip, meta)
            finally:
                clip.unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
        return queued

    def _queue(self, clip: Path, meta: dict) -> bool:
        cfg = self.ctx.config
        if not self.queue.allows(meta["owner"], Purpose.PRODUCT_IMPROVEMENT):
            return False  # withdrawn since the offer: not even decoded
        name, version = model_identity(cfg)
        try:
            prepared = self.queue.prepare(meta["owner"], Purpose.PRODUCT_IMPROVEMENT, clip, span=None,
                                          predicted=None, score=None, corrected=None, model_name=name,
                                          model_version=version, month=month_of(float(meta["wall_start"])))
        except AnonymiseError as exc:
            log.warning("clip %s: no product-improvement sample (%s)", meta["clip_id"], exc)
            return False
        return self.queue.queue(prepared, daily_cap=cfg.feedback.daily_byte_cap)


def after_withdrawal(ctx: HubContext, owner: str, purpose: Purpose) -> tuple[int, int, int]:
    """Right after ``ConsentLedger.withdraw``: queued samples deleted at once, and the retraction of those sent
    written now if the partner store answers (else it stays owed, durably, for the next pass).
    Returns (deleted, retractions written, retractions still owed)."""
    queue = open_queue(ctx)
    deleted = queue.withdrawn(owner, purpose)
    try:
        written = FeedbackSender(queue, build_partner_store(ctx.config)).write_retractions()
    except (StoreError, OSError) as exc:
        log.warning("retraction not written yet (%s); the next sending pass writes it", exc)
        written = 0
    return deleted, written, len(queue.owed_retractions())


class FeedbackThread:
    """Sends continuously: a pass when woken (a sample was queued) or every ``send_interval_s``; between passes it
    polls the consent ledger every ``WATCH_S`` so a withdrawal deletes queued samples within a second."""

    def __init__(self, queue: FeedbackQueue, store: ObjectStore, interval_s: float, stop_event: threading.Event,
                 improvement: ProductImprovement | None = None) -> None:  # fmt: skip
        self.queue, self.interval_s, self.stop_event, self.improvement = queue, interval_s, stop_event, improvement
        self.sender = FeedbackSender(queue, store)
        self.ledger = queue.ledger
        self._wake = threading.Event()
        self._seq = 0  # the first look replays every withdrawal: one made while the service was down counts too
        self._thread = threading.Thread(target=self._run, name="feedback", daemon=True)
        self.last: PassResult | None = None

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)

    def offer(self, path: Path, sidecar: ClipSidecar) -> None:
        """The recorder's hook for a finished clip (product improvement); never fails the recorder."""
        if self.improvement is None:
            return
        try:
            self.improvement.offer(Recording.from_sidecar(path, sidecar))
        except (OSError, sqlite3.Error, ValueError) as exc:
            log.warning("clip %s: not offered for product improvement (%s)", sidecar.clip_id, exc)

    def check_withdrawals(self) -> int:
        """Apply every withdrawal appended since the last look; returns queued samples deleted."""
        deleted = 0
        for record in self.ledger.changes_since(self._seq):
            self._seq = record.seq
            if record.action == "withdraw":
                deleted += self.queue.withdrawn(record.owner, record.purpose)
                self._wake.set()  # its retraction goes out now
        return deleted

    def run_once(self) -> PassResult:
        """Anonymise what was offered, then one sending pass."""
        if self.improvement is not None:
            self.improvement.process()
        return self.sender.send_pass()

    def finish(self) -> None:
        """At stop (after the cameras finished their clips): the thread ends, then a last pass."""
        self.join(10)
        try:
            self.check_withdrawals()
            self.last = self.run_once()
        except (StoreError, OSError, sqlite3.Error) as exc:
            log.warning("feedback: last pass failed (%s); what is queued is sent at the next start", exc)

    def _run(self) -> None:
        waited = self.interval_s  # a first pass at start: whatever a previous run left
        while not self.stop_event.is_set():
            try:
                self.check_withdrawals()
                if self._wake.is_set() or waited >= self.interval_s:
                    self._wake.clear()
                    waited = 0.0
                    self.last = self.run_once()
            except (StoreError, OSError, sqlite3.Error) as exc:
                log.warning("feedback sender: %s; retried", exc)
            if self._wake.wait(WATCH_S):
                continue
            waited += WATCH_S


def hub_feedback(ctx: HubContext, stop_event: threading.Event, *,
                 restricted: Callable[[], set[str]]) -> FeedbackThread | None:  # fmt: skip
    """The running service's feedback sender (None when ``[feedback] enabled = false``)."""
    if not ctx.config.feedback.enabled:
        return None
    queue = open_queue(ctx, recover=True)
    thread = FeedbackThread(queue, build_partner_store(ctx.config), ctx.config.feedback.send_interval_s, stop_event)
    thread.improvement = ProductImprovement(ctx, queue, restricted=restricted, wake=thread.wake)
    return thread
