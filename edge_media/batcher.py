"""The detect thread: gathers frames of all cameras that are ready and runs one ONNX call.

Live cameras never wait on detection: when the queue is full their frame is dropped (counted, and
logged once per minute). File sources block instead, so analysis of a file is exact.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from .detect import MotionDetector
from .pipeline import CameraPipeline, detect_batch
from .sources import DetectFrame

log = logging.getLogger(__name__)


class DetectBatcher:
    def __init__(self, detector: MotionDetector, *, max_batch: int = 16, queue_size: int = 64) -> None:
        self.detector = detector
        self.max_batch = max_batch
        self._queue: queue.Queue[tuple[CameraPipeline, DetectFrame] | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.batches = 0
        self.frames = 0
        self._last_drop_log = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="detect", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(10)

    def submit(self, pipe: CameraPipeline, frame: DetectFrame, *, block: bool) -> None:
        try:
            self._queue.put((pipe, frame), block=block)
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 60:
                self._last_drop_log = now
                log.warning("detection is behind; dropped %d frames so far", self.dropped)

    def drain(self) -> None:
        """Wait until every submitted frame has been processed (end of a file source)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # keep the stop marker for the outer loop
                    self._queue.task_done()
                    break
                batch.append(nxt)
            try:
                detect_batch(self.detector, batch)
            except Exception:  # a bug in one batch must not stop detection for every camera
                log.exception("motion detection failed for a batch of %d frames", len(batch))
            finally:
                self.batches += 1
                self.frames += len(batch)
                for _ in batch:
                    self._queue.task_done()
