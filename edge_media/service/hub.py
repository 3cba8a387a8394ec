"""Process wiring: a reader thread per camera stream, one detect thread, the upload worker, the
retention sweeper and a small control loop (restrictions, local retention)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from recorder import AudioClipRecorder, CameraRecorder
from uploader import ObjectStore, StoreError
from uploader.outbox import Outbox
from uploader.sweeper import RetentionSweeper
from uploader.worker import UploadWorker

from ..audio import AudioEventModel, MicSource
from ..audio.setup import check_label_keys, load_audio_model, new_logic, new_windower
from ..config import CameraConfig, Config, ConfigError, MicrophoneConfig
from ..detect import MotionDetector, MotionSettings
from ..errors import EdgeMediaError
from ..events import ClipSettings, EventTracker, TrackerSettings, Transition
from ..model_files import ModelIntegrityError
from ..notify import build_notifications, notify_sources
from ..privacy import OwnerRights
from ..sources import DetectFrame
from .audio_slot import AudioModelSlot
from .batcher import Batcher
from .bus import EventNotice, HubBus, SourceNotice, event_id
from .camera import (
    AudioChain,
    AudioWindows,
    CameraPipeline,
    detect_batch,
)
from .context import HubContext
from .feedback import hub_feedback
from .health import StorageHealth
from .housekeeping import SpoolQuota, expire_local_copies
from .live import LiveStatus
from .metrics import HubMetrics
from .microphone import BlockSource, MicWorker
from .model_rollout import ModelRollout, release_manager
from .plans import sync_plans
from .publish import ClipPublisher
from .reader import CameraStatus, CameraWorker
from .reload import ReloadPlan, ReloadReport, plan_reload

log = logging.getLogger(__name__)

# The ring holds more than the pre-roll: detection runs a little behind the packets, and the
# clip must still find the keyframe before ``onset - pre_roll`` when the event is confirmed.
RING_SLACK_S = 6.0
# A file source (which waits for detection rather than drop frames) runs at most this far ahead of it: well
# inside RING_SLACK_S, so a starved detect thread cannot push a clip's pre-roll out of the ring. A full
# detect queue alone (64 frames) is 12.8 s of one 5 fps camera; under load that merged or shortened clips.
FILE_LEAD_S = RING_SLACK_S / 2
CONTROL_INTERVAL_S = 2.0
STARTUP_SETTLE_S = 5.0  # how long start() waits for every camera to open, fail or start retrying
FILES_DRAIN_S = 60.0  # every file camera ended: uploads get this long to finish before exit
STOP_DRAIN_S = 30.0  # stopped by a signal: leftovers stay queued on disk for the next start


class Companion(Protocol):
    """Something that runs beside the hub for as long as it runs (the API server)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


class NothingToRun(EdgeMediaError):
    """No camera and no microphone could be opened: running would record nothing."""


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
            if not live:
                pipe.wait_for_detection(out.time - FILE_LEAD_S)
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


