"""Batching threads: gather the items of every source that are ready and process them in one call.

One instance runs motion detection (frames of all cameras → one onnxruntime call), another the
audio-event model (windows of all cameras and microphones → one call). Live sources never wait:
when the queue is full their item is dropped (counted, logged once a minute). File sources block
instead, so analysis of a file is exact.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Batcher(Generic[T]):
    def __init__(self, name: str, process: Callable[[list[T]], object], *, max_batch: int = 16,
                 queue_size: int = 64, observe: Callable[[float], None] | None = None) -> None:
        self.name, self.process, self.max_batch = name, process, max_batch
        self.observe = observe  # told each batch's processing time (the hub's model-inference metric)
        self._queue: queue.Queue[T | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.batches = 0
        self.items = 0
        self._last_drop_log = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(10)

    def submit(self, item: T, *, block: bool) -> None:
        try:
            self._queue.put(item, block=block)
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 60:
                self._last_drop_log = now
                log.warning("%s is behind; dropped %d items so far", self.name, self.dropped)

    def drain(self) -> None:
        """Wait until every submitted item has been processed (end of a file source)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            batch = [item]
            stop = self._gather(batch)
            started = time.perf_counter()
            try:
                self.process(batch)
            except Exception:  # a bug in one batch must not stop detection for every source
                log.exception("%s failed for a batch of %d items", self.name, len(batch))
            finally:
                if self.observe is not None:
                    self.observe(time.perf_counter() - started)
                self.batches += 1
                self.items += len(batch)
                for _ in batch:
                    self._queue.task_done()
            if stop:
                return

    def _gather(self, batch: list[T]) -> bool:
        """Add what is already queued (up to max_batch); True if the stop marker was met."""
        while len(batch) < self.max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return False
            if nxt is None:
                self._queue.task_done()
                return True
            batch.append(nxt)
        return False
