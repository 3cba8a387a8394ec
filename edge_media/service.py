"""Process wiring: one reader thread per camera stream, one detect thread, one publisher.

Start-up order: recover the spool, start the publisher (it re-queues clips left by a previous
run), the detector, then the cameras. Shutdown is the reverse and is written once, in
:meth:`Service.stop`: readers stop and finish their open clips, detection drains, the publisher
uploads what it can in the time given.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from recorder import CameraRecorder, Spool
from uploader import ObjectStore

from .batcher import DetectBatcher
from .config import CameraConfig, Config
from .detect import MotionDetector, MotionSettings
from .events import EventTracker, TrackerSettings
from .identity import load_or_create_secret
from .pipeline import CameraPipeline
from .publish import ClipPublisher, PublishPolicy
from .sources import DetectFrame, Disconnected, SourceError, SourceSpec, VideoSource
from .storage import build_store

log = logging.getLogger(__name__)

# The ring holds more than the pre-roll: detection runs a little behind the packets, and the
# clip must still find the keyframe before ``onset - pre_roll`` when the event is confirmed.
RING_SLACK_S = 6.0


def motion_settings(cam: CameraConfig) -> MotionSettings:
    masks = tuple(tuple((float(x), float(y)) for x, y in poly) for poly in cam.motion_masks)
    return MotionSettings(sensitivity=cam.sensitivity, mask_polygons=masks, fps=cam.detect_fps)


@dataclass
class CameraWorker:
    """Reads one camera (and its optional detect substream) into its pipeline."""

    cam: CameraConfig
    pipeline: CameraPipeline
    batcher: DetectBatcher
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
            source = VideoSource(spec, name=self.cam.name, stop_event=self.stop_event)
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
                    self.batcher.drain()  # a file's last detections must land before its end
                frame = self.pipeline.handle(ev)
                if frame is not None:
                    self.batcher.submit(self.pipeline, frame, block=not live)
        except SourceError as exc:
            log.error("%s", exc)
        except Exception:
            log.exception("%s: reader crashed", self.cam.name)
        finally:
            if not live:
                self.batcher.drain()
            if source.spec.record:
                self.pipeline.finish()


class Service:
    def __init__(self, config: Config, *, store: ObjectStore | None = None,
                 detector: MotionDetector | None = None) -> None:
        self.config = config
        self.stop_event = threading.Event()
        self.spool = Spool(config.spool_path)
        self.store = store if store is not None else build_store(config)
        self.detector = detector if detector is not None else MotionDetector(threads=config.service.detect_threads)
        self.batcher = DetectBatcher(self.detector)
        policy = PublishPolicy(secret=load_or_create_secret(Path(config.service.data_dir)),
                               plan=config.storage.plan, plan_days=config.plans[config.storage.plan])
        self.publisher = ClipPublisher(self.store, self.spool, policy)
        self.workers = [self._worker(cam) for cam in config.cameras if cam.enabled]

    def _worker(self, cam: CameraConfig) -> CameraWorker:
        rec = self.config.recording
        recorder = CameraRecorder(
            cam.name, self.spool, pre_roll_s=rec.pre_roll_s, ring_seconds=rec.pre_roll_s + RING_SLACK_S,
            ring_max_bytes=rec.ring_max_bytes, model_versions={"motion": self.detector.model_version},
            on_clip=self.publisher.submit)
        ev = self.config.events
        tracker = EventTracker(cam.name, "motion", TrackerSettings(
            min_frames=ev.min_motion_frames, post_roll_s=rec.post_roll_s, max_clip_s=rec.max_clip_s,
            merge_gap_s=ev.merge_gap_s, cooldown_s=ev.cooldown_s))
        pipe = CameraPipeline(cam.name, tracker, motion_settings(cam), recorder)
        return CameraWorker(cam, pipe, self.batcher, self.stop_event)

    def start(self) -> None:
        recovered = self.spool.recover()
        if recovered:
            log.info("recovered %d clips from an unclean shutdown", len(recovered))
        self.publisher.start()
        self.batcher.start()
        for w in self.workers:
            w.start()
        log.info("edge-media running: %d cameras, store %s", len(self.workers), type(self.store).__name__)

    def wait(self, poll_s: float = 0.5) -> None:
        """Block until stopped, or until every (non-looping file) camera has ended."""
        while not self.stop_event.wait(poll_s):
            if not any(w.alive for w in self.workers):
                return

    def run(self) -> None:
        """Start, run until stopped (or every file camera ended), and shut down cleanly."""
        self.start()
        try:
            self.wait()
        finally:
            self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for w in self.workers:
            w.join(15)
        self.batcher.stop()
        self.publisher.stop()
        log.info("edge-media stopped")