class Service:
    """Start-up order: recover the spool and the outbox, start the upload worker, the sweeper,
    detection and finally the cameras. :meth:`stop` is the reverse, written once here."""

    def __init__(self, config: Config, *, store: ObjectStore | None = None,
                 detector: MotionDetector | None = None) -> None:
        self.config = config
        self.stop_event = threading.Event()
        # SIGHUP: the handler only queues (SimpleQueue.put is safe there); the main loop loads and applies.
        self._reload_requests: queue.SimpleQueue[Callable[[], Config]] = queue.SimpleQueue()
        self._reload_lock = threading.Lock()
        self.ctx = HubContext.open(config, store=store)
        self.bus = HubBus()  # notices for the API, notifications and metrics; the pipeline never waits on it
        self.live = LiveStatus({**{c.name: "camera" for c in config.cameras if c.enabled},
                                **{m.name: "microphone" for m in config.microphones if m.enabled}})
        self.bus.subscribe(self.live.on_notice)
        self.metrics = HubMetrics(self)  # reads the parts below only when scraped
        self.store, self.spool = self.ctx.store, self.ctx.spool
        self.detector = detector if detector is not None else MotionDetector(threads=config.service.detect_threads)
        self.releases = release_manager(config, self.ctx) if config.audio.enabled else None
        self.audio_model = self._load_audio_model() if config.audio.enabled else None
        # The audio thread scores through the slot, so a new model can take over between two batches.
        self.slot = None if self.audio_model is None else AudioModelSlot(
            self.audio_model, lambda name, model: new_logic(name, model, config.audio), on_swap=self._on_model_swap)
        slot = self.slot
        if slot is not None and self.releases is not None:
            slot.fallback = self.releases.load_fallback()  # a restart during a watch keeps its safety net
        self.queues = ModelQueues(
            motion=Batcher("detect", lambda items: detect_batch(self.detector, items),
                           observe=self.metrics.inference_timer("motion")),
            audio=Batcher("audio", slot.audio_batch, observe=self.metrics.inference_timer("audio"))
            if slot is not None else None)
        self.rollout = None if self.releases is None or slot is None else ModelRollout(
            config, self.ctx, self.releases, slot, self.stop_event)
        if self.rollout is not None:
            self.bus.subscribe(self.rollout.on_notice)
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
        self.feedback = hub_feedback(self.ctx, self.stop_event, restricted=self.rights.restricted)
        self.workers = [self._worker(cam) for cam in config.cameras if cam.enabled]
        self.mics = [self._mic(m) for m in config.microphones if m.enabled and self.audio_model is not None]
        self._control = threading.Thread(target=self._control_loop, name="control", daemon=True)
        self.health = StorageHealth(self.bus.publish, worker=self.uploader, outbox=self.outbox, quota=self.quota,
                                    down_after_s=config.notify.storage_down_after_s)
        self.notifications = build_notifications(  # subscribed now: the cameras' first states are not missed
            config, secret=self.ctx.secret, source_uid=self.ctx.camera_hash,
            audio_labels=self._audio_labels())
        if self.notifications is not None:
            self.bus.subscribe(self.notifications.on_notice)

    def _load_audio_model(self) -> AudioEventModel | None:
        """A configured (YAMNet-style) model as configured; our own model as the rollout tables say (the
        active release, else the previous one, else the shipped model)."""
        if self.releases is None:
            return load_audio_model(self.config.audio)
        try:
            model = self.releases.load_active()
        except ModelIntegrityError as exc:
            log.error("audio events disabled: cannot load the audio model (%s)", exc)
            return None
        check_label_keys(model, self.config.audio)
        return model

    def _on_model_swap(self, model: AudioEventModel) -> None:
        """Audio thread, at a hot swap: new sources and new clips use the new model's version."""
        self.audio_model = model
        recorders = [w.pipeline.recorder for w in self.workers] + [m.recorder for m in self.mics]
        for recorder in recorders:
            if recorder is not None:
                recorder.model_versions["audio_events"] = model.version

    def _worker(self, cam: CameraConfig) -> CameraWorker:
        rec = self.config.recording
        who = {"owner": cam.owner, "source": cam.name, "source_hash": self.ctx.camera_hash(cam.name)}
        recorder = CameraRecorder(
            cam.name, self.spool, pre_roll_s=rec.pre_roll_s, ring_seconds=rec.pre_roll_s + RING_SLACK_S,
            ring_max_bytes=rec.ring_max_bytes, model_versions=self._model_versions(),
            on_clip=self._on_clip, room=lambda n: self.quota.make_room(n, **who),
            release=lambda: self.quota.release(cam.name))
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
        pipe.on_transition = self._announcer(cam.name, pipe.wall_of)
        # Its own stop event: a reload stops one camera; stop() sets every one.
        return CameraWorker(cam, pipe, self.queues, threading.Event(), on_state=self._state_announcer(cam.name))

    def _announcer(self, source: str, wall_of: Callable[[float], float]) -> Callable[[Transition], None]:
        """Publishes a source's event starts and ends on the bus, in wall-clock time."""
        def announce(tr: Transition) -> None:
            ev = tr.event
            end = wall_of(ev.until) if tr.kind == "end" else None
            self.bus.publish(EventNotice(source=source, label=ev.label, phase=tr.kind,
                                         event_id=event_id(source, ev.label, ev.start), score=ev.score,
                                         start=wall_of(ev.start), end=end))
        return announce

    def _state_announcer(self, source: str) -> Callable[[str, str | None], None]:
        return lambda state, problem: self.bus.publish(SourceNotice(source=source, state=state, problem=problem))

    def _mic(self, mic: MicrophoneConfig, source: BlockSource | None = None) -> MicWorker:
        model, cfg = self.audio_model, self.config.audio
        assert model is not None and self.queues.audio is not None
        stop_event = threading.Event()  # its own, as a camera's
        if source is None:
            device = int(mic.device) if mic.device.isdigit() else (mic.device or None)
            source = MicSource(device=device, block_ms=mic.block_ms, sample_rate=model.info.sample_rate,
                               stop_event=stop_event)
        chain = AudioChain(new_windower(model, cfg), new_logic(mic.name, model, cfg))
        paired = next((w.pipeline for w in self.workers if w.cam.name == mic.camera), None) if mic.camera else None
        recorder = None if paired is not None else AudioClipRecorder(
            mic.name, self.spool, pre_roll_s=self.config.recording.pre_roll_s, sample_rate=model.info.sample_rate,
            model_versions=self._model_versions(), on_clip=self._on_clip)
        audio_queue = self.queues.audio
        clips = ClipSettings(pre_roll_s=self.config.recording.pre_roll_s, max_clip_s=self.config.recording.max_clip_s)
        who = {"owner": mic.owner, "source": mic.name, "source_hash": self.ctx.camera_hash(mic.name)}
        worker = MicWorker(mic.name, source, chain, lambda item: audio_queue.submit(item, block=False),
                           paired=paired, recorder=recorder, stop_event=stop_event, clips=clips,
                           can_record=lambda: self.quota.admit(**who),  # a paired one's camera asks
                           on_state=self._state_announcer(mic.name))
        worker.on_transition = self._announcer(mic.name, worker.wall_of)
        return worker

    def _on_clip(self, path, sidecar) -> None:
        self.metrics.clip_recorded(sidecar.camera)
        if self.feedback is not None:  # first: the uploader may delete the clip once it is queued
            self.feedback.offer(path, sidecar)
        self.publisher.submit(path, sidecar)

    def model_versions(self) -> dict[str, str]:
        """Model name -> version of the models this hub runs (stamped in every clip's sidecar)."""
        return self._model_versions()

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
        if self.feedback is not None:
            self.feedback.start()
        self.queues.start()
        if self.rollout is not None:
            self.rollout.start()
        for w in self.workers:
            w.start()
        for m in self.mics:
            m.start()
        self._control.start()
        if self.notifications is not None:
            self.notifications.start()
        self._report_startup()

    def _report_startup(self) -> None:
        """One line for the whole hub (each failed camera has logged its own reason); raises
        :class:`NothingToRun` when no camera opened, none is retrying and there is no microphone."""
        deadline = time.monotonic() + STARTUP_SETTLE_S
        status = [w.status(deadline) for w in self.workers]
        by_state: dict[str, list[CameraStatus]] = {"running": [], "retrying": [], "connecting": [], "failed": []}
        for st in status:
            by_state[st.state].append(st)
        mics = f", {len(self.mics)} microphone{'s' if len(self.mics) != 1 else ''}" if self.mics else ""
        tail = "".join(f"; {state}: {', '.join(st.name for st in sts)}"
                       for state, sts in by_state.items() if state != "running" and sts)
        if not by_state["running"] and not by_state["retrying"] and not by_state["connecting"] and not self.mics:
            failed = ", ".join(st.name for st in by_state["failed"])
            raise NothingToRun(f"no camera or microphone could be opened (cameras failed: {failed})" if failed
                               else "no camera or microphone is enabled in the config")
        level = logging.WARNING if tail else logging.INFO
        log.log(level, "edge-media running: %d of %d cameras%s, store %s%s", len(by_state["running"]),
                len(status), mics, type(self.store).__name__, tail)

    def wait(self, poll_s: float = 0.5) -> None:
        """Block until stopped, or until every (non-looping file) camera has ended; carries out reloads
        requested meanwhile. A hub whose every source a reload removed waits for the next reload."""
        while not self.stop_event.wait(poll_s):
            self._take_reload_requests()
            ended = not any(w.alive for w in self.workers) and not any(m.alive for m in self.mics)
            if ended and (self.workers or self.mics):
                return

    def run(self, companions: Sequence[Companion] = ()) -> None:
        """Start, run until stopped (or every file camera ended), and shut down cleanly. When the
        files ended by themselves, uploads get longer to finish: `run` on files uploads what it
        recorded (unless the store is down: then the clips stay queued on disk). ``companions`` (the API)
        start once the hub runs and stop, in reverse order, before it stops."""
        drain_s = STOP_DRAIN_S
        started: list[Companion] = []
        try:
            self.start()
            for c in companions:
                c.start()
                started.append(c)
            self.wait()
            drain_s = STOP_DRAIN_S if self.stop_event.is_set() else FILES_DRAIN_S
        finally:
            for c in reversed(started):
                try:
                    c.stop()
                except Exception:  # one that fails to stop must not keep the hub from finishing its clips
                    log.exception("stopping %s failed", type(c).__name__)
            self.stop(upload_drain_s=drain_s)

    def stop(self, upload_drain_s: float = STOP_DRAIN_S) -> None:
        """Cameras finish their clips, detection drains, then uploads get ``upload_drain_s`` to
        catch up; whatever is left stays queued on disk for the next start."""
        self.stop_event.set()
        with self._reload_lock:  # a reload in progress finishes first: no worker starts after this
            for event in [*(w.stop_event for w in self.workers), *(m.stop_event for m in self.mics)]:
                event.set()
        for w in self.workers:
            w.join(15)
        for m in self.mics:
            m.join(15)
        self.queues.stop()
        if self.notifications is not None:  # after the last event ends; says "offline" on MQTT
            self.notifications.stop()
        self._drain_uploads(upload_drain_s)
        self.uploader.stop()
        self.sweeper.stop()
        if self.feedback is not None:
            self.feedback.finish()
        if self._control.ident is not None:
            self._control.join(5)
        log.info("edge-media stopped")

    def close(self) -> None:
        """Release the database (after :meth:`stop`; the state stays readable until then)."""
        self.ctx.close()

    # -- reload (SIGHUP) ------------------------------------------------------------------------------

    def request_reload(self, load: Callable[[], Config]) -> None:
        """Ask for a reload from ``load()`` (re-reading the config file). Safe in a signal handler: it only
        queues; :meth:`wait` (the main loop) loads and applies it."""
        self._reload_requests.put(load)

    def _take_reload_requests(self) -> None:
        load = None
        while True:  # several signals in one poll are one reload
            try:
                load = self._reload_requests.get_nowait()
            except queue.Empty:
                break
        if load is None:
            return
        try:
            new = load()
        except EdgeMediaError as exc:  # a bad file: one line naming the field; the hub runs on as it is
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            where = f"{exc.source}: " if isinstance(exc, ConfigError) else ""
            log.error("config reload refused, nothing changed: %s%s", where, "; ".join(problems))
            return
        try:
            self.reload(new)
        except Exception:  # a bug in reloading must not take down the cameras that are recording
            log.exception("config reload failed")

    def reload(self, new: Config) -> ReloadReport:
        """Run ``new``'s cameras and microphones: added ones start, removed ones stop (their open clip is
        finished and queued), changed ones restart; unchanged ones are not touched. Changed sections that
        only apply at start-up get one warning and keep their running values."""
        with self._reload_lock:
            if self.stop_event.is_set():
                log.warning("config reload ignored: the service is stopping")
                return ReloadReport()
            plan = plan_reload(self.config, new)
            if plan.needs_restart:
                log.warning("config reload: %s changed; restart edge-media to apply (the running values stay in "
                            "force)", ", ".join(f"[{name}]" for name in plan.needs_restart))
            self._stop_sources(plan)
            self.config = self.ctx.config = plan.config
            self._start_sources(plan)
            self._announce_sources()
        report = plan.report
        log.info("%s", report.describe())
        return report

    def _announce_sources(self) -> None:
        """Home Assistant learns the new set of sources (and forgets removed ones) without a restart."""
        mqtt = self.notifications.mqtt if self.notifications is not None else None
        if mqtt is not None:
            mqtt.set_sources(notify_sources(self.config, self.ctx.camera_hash, self._audio_labels()))

    def _audio_labels(self) -> tuple[str, ...]:
        return tuple(self.audio_model.info.labels) if self.audio_model is not None else ()

    def _stop_sources(self, plan: ReloadPlan) -> None:
        going = [w for w in self.workers if w.cam.name in plan.cameras.stopping]
        going_mics = [m for m in self.mics if m.name in plan.microphones.stopping]
        for m in going_mics:  # microphones first: a paired one feeds its camera's pipeline
            m.stop_event.set()
        for w in going:
            w.stop_event.set()
        for m in going_mics:
            m.join(15)
        for w in going:
            w.join(15)  # its reader finishes the open clip (queued for upload) before the thread ends
            if w.alive:
                log.warning("camera %s: reader still busy after 15 s; it stops on its own", w.cam.name)
            self.metrics.retire(w)
        # Copy-on-write: the control loop and the metrics iterate these lists without a lock.
        self.workers = [w for w in self.workers if w not in going]
        self.mics = [m for m in self.mics if m not in going_mics]
        for name in (*plan.cameras.stopping, *plan.microphones.stopping):
            self.live.remove(name)

    def _start_sources(self, plan: ReloadPlan) -> None:
        cfg = plan.config
        workers = [self._worker(cam) for cam in cfg.cameras if cam.enabled and cam.name in plan.cameras.starting]
        self.workers = [*self.workers, *workers]  # before the microphones: a paired one looks its camera up here
        mics = [self._mic(m) for m in cfg.microphones
                if m.enabled and m.name in plan.microphones.starting and self.audio_model is not None]
        self.mics = [*self.mics, *mics]
        for w in workers:
            self.live.add(w.cam.name, "camera")
        for m in mics:
            self.live.add(m.name, "microphone")
        self._apply_restrictions()  # before their first packet: a restricted camera records nothing new
        for w in workers:
            w.start()
        for m in mics:
            m.start()

    def _drain_uploads(self, timeout_s: float) -> None:
        """Let the worker upload what is queued, for up to ``timeout_s``. A single failed attempt (a
        blip) is waited out; an outage or a refusing store is not: those clips stay queued on disk."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.uploader.store_down:
            counts = self.outbox.counts()
            due = self.outbox.next_due()
            if counts["pending"] + counts["inflight"] == 0:
                return
            if due is not None and due > time.time() + (deadline - time.monotonic()):
                break  # only items whose retry falls after the deadline
            self.uploader.wake()
            time.sleep(0.05)
        left = self.outbox.counts()
        if left["pending"] + left["inflight"]:
            log.info("%d clips stay queued for upload at the next start", left["pending"] + left["inflight"])

    def _sync_plans(self) -> None:
        try:
            sync_plans(self.ctx)
        except StoreError as exc:  # the store may be down at boot; the next start tries again
            log.warning("could not re-tag clips after a plan change (%s); will retry at next start", exc)

    def _apply_restrictions(self) -> None:
        restricted = self.rights.restricted()
        for w in self.workers:
            is_restricted = self.ctx.camera_hash(w.cam.name) in restricted
            w.pipeline.request_restricted(is_restricted)
            self.live.set_restricted(w.cam.name, is_restricted)
        for m in self.mics:  # microphones are restricted by name like cameras (`--camera <mic>`)
            is_restricted = self.ctx.camera_hash(m.name) in restricted
            m.request_restricted(is_restricted)
            self.live.set_restricted(m.name, is_restricted)

    def _sample_frames(self) -> None:
        for w in self.workers:  # the stream that is decoded: the detect substream where there is one
            src = next((s for s in w.sources if s.spec.detect_width is not None), None)
            if src is not None:
                self.live.sample_frames(w.cam.name, src.stats.frames_decoded)

    def _control_loop(self) -> None:
        """Picks up restrictions made by `edge-media storage restrict` and expires local copies."""
        ticks = 0
        while not self.stop_event.wait(CONTROL_INTERVAL_S):
            ticks += 1
            try:
                self._apply_restrictions()
                self._sample_frames()
                if self.rollout is not None:
                    self.rollout.tick()
                self.health.poll()
                if ticks % 30 == 0 and self.config.storage.keep_local_days > 0:
                    expire_local_copies(self.ctx.db, keep_days=self.config.storage.keep_local_days)
            except Exception:  # housekeeping must never take the service down
                log.exception("control loop iteration failed")
