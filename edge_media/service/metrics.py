"""The hub's Prometheus metrics, in its own registry (never the process-global one: two services in one
process, as in the tests, must not share counters).

Most figures are read at scrape time from the parts that already count them (the outbox, the spool, each
source's stats, the upload worker, the sweeper, the feedback tables), so the hot paths never call into
prometheus-client: the lower layers (``recorder``, ``uploader``, ``sources``) keep plain integers and floats
and do not import it. What is naturally an event is counted as it happens, off the hot path: events from the
hub's bus, finished clips, and one histogram observation per model batch. ``render`` can keep only the samples
of some cameras: a viewer's scrape shows their cameras and the hub-wide figures, nothing of another owner's
cameras.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..privacy.notices import Purpose
from .bus import EventNotice, Notice

if TYPE_CHECKING:
    from .hub import Service
    from .reader import CameraWorker

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CAMERA_LABEL = "camera"
# Batches take ~0.1 ms (one motion frame) to tens of ms (a batch of audio windows on a busy core).
INFERENCE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class _Carried:
    """Time a camera's earlier readers spent, kept when a reload restarts it: its counters never go back."""

    decode_s: float = 0.0
    detect_s: float = 0.0
    frames: int = 0
    failures: int = 0


def _camera_totals(worker: CameraWorker) -> tuple[float, float, int]:
    """(decode seconds, detect seconds, frames decoded) of one running camera, from plain counters."""
    decode = sum(s.stats.decode_seconds for s in worker.sources)
    frames = sum(s.stats.frames_decoded for s in worker.sources)
    return decode, worker.pipeline.detect_seconds, frames


class _HubCollector(Collector):
    def __init__(self, service: Service, carried: dict[str, _Carried]) -> None:
        self.service, self.carried = service, carried

    def collect(self) -> Iterator[Metric]:
        yield from self._storage()
        yield from self._cameras()
        yield from self._uploads()
        yield from self._models()
        yield from self._feedback()

    def _storage(self) -> Iterator[Metric]:
        svc = self.service
        depth = GaugeMetricFamily("edge_media_outbox_depth", "Clips waiting for upload, by state", labels=["state"])
        for state, n in svc.outbox.counts().items():
            depth.add_metric([state], n)
        yield depth
        yield GaugeMetricFamily("edge_media_spool_bytes", "Bytes of clips in the spool (not uploaded or kept)",
                                value=svc.spool.usage_bytes())
        yield GaugeMetricFamily("edge_media_store_up", "0 while the upload worker holds the clip store down "
                                "(unreachable or refusing), else 1", value=0 if svc.uploader.store_down else 1)

    def _cameras(self) -> Iterator[Metric]:
        svc = self.service
        fps = GaugeMetricFamily("edge_media_camera_fps", "Decoded frames per second", labels=[CAMERA_LABEL])
        up = GaugeMetricFamily("edge_media_source_connected", "1 while a camera or microphone is connected",
                               labels=[CAMERA_LABEL])
        for live in svc.live.snapshot():
            if live.fps is not None:
                fps.add_metric([live.name], live.fps)
            up.add_metric([live.name], 1.0 if live.connected else 0.0)
        yield from (fps, up)
        decode = CounterMetricFamily("edge_media_camera_decode_seconds", "Time spent decoding video",
                                     labels=[CAMERA_LABEL])
        detect = CounterMetricFamily("edge_media_camera_detect_seconds", "This camera's share of motion-model time",
                                     labels=[CAMERA_LABEL])
        frames = CounterMetricFamily("edge_media_camera_frames_decoded", "Video frames decoded",
                                     labels=[CAMERA_LABEL])
        failures = CounterMetricFamily("edge_media_camera_connect_failures", "Failed (re)connection attempts",
                                       labels=[CAMERA_LABEL])
        for worker in list(svc.workers):
            name = worker.cam.name
            before = self.carried.get(name, _Carried())
            decode_s, detect_s, n = _camera_totals(worker)
            decode.add_metric([name], before.decode_s + decode_s)
            detect.add_metric([name], before.detect_s + detect_s)
            frames.add_metric([name], before.frames + n)
            failures.add_metric([name], before.failures + sum(s.stats.failures for s in worker.sources))
        yield from (decode, detect, frames, failures)

    def _uploads(self) -> Iterator[Metric]:
        svc = self.service
        yield CounterMetricFamily("edge_media_clips_uploaded", "Clips uploaded to the store (clip and sidecar)",
                                  value=svc.uploader.uploaded)
        failures = CounterMetricFamily("edge_media_upload_failures", "Failed upload attempts, by kind",
                                       labels=["kind"])
        failures.add_metric(["retryable"], svc.uploader.failed_retryable)
        failures.add_metric(["permanent"], svc.uploader.failed_permanent)
        yield failures
        deletions = CounterMetricFamily("edge_media_retention_deletions", "Objects deleted by retention",
                                        labels=["path"])
        deletions.add_metric(["sweep"], svc.sweeper.deleted_total)
        deletions.add_metric(["reconcile"], svc.sweeper.reconcile_deleted_total)
        yield deletions
        yield CounterMetricFamily("edge_media_store_lost_objects", "Indexed objects the store no longer had when "
                                  "reconcile listed it (forgotten and audited)", value=svc.sweeper.lost_total)

    def _models(self) -> Iterator[Metric]:
        dropped = CounterMetricFamily("edge_media_model_dropped", "Live items dropped because a model fell behind",
                                      labels=["model"])
        for model, batcher in (("motion", self.service.queues.motion), ("audio", self.service.queues.audio)):
            if batcher is not None:
                dropped.add_metric([model], batcher.dropped)
        yield dropped

    def _feedback(self) -> Iterator[Metric]:
        feedback = self.service.feedback
        if feedback is None:  # [feedback] disabled: its tables may not even exist
            return
        waiting, sent = feedback.queue.counts()
        queued = GaugeMetricFamily("edge_media_feedback_queued", "Anonymised samples waiting for the partner",
                                   labels=["purpose"])
        done = CounterMetricFamily("edge_media_feedback_sent", "Anonymised samples the partner received",
                                   labels=["purpose"])
        for purpose in Purpose:
            queued.add_metric([purpose.value], waiting.get(purpose.value, 0))
            done.add_metric([purpose.value], sent.get(purpose.value, 0))
        yield from (queued, done)


