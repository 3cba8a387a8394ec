"""Command line: run, analyze, demo, check-config."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path

from uploader import StoreError

from ..config import ConfigError, load_config
from ..service.storage import StorageConfigError
from .storage import add_storage_parser

log = logging.getLogger("edge_media")


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    if config.audio.enabled:  # per-label audio settings can only be checked against the model's labels
        from ..audio.setup import load_audio_model

        try:
            load_audio_model(config.audio)
        except ConfigError as exc:
            raise ConfigError(str(args.file), exc.problems) from None
    print(f"{args.file}: OK — {len(config.cameras)} camera(s), storage {config.storage.backend}, "
          f"plan {config.storage.plan} ({config.plans[config.storage.plan]} days)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _setup_logging(config.service.log_level)
    from ..service.hub import NothingToRun, Service

    service = Service(config)

    def on_signal(signum, _frame):
        log.info("received %s; finishing open clips", signal.Signals(signum).name)
        service.stop_event.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        service.run()
    except NothingToRun as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        service.close()
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..audio import AudioSourceError
    from ..config import AudioConfig
    from ..detect import MotionSettings
    from ..events import TrackerSettings
    from ..sources import SourceError
    from ..tools.analyze import AnalyzeOptions, analyze_file

    opts = AnalyzeOptions(
        detect_width=args.detect_width, detect_fps=args.fps,
        motion=MotionSettings(sensitivity=args.sensitivity, fps=args.fps),
        tracker=TrackerSettings(min_frames=args.min_frames, post_roll_s=args.post_roll),
        audio=None if args.no_audio else AudioConfig())
    try:
        report = analyze_file(args.video, opts, progress=not args.json and sys.stderr.isatty())
    except (SourceError, AudioSourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.plot:
        from ..tools.plot import plot_timeline

        plot_timeline(report, args.plot)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    _print_report(report)
    return 0


def _print_report(report) -> None:
    d = report.to_dict()
    print(f"{d['path']}: {d['duration_s']:.1f} s analysed in {d['elapsed_s']:.2f} s "
          f"({d['speed_x_realtime']}x real time), {d['frames_detected']} frames checked, "
          f"{d['decode_errors']} decode errors, motion model {d['motion_model']}, "
          f"audio model {d['audio_model'] or '-'} ({d['audio_windows_inferred']}/{d['audio_windows']} windows inferred)")
    if not d["events"]:
        print("no events")
        return
    print(f"{'#':>3}  {'label':<15} {'start':>8} {'end':>8} {'score':>7}")
    for i, e in enumerate(d["events"], 1):
        print(f"{i:>3}  {e['label']:<15} {e['start_s']:>7.2f}s {e['end_s']:>7.2f}s {e['score']:>7.3f}")


def cmd_demo(args: argparse.Namespace) -> int:
    from ..tools.demo import print_demo, run_demo

    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="edge-media-demo-"))
    result = run_demo(workdir, s3=args.s3)
    print_demo(result)
    return 0 if result.clips else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-media", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the service until SIGINT/SIGTERM")
    r.add_argument("--config", required=True, type=Path)
    r.set_defaults(func=cmd_run)
    a = sub.add_parser("analyze", help="detect events in a video file as fast as possible")
    a.add_argument("video", type=Path)
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.add_argument("--detect-width", type=int, default=320)
    a.add_argument("--fps", type=float, default=5.0, help="detect frames per second")
    a.add_argument("--sensitivity", type=float, default=0.5)
    a.add_argument("--min-frames", type=int, default=2)
    a.add_argument("--post-roll", type=float, default=5.0)
    a.add_argument("--no-audio", action="store_true", help="skip the audio-event model")
    a.add_argument("--plot", type=Path, help="write a timeline picture (needs the plot extra)")
    a.set_defaults(func=cmd_analyze)
    d = sub.add_parser("demo", help="generate a sample clip and run the whole pipeline on it")
    d.add_argument("--dir", help="work directory (default: a new temp dir)")
    d.add_argument("--s3", action="store_true", help="store into a local moto S3 server the demo starts")
    d.set_defaults(func=cmd_demo)
    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("file", type=Path)
    c.set_defaults(func=cmd_check_config)
    add_storage_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "run":
        _setup_logging("WARNING" if args.command == "analyze" else "INFO")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (StoreError, StorageConfigError) as exc:
        print(f"storage error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
