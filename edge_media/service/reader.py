"""Camera reader threads: one per camera stream, feeding the camera's pipeline and the model queues.

A reader never dies silently. A source that cannot be read at all (a missing or garbage file) is
reported in one line and ends; anything unexpected while handling the stream is logged (with its
traceback the first time), the open clip is finished while the input is still open, and the source
is reopened after its backoff delay -- a live camera must not go blind for good over one bad packet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from ..config import CameraConfig
from ..sources import Connected, DetectFrame, Disconnected, SourceError, SourceEvent, SourceSpec, VideoSource
from .camera import AudioWindows, CameraPipeline

log = logging.getLogger(__name__)


class Queues(Protocol):
    def submit(self, pipe: CameraPipeline, out: DetectFrame | AudioWindows, *, live: bool) -> None: ...
    def drain(self) -> None: ...


@dataclass(frozen=True)
class CameraStatus:
    """A camera at start-up: ``running`` (opened), ``retrying`` (a live camera that is down: its source
    has logged why), ``connecting`` (no answer yet) or ``failed`` (cannot be read; ``problem`` says why)."""

    name: str
    state: str
    problem: str | None = None


@dataclass
class CameraWorker:
    """Reads one camera (and its optional detect substream) into its pipeline."""

    cam: CameraConfig
    pipeline: CameraPipeline
    queues: Queues
    stop_event: threading.Event
    threads: list[threading.Thread] = field(default_factory=list)
    sources: list[VideoSource] = field(default_factory=list)
    crashes: int = 0  # unexpected errors while handling the stream (each followed by a reopen)
    on_state: Callable[[str, str | None], None] | None = None  # the record stream's connection changes

    @property
    def record_source(self) -> VideoSource | None:
        return next((s for s in self.sources if s.spec.record), None)

    def start(self) -> None:
        specs = self.specs()
        self.pipeline.detect_substream = len(specs) > 1
        for spec in specs:
            label = "" if spec.record else " (detect stream)"
            source = VideoSource(spec, name=f"camera {self.cam.name}{label}", stop_event=self.stop_event,
                                 decode_gate=lambda: not self.pipeline.restricted)
            if spec.record:
                source.state.listener = self.on_state
            thread = threading.Thread(target=self._read, args=(source,), name=f"cam-{self.cam.name}", daemon=True)
            self.sources.append(source)
            self.threads.append(thread)
            thread.start()

    def specs(self) -> list[SourceSpec]:
        cam = self.cam
        record = SourceSpec(cam.record_url, detect_width=None if cam.detect_url else cam.detect_width,
                            detect_fps=cam.detect_fps, realtime=cam.realtime, loop=cam.loop)
        if not cam.detect_url:
            return [record]  # one stream, decoded once for both
        detect = SourceSpec(cam.detect_url, record=False, detect_width=cam.detect_width, detect_fps=cam.detect_fps,
                            realtime=cam.realtime, loop=cam.loop)
        return [record, detect]

    def join(self, timeout: float | None = None) -> None:
        for t in self.threads:
            t.join(timeout)

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self.threads)

    def status(self, deadline: float) -> CameraStatus:
        """How the camera's start went, waiting until ``deadline`` (monotonic) for an answer."""
        for src in self.sources:
            src.state.settled.wait(max(0.0, deadline - time.monotonic()))
        failed = next((s.state for s in self.sources if s.state.name == "failed"), None)
        if failed is not None:
            return CameraStatus(self.cam.name, "failed", failed.problem)
        if all(s.state.opened for s in self.sources):
            return CameraStatus(self.cam.name, "running")
        waiting = next(s.state for s in self.sources if not s.state.opened)
        return CameraStatus(self.cam.name, "retrying" if waiting.problem else "connecting", waiting.problem)

    def _read(self, source: VideoSource) -> None:
        replays = source.spec.is_live or source.spec.loop
        try:
            while not self.stop_event.is_set():
                try:
                    self._pump(source)
                    return
                except SourceError as exc:
                    log.error("%s", exc)
                    return
                except Exception as exc:  # a bug in handling: never leave the camera dead and silent
                    self.crashes += 1
                    self._log_crash(source, exc, replays)
                    if not replays:  # a file replayed from its start would record its clips twice
                        source.state.set("failed", f"reader crashed: {exc!r}")
                        return
                    self.stop_event.wait(source.backoff.next_delay())
        finally:
            if not source.spec.is_live:
                self.queues.drain()
            if source.spec.record:
                self.pipeline.finish()

    def _pump(self, source: VideoSource) -> None:
        live = source.spec.is_live
        events = iter(source)
        try:
            for ev in events:
                if not source.spec.record and not isinstance(ev, DetectFrame):
                    if isinstance(ev, Connected):
                        self.pipeline.detect_connected()  # the background follows the stream it models
                    continue  # otherwise only the detect substream's frames matter to the pipeline
                if isinstance(ev, Disconnected) and not live:
                    self.queues.drain()  # a file's last detections must land before its end
                out = self.pipeline.handle(ev)
                if out is not None:
                    self.queues.submit(self.pipeline, out, live=live)
        except SourceError:
            raise
        except Exception:
            self._abandon(source, events)
            raise

    def _abandon(self, source: VideoSource, events: Iterator[SourceEvent]) -> None:
        """After a crash: finish the open clip while the input is still open, then close the input."""
        try:
            if source.spec.record:
                self.pipeline.handle(Disconnected(reason="reader crashed", time=0.0))
        except Exception as exc:
            log.error("%s: could not finish the open clip after a crash: %r", source.name, exc)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _log_crash(self, source: VideoSource, exc: Exception, replays: bool) -> None:
        then = "reopening it with backoff" if replays else "the rest of the file is skipped"
        if self.crashes == 1:
            log.exception("%s: unexpected error while handling %s; %s", source.name, source.spec.url, then)
        else:
            log.error("%s: unexpected error again (%d so far): %r; %s", source.name, self.crashes, exc, then)
