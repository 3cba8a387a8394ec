"""``analyze --plot``: one picture of a file's timeline — motion, audio scores, and event spans.

matplotlib is an optional extra (``pip install 'edge-media[plot]'``), imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .analyze import AnalysisReport

_COLORS = {"motion": "#1f77b4", "smoke_co_alarm": "#d62728", "glass_break": "#9467bd", "dog_bark": "#8c564b",
           "baby_cry": "#e377c2", "scream": "#ff7f0e", "siren": "#bcbd22"}


def plot_timeline(report: AnalysisReport, out: Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display on a hub
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit(f"--plot needs matplotlib: pip install 'edge-media[plot]' ({exc})") from None
    rows = 2 if report.audio_trace else 1
    fig, axes = plt.subplots(rows, 1, figsize=(12, 2.6 * rows + 0.6), sharex=True, squeeze=False)
    _motion_axis(axes[0][0], report)
    if report.audio_trace:
        _audio_axis(axes[1][0], report)
    for ax in axes[:, 0]:
        for ev in report.events:
            ax.axvspan(ev.start, ev.end or ev.last_seen, color=_COLORS.get(ev.label, "grey"), alpha=0.15)
    axes[-1][0].set_xlabel("stream time (s)")
    fig.suptitle(f"{Path(report.path).name}: {len(report.events)} events", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _motion_axis(ax, report: AnalysisReport) -> None:
    if report.motion_trace:
        t, score = np.array(report.motion_trace).T
        ax.plot(t, score, color=_COLORS["motion"], lw=1, label="changed fraction")
    ax.set_ylabel("motion")
    ax.legend(loc="upper right", fontsize=7)


def _audio_axis(ax, report: AnalysisReport) -> None:
    times = np.array([t for t, _ in report.audio_trace]) + report.audio_window_s / 2  # window centres
    for k, label in enumerate(report.audio_labels):
        scores = np.array([np.nan if s is None else float(s[k]) for _, s in report.audio_trace])
        ax.plot(times, scores, lw=1, color=_COLORS.get(label), label=label)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("audio score")
    ax.legend(loc="upper right", fontsize=7, ncol=3)
