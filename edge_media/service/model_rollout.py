"""The service's side of model rollout: shadow run, promotion, watch, automatic rollback, periodic checks.

The rollout tables (:mod:`edge_media.rollout.store`) say what should run; :meth:`ModelRollout.tick`, called
by the control loop every few seconds, makes the audio slot match them and moves the phases on:

* **shadow** (a candidate installed and smoke-tested): the candidate hears every window the active model
  hears (:class:`~.audio_slot.ShadowRun`). After ``shadow_s`` and ``shadow_min_windows`` it is promoted only
  if it raised no more events than ``max_event_ratio`` × the active model's + ``event_slack`` and its
  flag-confirmed false-alarm rate (owners' "wrong" flags on the active model's events that the candidate
  also raised, per candidate event) is not higher than the active model's. Otherwise it is rejected.
* **watch** (after a promotion): the previous model stays loaded. An error or non-finite output of the new
  model switches back at once (in the audio thread, no window lost); flags are held against the events each
  model raised, and a flag rate above ``rollback_flag_rate_factor`` × the previous model's (and above it by
  ``rollback_flag_rate_margin``), with at least ``rollback_min_flags`` flags, rolls back too. After
  ``watch_s`` the new model is kept and old versions beyond ``keep_versions`` are pruned.
Every step goes to the log and to ``model_log`` (``edge-media models status``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..errors import EdgeMediaError
from ..model_files import ModelIntegrityError
from ..privacy.flags import MOTION, Flag, Flags
from ..rollout.manager import NAME, ModelReleases, NoRelease, build_source, shipped_version
from ..rollout.release import ReleaseError
from ..rollout.source import SourceUnavailable
from ..rollout.store import RolloutState, RolloutStore
from .audio_slot import AudioModelSlot
from .bus import EventNotice
from .catalog import ClipCatalog
from .context import HubContext

log = logging.getLogger(__name__)

STATS_EVERY_S = 30.0
MATCH_S = 2.0  # a shadow event this close to a flagged event of the same source and label is the same sound


@dataclass(frozen=True)
class FlaggedSpan:
    """An owner's "wrong" flag on an audio event, in wall-clock time."""

    source_hash: str
    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    figures: dict[str, Any]


def shadow_verdict(active_events: int, candidate_events: int, active_flagged: int, candidate_flagged: int,
                   *, ratio: float, slack: int) -> Verdict:
    """The promotion rule (pure): event rate and flag-confirmed false-alarm rate not worse than the active's."""
    limit = active_events * ratio + slack
    rate_a = active_flagged / active_events if active_events else 0.0
    rate_c = candidate_flagged / candidate_events if candidate_events else 0.0
    figures = {"active_events": active_events, "candidate_events": candidate_events, "event_limit": round(limit, 2),
               "active_flagged": active_flagged, "candidate_flagged": candidate_flagged,
               "active_flag_rate": round(rate_a, 4), "candidate_flag_rate": round(rate_c, 4)}
    if candidate_events > limit:
        return Verdict(False, f"it raised {candidate_events} events where the active model raised {active_events} "
                              f"(limit {limit:.1f})", figures)
    if rate_c > rate_a + 1e-12:
        return Verdict(False, f"its flag-confirmed false-alarm rate {rate_c:.3f} per event is above the active "
                              f"model's {rate_a:.3f}", figures)
    return Verdict(True, f"{candidate_events} events against {active_events}; flag-confirmed false-alarm rate "
                         f"{rate_c:.3f} against {rate_a:.3f}", figures)


def flag_rate_exceeded(new_flags: int, new_events: int, base_flags: int, base_events: int, *, min_flags: int,
                       factor: float, margin: float) -> tuple[bool, float, float]:
    """The watch's rollback rule (pure): (exceeded, new rate, baseline rate), rates in flags per event."""
    new = new_flags / max(new_events, 1)
    base = base_flags / base_events if base_events else 0.0
    return new_flags >= min_flags and new > max(base * factor, base + margin), new, base


