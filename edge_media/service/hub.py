"""Process wiring: a reader thread per camera stream, one detect thread, the upload worker, the
retention sweeper and a small control loop (restrictions, local retention)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from recorder import AudioClipRecorder, CameraRecorder
from uploader import ObjectStore, StoreError
from uploader.outbox import Outbox
from uploader.sweeper import RetentionSweeper
from uploader.worker import UploadWorker

from ..audio import MicSource
from ..audio.setup import load_audio_model, new_logic, new_windower
from ..config import CameraConfig, Config, MicrophoneConfig
from ..detect import MotionDetector, MotionSettings
from ..events import ClipSettings, EventTracker, TrackerSettings
from ..privacy import OwnerRights
from ..sources import DetectFrame, Disconnected, SourceError, SourceSpec, VideoSource
from .batcher import Batcher
from .camera import (
    AudioChain,
    AudioWindows,
    CameraPipeline,
    audio_batch,
    detect_batch,
)
from .context import HubContext
from .housekeeping import SpoolQuota, expire_local_copies
from .microphone import BlockSource, MicWorker
from .plans import sync_plans
from .publish import ClipPublisher

log = logging.getLogger(__name__)

# The ring holds more than the pre-roll: detection runs a little behind the packets, and the
# clip must still find the keyframe before ``onset - pre_roll`` when the event is confirmed.
RING_SLACK_S = 6.0
CONTROL_INTERVAL_S = 2.0


def motion_settings(cam: CameraConfig) -> MotionSettings:
    masks = tuple(tuple((float(x), float(y)) for x, y in poly) for poly in cam.motion_masks)
    return MotionSettings(sensitivity=cam.sensitivity, mask_polygons=masks, fps=cam.detect_fps)


@dataclass
class ModelQueues:
    """The batching threads of the shared models: motion frames and audio windows."""

    motion: Batcher
    audio: Batcher | None

    def submit(self, pipe: CameraPipeline, out: DetectFrame | AudioWindows, *, live: bool) -> None:
        if isinstance(out, DetectFrame):
            self.motion.submit((pipe, out), block=not live)
        elif self.audio is not None:
            self.audio.submit(out, block=not live)

    def drain(self) -> None:
        self.motion.drain()
        if self.audio is not None:
            self.audio.drain()

    def start(self) -> None:
        self.motion.start()
        if self.audio is not None:
            self.audio.start()

    def stop(self) -> None:
        self.motion.stop()
        if self.audio is not None:
            self.audio.stop()


@dataclass
class CameraWorker:
    """Reads one camera (and its optional detect substream) into its pipeline."""

    cam: CameraConfig
    pipeline: CameraPipeline
    queues: ModelQueues
    stop_event: threading.Event
    threads: list[threading.Thread] = field(default_factory=list)
    sources: list[VideoSource] = field(default_factory=list)

    def start(self) -> None:
        single = not self.cam.detect_url
        common = dict(realtime=self.cam.realtime, loop=self.cam.loop)
        record = SourceSpec(self.cam.record_url, detect_width=self.cam.detect_width if single else None,
                            detect_fps=self.cam.detect_fps, **common)
        specs = [record]
        if not single:
            specs.append(SourceSpec(self.cam.detect_url, record=False, detect_width=self.cam.detect_width,
                                    detect_fps=self.cam.detect_fps, **common))
        for spec in specs:
            source = VideoSource(spec, name=self.cam.name, stop_event=self.stop_event,
                                 decode_gate=lambda: not self.pipeline.restricted)
            thread = threading.Thread(target=self._read, args=(source,), name=f"cam-{self.cam.name}", daemon=True)
            self.sources.append(source)
            self.threads.append(thread)
            thread.start()

    def join(self, timeout: float | None = None) -> None:
        for t in self.threads:
            t.join(timeout)

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def _read(self, source: VideoSource) -> None:
        live = source.spec.is_live
        try:
            for ev in source:
                if not source.spec.record and not isinstance(ev, DetectFrame):
                    continue  # only the detect substream's frames matter to the pipeline
                if isinstance(ev, Disconnected) and not live:
                    self.queues.drain()  # a file's last detections must land before its end
                out = self.pipeline.handle(ev)
                if out is not None:
                    self.queues.submit(self.pipeline, out, live=live)
        except SourceError as exc:
            log.error("%s", exc)
        except Exception:
            log.exception("%s: reader crashed", self.cam.name)
        finally:
            if not live:
                self.queues.drain()
            if source.spec.record:
                self.pipeline.finish()


class Service:
    """Start-up order: recover the spool and the outbox, start the upload worker, the sweeper,
    detection and finally the cameras. :meth:`stop` is the reverse, written once here."""

    def __init__(self, config: Config, *, store: ObjectStore | None = None,
                 detector: MotionDetector | None = None) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.ctx = HubContext.open(config, store=store)
        self.store, self.spool = self.ctx.store, self.ctx.spool
        self.detector = detector if detector is not None else MotionDetector(threads=config.service.detect_threads)
        self.audio_model = load_audio_model(config.audio) if config.audio.enabled else None
        audio_model = self.audio_model
        self.queues = ModelQueues(
            motion=Batcher("detect", lambda items: detect_batch(self.detector, items)),
            audio=Batcher("audio", lambda items: audio_batch(audio_model, items)) if audio_model else None)
        st = config.storage
        keep_local = st.keep_local_days > 0
        self.outbox = Outbox(self.ctx.db)
        self.uploader = UploadWorker(self.store, self.outbox, keep_local=keep_local)
        self.quota = SpoolQuota(self.spool, self.outbox, self.ctx.db, quota_bytes=config.recording.spool_quota_bytes,
                                policy=config.recording.spool_full_policy)
        self.publisher = ClipPublisher(self.ctx, self.outbox, wake=self.uploader.wake,
                                       after_enqueue=self.quota.enforce, keep_local=keep_local)
        self.sweeper = RetentionSweeper(self.store, self.ctx.db, interval_s=st.sweep_interval_s,
                                        reconcile_every=st.reconcile_every)
        self.rights = OwnerRights(self.store, self.spool, self.ctx.db)
        self.workers = [self._worker(cam) for cam in config.cameras if cam.enabled]
        self.mics = [self._mic(m) for m in config.microphones if m.enabled and self.audio_model is not None]
        self._control = threading.Thread(target=self._control_loop, name="control", daemon=True)

    def _worker(self, cam: CameraConfig) -> CameraWorker:
        rec = self.config.recording
        who = {"owner": cam.owner, "source": cam.name, "source_hash": self.ctx.camera_hash(cam.name)}
        recorder = CameraRecorder(
            cam.name, self.spool, pre_roll_s=rec.pre_roll_s, ring_seconds=rec.pre_roll_s + RING_SLACK_S,
            ring_max_bytes=rec.ring_max_bytes, model_versions=self._model_versions(),
            on_clip=self.publisher.submit, room=lambda n: self.quota.make_room(n, **who))
        ev = self.config.events
        tracker = EventTracker(cam.name, "motion", TrackerSettings(
            min_frames=ev.min_motion_frames, post_roll_s=rec.post_roll_s, max_clip_s=rec.max_clip_s,
            merge_gap_s=ev.merge_gap_s, cooldown_s=ev.cooldown_s))
        audio = None
        if self.audio_model is not None and cam.audio_events:
            audio = AudioChain(new_windower(self.audio_model, self.config.audio),
                               new_logic(cam.name, self.audio_model, self.config.audio))
        pipe = CameraPipeline(cam.name, tracker, motion_settings(cam), recorder,
                              can_record=lambda: self.quota.admit(**who), audio=audio)
        return CameraWorker(cam, pipe, self.queues, self.stop_event)

    def _mic(self, mic: MicrophoneConfig, source: BlockSource | None = None) -> MicWorker:
        model, cfg = self.audio_model, self.config.audio
        assert model is not None and self.queues.audio is not None
        if source is None:
            device = int(mic.device) if mic.device.isdigit() else (mic.device or None)
            source = MicSource(device=device, block_ms=mic.block_ms, sample_rate=model.info.sample_rate,
                               stop_event=self.stop_event)
        chain = AudioChain(new_windower(model, cfg), new_logic(mic.name, model, cfg))
        paired = next((w.pipeline for w in self.workers if w.cam.name == mic.camera), None) if mic.camera else None
        recorder = None if paired is not None else AudioClipRecorder(
            mic.name, self.spool, pre_roll_s=self.config.recording.pre_roll_s, sample_rate=model.info.sample_rate,
            model_versions=self._model_versions(), on_clip=self.publisher.submit)
        audio_queue = self.queues.audio
        clips = ClipSettings(pre_roll_s=self.config.recording.pre_roll_s, max_clip_s=self.config.recording.max_clip_s)
        return MicWorker(mic.name, source, chain, lambda item: audio_queue.submit(item, block=False),
                         paired=paired, recorder=recorder, stop_event=self.stop_event, clips=clips)

    def _model_versions(self) -> dict[str, str]:
        versions = {"motion": self.detector.model_version}
        if self.audio_model is not None:
            versions["audio_events"] = self.audio_model.version
        return versions

    def start(self) -> None:
        recovered = self.spool.recover()
        if recovered:
            log.info("recovered %d clips from an unclean shutdown", len(recovered))
        self.outbox.recover()
        self._sync_plans()
        self.publisher.requeue_spool()
        self.quota.enforce()
        self._apply_restrictions()
        self.uploader.start()
        self.sweeper.start()
        self.queues.start()
        for w in self.workers:
            w.start()
        for m in self.mics:
            m.start()
        self._control.start()
        log.info("edge-media running: %d cameras, store %s", len(self.workers), type(self.store).__name__)

    def wait(self, poll_s: float = 0.5) -> None:
        """Block until stopped, or until every (non-looping file) camera has ended."""
        while not self.stop_event.wait(poll_s):
            if not any(w.alive for w in [*self.workers, *self.mics]):
                return

    def run(self) -> None:
        """Start, run until stopped (or every file camera ended), and shut down cleanly."""
        self.start()
        try:
            self.wait()
        finally:
            self.stop()

    def stop(self, upload_drain_s: float = 30.0) -> None:
        """Cameras finish their clips, detection drains, then uploads get ``upload_drain_s`` to
        catch up; whatever is left stays queued on disk for the next start."""
        self.stop_event.set()
        for w in [*self.workers, *self.mics]:
            w.join(15)
        self.queues.stop()
        self._drain_uploads(upload_drain_s)
        self.uploader.stop()
        self.sweeper.stop()
        self._control.join(5)
        log.info("edge-media stopped")

    def close(self) -> None:
        """Release the database (after :meth:`stop`; the state stays readable until then)."""
        self.ctx.close()

    def _drain_uploads(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.uploader.paused:
            counts = self.outbox.counts()
            due = self.outbox.next_due()
            if counts["pending"] + counts["inflight"] == 0 or (due is not None and due > time.time() + 1):
                return  # nothing left, or only items in backoff (the store is down)
            self.uploader.wake()
            time.sleep(0.05)

    def _sync_plans(self) -> None:
        try:
            sync_plans(self.ctx)
        except StoreError as exc:  # the store may be down at boot; the next start tries again
            log.warning("could not re-tag clips after a plan change (%s); will retry at next start", exc)

    def _apply_restrictions(self) -> None:
        restricted = self.rights.restricted()
        for w in self.workers:
            w.pipeline.request_restricted(self.ctx.camera_hash(w.cam.name) in restricted)

    def _control_loop(self) -> None:
        """Picks up restrictions made by `edge-media storage restrict` and expires local copies."""
        ticks = 0
        while not self.stop_event.wait(CONTROL_INTERVAL_S):
            ticks += 1
            try:
                self._apply_restrictions()
                if ticks % 30 == 0 and self.config.storage.keep_local_days > 0:
                    expire_local_copies(self.ctx.db, keep_days=self.config.storage.keep_local_days)
            except Exception:  # housekeeping must never take the service down
                log.exception("control loop iteration failed")
