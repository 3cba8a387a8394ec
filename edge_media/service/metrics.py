"""The hub's Prometheus metrics, in its own registry (never the process-global one: two services in one
process, as in the tests, must not share counters).

Most figures are read at scrape time from the parts that already count them (the outbox, the spool, each
source's stats), so the hot paths do not call into prometheus-client at all. ``render`` can keep only the
samples of some cameras: a viewer's scrape shows their cameras and the hub-wide figures, nothing of another
owner's cameras.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .hub import Service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CAMERA_LABEL = "camera"


class _HubCollector(Collector):
    def __init__(self, service: Service) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        depth = GaugeMetricFamily("edge_media_outbox_depth", "Clips waiting for upload, by state", labels=["state"])
        for state, n in svc.outbox.counts().items():
            depth.add_metric([state], n)
        yield depth
        yield GaugeMetricFamily("edge_media_spool_bytes", "Bytes of clips in the spool (not uploaded or kept)",
                                value=svc.spool.usage_bytes())
        fps = GaugeMetricFamily("edge_media_camera_fps", "Decoded frames per second", labels=[CAMERA_LABEL])
        for live in svc.live.snapshot():
            if live.fps is not None:
                fps.add_metric([live.name], live.fps)
        yield fps


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
    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_HubCollector(service))

    def render(self, cameras: Collection[str] | None = None) -> bytes:
        """The Prometheus text exposition; with ``cameras``, only samples of those cameras (and hub-wide ones)."""
        if cameras is None:
            return generate_latest(self.registry)
        allowed = frozenset(cameras)
        filtered = CollectorRegistry(auto_describe=False)
        filtered.register(_Filtered(self.registry, allowed.__contains__))
        return generate_latest(filtered)