def release_manager(config: Config, ctx: HubContext) -> ModelReleases | None:
    """The hub's releases of our own audio model; None when a YAMNet-style model is configured instead (it is
    the installer's, and not ours to replace). A source that cannot be built is logged, not fatal: the hub
    records with the model it has."""
    if config.audio.model is not None:
        return None
    try:
        source = build_source(config)
    except EdgeMediaError as exc:
        log.error("model releases cannot be checked: %s", exc)
        source = None
    return ModelReleases(config, RolloutStore(ctx.db, config.models_path), ctx.secret, source)


class CatalogFlagSpans:
    """Owners' "wrong" flags on audio events, placed in wall-clock time through the clip catalog (a flag
    names its clip and the event's offsets in it; the clip's sidecar says when the clip began)."""

    def __init__(self, ctx: HubContext) -> None:
        self.flags, self.catalog = Flags(ctx.db), ClipCatalog(ctx)
        self._spans: dict[str, FlaggedSpan | None] = {}  # flag id -> its event's span (None: unresolvable)

    def __call__(self, since: float) -> list[FlaggedSpan]:
        """The flagged events that ended after ``since``."""
        spans = []
        for flag in self.flags.list_flags():
            if flag.kind != "wrong" or flag.label == MOTION or flag.event_start_s is None:
                continue
            if flag.flag_id not in self._spans:
                self._spans[flag.flag_id] = self._span_of(flag)
            span = self._spans[flag.flag_id]
            if span is not None and span.end >= since:
                spans.append(span)
        return spans

    def _span_of(self, flag: Flag) -> FlaggedSpan | None:
        record = self.catalog.get(flag.clip_id)
        if record is None or record.details is None or flag.event_start_s is None:
            return None
        wall0 = record.details.wall_start
        end = flag.event_end_s if flag.event_end_s is not None else flag.event_start_s
        return FlaggedSpan(flag.camera_hash, flag.label, wall0 + flag.event_start_s, wall0 + end)