class _Filtered(Collector):
    """The registry's samples without those of cameras not in ``allowed``."""

    def __init__(self, registry: CollectorRegistry, allowed: Callable[[str], bool]) -> None:
        self.registry, self.allowed = registry, allowed

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            kept = [s for s in family.samples if CAMERA_LABEL not in s.labels or self.allowed(s.labels[CAMERA_LABEL])]
            family.samples = kept
            yield family


class HubMetrics:
    """Built before the pipeline (the model batchers take :meth:`inference_timer`); everything the collector
    reads is looked up on the service at scrape time."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._carried: dict[str, _Carried] = {}
        self.registry.register(_HubCollector(service, self._carried))
        self.events = Counter("edge_media_events", "Events started, by camera (or microphone) and label",
                              [CAMERA_LABEL, "label"], registry=self.registry)
        self.clips_recorded = Counter("edge_media_clips_recorded", "Clips finished into the spool",
                                      [CAMERA_LABEL], registry=self.registry)
        self.inference = Histogram("edge_media_model_inference_seconds", "Time per model batch",
                                   ["model"], buckets=INFERENCE_BUCKETS, registry=self.registry)
        service.bus.subscribe(self.on_notice)

    def on_notice(self, notice: Notice) -> None:
        """A bus subscriber: an event counts once, at its start."""
        if isinstance(notice, EventNotice) and notice.phase == "start":
            self.events.labels(notice.source, notice.label).inc()

    def clip_recorded(self, source: str) -> None:
        self.clips_recorded.labels(source).inc()

    def inference_timer(self, model: str) -> Callable[[float], None]:
        """What a model's batcher calls with each batch's seconds."""
        return self.inference.labels(model).observe

    def retire(self, worker: CameraWorker) -> None:
        """A camera's reader is going (reload): keep its totals so a restarted camera's counters continue."""
        decode_s, detect_s, frames = _camera_totals(worker)
        before = self._carried.setdefault(worker.cam.name, _Carried())
        before.decode_s += decode_s
        before.detect_s += detect_s
        before.frames += frames
        before.failures += sum(s.stats.failures for s in worker.sources)

    def render(self, cameras: Collection[str] | None = None) -> bytes:
        """The Prometheus text exposition; with ``cameras``, only samples of those cameras (and hub-wide ones)."""
        if cameras is None:
            return generate_latest(self.registry)
        allowed = frozenset(cameras)
        filtered = CollectorRegistry(auto_describe=False)
        filtered.register(_Filtered(self.registry, allowed.__contains__))
        return generate_latest(filtered)