class ModelRollout:
    def __init__(self, config: Config, ctx: HubContext, releases: ModelReleases, slot: AudioModelSlot,
                 stop_event: threading.Event, *, clock: Callable[[], float] = time.time,
                 flag_spans: Callable[[float], list[FlaggedSpan]] | None = None) -> None:
        self.cfg, self.ctx, self.releases, self.slot = config.models, ctx, releases, slot
        self.store = releases.store
        self.stop_event, self.clock = stop_event, clock
        self.flag_spans = flag_spans if flag_spans is not None else CatalogFlagSpans(ctx)
        self._notices: queue.SimpleQueue[tuple[EventNotice, str]] = queue.SimpleQueue()
        self._shadow_version: str | None = None
        self._pruned = 0.0
        self._stats_saved = 0.0
        self._checker: threading.Thread | None = None

    # -- wiring ------------------------------------------------------------------------------------------

    def on_notice(self, notice: object) -> None:
        """Bus subscriber (publishing thread): only queue, with the version that was active when it was heard."""
        if isinstance(notice, EventNotice) and notice.label != MOTION:
            self._notices.put((notice, self.slot.active.version))

    def start(self) -> None:
        if self.cfg.check_interval_s > 0 and self.releases.source is not None and self.cfg.auto_install:
            self._checker = threading.Thread(target=self._check_loop, name="model-check", daemon=True)
            self._checker.start()

    # -- control thread ----------------------------------------------------------------------------------

    def tick(self) -> None:
        self._record_events()
        now = self.clock()
        if now - self._pruned > 3600:  # the ledger keeps what a shadow run or a watch can still look back on
            self._pruned = now
            self.store.prune_events(now - 2 * self.cfg.watch_s - self.cfg.shadow_s - 86400)
        self._follow_active(self.releases.state())
        state = self.releases.state()
        if state.phase == "shadow" and state.candidate is not None:
            self._shadow(state)
        elif self.slot.shadow is not None or self._shadow_version is not None:
            self.slot.request_shadow(None)
            self._shadow_version = None
        if state.phase == "watch" and state.active is not None:
            self._watch(state)

    def _record_events(self) -> None:
        while True:
            try:
                notice, version = self._notices.get_nowait()
            except queue.Empty:
                break
            source_hash = self.ctx.camera_hash(notice.source)
            if notice.phase == "start":
                self.store.add_event(NAME, version, "active", source_hash, notice.label, notice.start)
            elif notice.end is not None:
                self.store.end_event(NAME, "active", source_hash, notice.label, notice.start, notice.end)
        run = self.slot.shadow
        if run is not None and self._shadow_version is not None:
            for ev in run.take_events():
                source_hash = self.ctx.camera_hash(ev.source)
                if ev.kind == "start":
                    self.store.add_event(NAME, self._shadow_version, "shadow", source_hash, ev.label, ev.start)
                elif ev.end is not None:
                    self.store.end_event(NAME, "shadow", source_hash, ev.label, ev.start, ev.end)

    def _follow_active(self, state: RolloutState) -> None:
        """Make the slot run what the tables say (a promotion, or a rollback asked for by the CLI)."""
        failure, self.slot.failure = self.slot.failure, None
        if failure is not None and state.active == failure[0]:
            self.releases.rollback(f"automatic: the model failed in use ({failure[1]})")
            state = self.releases.state()
        wanted = state.active or shipped_version()
        if self.slot.active.version == wanted or self.slot.pending:
            return
        try:
            model = self.releases.load(state.active)
        except ModelIntegrityError as exc:
            log.error("audio model %s cannot be loaded: %s", wanted, exc)
            self.releases.rollback(f"automatic: cannot load it ({exc})")
            return
        fallback = self.slot.active if state.phase == "watch" else None
        self.slot.request_swap(model, fallback=fallback)
        log.info("audio model %s: swapping in (was %s)", wanted, self.slot.active.version)

    # -- shadow ------------------------------------------------------------------------------------------

    def _shadow(self, state: RolloutState) -> None:
        assert state.candidate is not None and state.phase_since is not None
        if self._shadow_version != state.candidate:
            try:
                candidate = self.releases.load(state.candidate)
            except ModelIntegrityError as exc:
                self._reject(state, f"cannot be loaded: {exc}")
                return
            self.slot.request_shadow(candidate)
            self._shadow_version = state.candidate
            self.store.update(NAME, "shadow", f"{state.candidate} runs in shadow beside {self.slot.active.version}",
                              version=state.candidate)
            return
        run = self.slot.shadow
        if run is None:
            return
        if run.error is not None:
            self._reject(state, f"failed in shadow: {run.error}")
            return
        stats = {"windows": run.windows, "scored": run.scored, "since": state.phase_since,
                 "candidate_starts": dict(run.starts)}
        if self.clock() - state.phase_since < self.cfg.shadow_s or run.scored < self.cfg.shadow_min_windows:
            self._save_stats(state, stats)
            return
        verdict = self._shadow_figures(state, self.slot.active.version)
        stats |= verdict.figures
        if verdict.promote:
            self._promote(state, verdict.reason, stats)
        else:
            self._reject(state, verdict.reason, stats)

    def _shadow_figures(self, state: RolloutState, active_version: str) -> Verdict:
        assert state.candidate is not None and state.phase_since is not None
        since = state.phase_since
        active = self.store.events(NAME, active_version, "active", since)
        shadow = self.store.events(NAME, state.candidate, "shadow", since)
        spans = self.flag_spans(since)
        active_flagged = sum(any(_overlaps(e, s) for e in active) for s in spans)
        candidate_flagged = sum(any(_overlaps(e, s) for e in shadow) for s in spans)
        return shadow_verdict(len(active), len(shadow), active_flagged, candidate_flagged,
                              ratio=self.cfg.max_event_ratio, slack=self.cfg.event_slack)

    def _promote(self, state: RolloutState, reason: str, stats: dict[str, Any]) -> None:
        assert state.candidate is not None
        now = self.clock()
        self.store.update(NAME, "promoted", f"{state.candidate} promoted after shadow: {reason}",
                          version=state.candidate, status="active", active=state.candidate, previous=state.active,
                          candidate=None, phase="watch", phase_since=now, stats={"shadow": stats})
        self.slot.request_shadow(None)
        self._shadow_version = None
        self._follow_active(self.releases.state())
        log.info("audio model %s promoted: %s", state.candidate, reason)

    def _reject(self, state: RolloutState, reason: str, stats: dict[str, Any] | None = None) -> None:
        assert state.candidate is not None
        self.store.update(NAME, "rejected", f"{state.candidate} rejected after shadow: {reason}",
                          version=state.candidate, status="rejected", candidate=None, phase="idle",
                          phase_since=None, stats={"shadow": stats or {}})
        self.slot.request_shadow(None)
        self._shadow_version = None
        log.warning("audio model candidate %s rejected: %s", state.candidate, reason)

    # -- watch -------------------------------------------------------------------------------------------

    def _watch(self, state: RolloutState) -> None:
        assert state.active is not None and state.phase_since is not None
        since = state.phase_since
        previous = state.previous or shipped_version()
        new_events = self.store.events(NAME, state.active, "active", since)
        base_events = [e for e in self.store.events(NAME, previous, "active", since - self.cfg.watch_s)
                       if e["start"] < since]
        spans = self.flag_spans(since - self.cfg.watch_s)
        new_flags = sum(any(_overlaps(e, s) for e in new_events) for s in spans)
        base_flags = sum(any(_overlaps(e, s) for e in base_events) for s in spans)
        exceeded, rate, base = flag_rate_exceeded(
            new_flags, len(new_events), base_flags, len(base_events), min_flags=self.cfg.rollback_min_flags,
            factor=self.cfg.rollback_flag_rate_factor, margin=self.cfg.rollback_flag_rate_margin)
        stats = {"watch": {"events": len(new_events), "flags": new_flags, "flag_rate": round(rate, 4),
                           "previous_events": len(base_events), "previous_flags": base_flags,
                           "previous_flag_rate": round(base, 4)}}
        if exceeded:
            self.releases.rollback(f"automatic: {new_flags} of its {len(new_events)} events were flagged as wrong "
                                   f"({rate:.3f} per event against {base:.3f} for {previous})")
            self._follow_active(self.releases.state())
            return
        if self.clock() - since >= self.cfg.watch_s:
            self.store.update(NAME, "kept", f"{state.active} kept after its watch: {new_flags} flags on "
                              f"{len(new_events)} events", version=state.active, phase="idle", phase_since=None,
                              stats={**state.stats, **stats})
            self.slot.release_fallback()
            removed = self.store.prune(NAME, self.cfg.keep_versions, (state.active, state.previous))
            if removed:
                self.store.update(NAME, "pruned", f"removed {', '.join(removed)} from disk")
        else:
            self._save_stats(state, {**state.stats, **stats})

    def _save_stats(self, state: RolloutState, stats: dict[str, Any]) -> None:
        """Progress for ``models status``: written when it changed, at most every STATS_EVERY_S."""
        now = self.clock()
        if _changed(state, stats) and now - self._stats_saved >= STATS_EVERY_S:
            self._stats_saved = now
            self.store.set_stats(NAME, stats)

    # -- periodic check ----------------------------------------------------------------------------------

    def _check_loop(self) -> None:
        while not self.stop_event.wait(self.cfg.check_interval_s):
            self._auto_install()

    def _auto_install(self) -> None:
        state = self.releases.state()
        if state.candidate is not None or state.phase != "idle":
            return
        try:
            manifest = self.releases.install()
        except NoRelease:
            return
        except (ReleaseError, SourceUnavailable) as exc:
            log.warning("model check: %s", exc)
            return
        except Exception:  # a check must never take the service down
            log.exception("model check failed")
            return
        log.info("model check: installed %s as the candidate", manifest.version)


def _overlaps(event, span: FlaggedSpan) -> bool:
    end = event["end"] if event["end"] is not None else event["start"]
    return (event["source_hash"] == span.source_hash and event["label"] == span.label
            and event["start"] <= span.end + MATCH_S and end >= span.start - MATCH_S)


def _changed(state: RolloutState, stats: dict[str, Any]) -> bool:
    return any(state.stats.get(k) != v for k, v in stats.items())
