"""edge-media: record camera and microphone events on a home hub and keep them for their owner's plan."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import logging
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ConfigError, dump_example, load_config
from ..errors import UsageError, describe, domain_errors, exit_code
from .clips import add_clips_parser
from .consent import add_consent_parser
from .feedback import add_feedback_parser
from .logs import setup_logging
from .models import add_models_parser
from .paths import atomic_output, check_output_path
from .storage import add_storage_parser
from .users import add_users_parser

if TYPE_CHECKING:  # the API (FastAPI, uvicorn) and the service load only for the commands that need them
    from ..api import ApiServer
    from ..service.hub import Service

log = logging.getLogger("edge_media")


def _setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    setup_logging(level, fmt)


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
    return _probe_cameras(config, args.timeout) if args.probe else 0


def _probe_cameras(config, timeout_s: float) -> int:
    """``--probe``: open every enabled camera's sources; exit 2 if one cannot be opened or recorded."""
    from ..sources.probe import probe_source

    failed = 0
    for cam in (c for c in config.cameras if c.enabled):
        result = probe_source(cam.name, cam.record_url, timeout_s=timeout_s)
        print(result.describe())
        failed += not result.ok
        if cam.detect_url:
            detect = probe_source(f"{cam.name} (detect)", cam.detect_url, timeout_s=timeout_s)
            print(detect.describe() if not detect.reachable else f"camera {cam.name} (detect): ok — "
                  + ", ".join(s.describe() for s in detect.streams if s.kind == "video"))
            failed += not detect.reachable
    return 2 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _setup_logging(config.service.log_level, config.service.log_format)
    from ..service.hub import Service

    early: list[int] = []  # a SIGHUP while the hub is built (models load) must not kill it (the default action)
    signal.signal(signal.SIGHUP, lambda signum, _frame: early.append(signum))
    service = Service(config)

    def on_signal(signum, _frame):
        log.info("received %s; finishing open clips", signal.Signals(signum).name)
        service.stop_event.set()

    def on_hup(_signum, _frame):  # only queues: the main loop re-reads the file and applies it
        service.request_reload(lambda: _reload_config(args.config))

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    if early:
        on_hup(signal.SIGHUP, None)
    try:
        service.run(companions=_api_of(service))  # NothingToRun is a domain error: one line, exit 1
    finally:
        service.close()
    return 0


def _reload_config(path: Path):
    log.info("received SIGHUP; reloading %s", path)
    return load_config(path)


class _HubApi:
    """The API beside a running hub. Recording matters more than the API: an address that cannot be bound is
    logged as an error and the hub records on without it."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.server: ApiServer | None = None

    def start(self) -> None:
        from ..api import ApiBindError, ApiServer, create_app

        cfg = self.service.config.api
        server = ApiServer(create_app(self.service), cfg.host, cfg.port)
        try:
            server.start()
        except ApiBindError as exc:
            log.error("%s; the hub runs without its API", exc)
            return
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def _api_of(service: Service) -> list[_HubApi]:
    return [_HubApi(service)] if service.config.api.enabled else []


PLOT_SUFFIXES = (".png", ".svg", ".pdf", ".jpg", ".jpeg")


def cmd_analyze(args: argparse.Namespace) -> int:
    from ..config import AudioConfig
    from ..detect import MotionSettings
    from ..events import TrackerSettings
    from ..tools.analyze import AnalyzeOptions, analyze_file, check_options

    check_options({"--detect-width": args.detect_width, "--fps": args.fps, "--sensitivity": args.sensitivity,
                   "--min-frames": args.min_frames, "--post-roll": args.post_roll})
    if args.plot:  # before the analysis, which may take minutes
        _check_plot(args.plot)
    opts = AnalyzeOptions(
        detect_width=args.detect_width, detect_fps=args.fps,
        motion=MotionSettings(sensitivity=args.sensitivity, fps=args.fps),
        tracker=TrackerSettings(min_frames=args.min_frames, post_roll_s=args.post_roll),
        audio=None if args.no_audio else AudioConfig())
    report = analyze_file(args.video, opts, progress=not args.json and sys.stderr.isatty())
    if args.plot:
        from ..tools.plot import plot_timeline

        with atomic_output(args.plot) as tmp:
            plot_timeline(report, tmp)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    _print_report(report)
    return 0


def _check_plot(path: Path) -> None:
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot: unsupported picture format {path.suffix or '(none)'!r} "
                         f"(use {', '.join(PLOT_SUFFIXES)})")
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'edge-media[plot]'")
    check_output_path(path, "--plot")


def _print_report(report) -> None:
    d = report.to_dict()
    print(f"{d['path']}: {d['duration_s']:.1f} s analysed in {d['elapsed_s']:.2f} s "
          f"({d['speed_x_realtime']}x real time), {d['frames_detected']} frames checked, "
          f"{d['decode_errors']} decode errors, motion model {d['motion_model']}, "
          f"audio model {d['audio_model'] or '-'} "
          f"({d['audio_windows_inferred']}/{d['audio_windows']} windows inferred)")
    if not d["events"]:
        print("no events")
        return
    print(f"{'#':>3}  {'label':<15} {'start':>8} {'end':>8} {'score':>7}")
    for i, e in enumerate(d["events"], 1):
        print(f"{i:>3}  {e['label']:<15} {e['start_s']:>7.2f}s {e['end_s']:>7.2f}s {e['score']:>7.3f}")


def cmd_demo(args: argparse.Namespace) -> int:
    from ..tools.demo import print_demo, run_demo

    if args.serve and args.s3:
        raise UsageError("--serve keeps the demo running on its local store; it cannot be combined with --s3")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port: {args.port} is not a TCP port (0..65535; 0: any free port)")
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="edge-media-demo-"))
    result = run_demo(workdir, s3=args.s3)
    print_demo(result)
    if not result.clips:
        return 1
    if not args.serve:
        return 0
    from ..tools.demo_serve import ServeOptions, serve_demo

    print(flush=True)
    return serve_demo(result.config, ServeOptions(host=args.host, port=args.port))


def cmd_example_config(args: argparse.Namespace) -> int:
    sys.stdout.write(dump_example())
    return 0


def package_version() -> str:
    """The installed distribution's version; a source tree that was never installed says so."""
    try:
        return importlib.metadata.version("edge-media")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed; run pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-media", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                   help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of:")
    r = sub.add_parser("run", help="run the service until SIGINT/SIGTERM (SIGHUP reloads cameras and microphones)")
    r.add_argument("--config", required=True, type=Path, help="the TOML config file")
    r.set_defaults(func=cmd_run)
    _add_analyze_parser(sub)
    d = sub.add_parser("demo", help="generate a sample clip and run the whole pipeline on it")
    d.add_argument("--dir", help="work directory (default: a new temp dir)")
    d.add_argument("--s3", action="store_true", help="store into a local moto S3 server the demo starts")
    d.add_argument("--serve", action="store_true",
                   help="then keep the hub and its API running (sample looping) and print the review page's URL "
                        "and an owner token; Ctrl-C stops it")
    d.add_argument("--host", default="127.0.0.1", help="with --serve: address the API listens on")
    d.add_argument("--port", type=int, default=8971, help="with --serve: the API's port (0: any free port)")
    d.set_defaults(func=cmd_demo)
    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("file", type=Path, help="the TOML config file to check")
    c.add_argument("--probe", action="store_true",
                   help="also open every camera: reachable? codecs, size, fps, audio; recordable, in which container")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each source with --probe")
    c.set_defaults(func=cmd_check_config)
    e = sub.add_parser("example-config", help="print a commented example config (every setting, with defaults)")
    e.set_defaults(func=cmd_example_config)
    add_storage_parser(sub)
    add_consent_parser(sub)
    add_clips_parser(sub)
    add_feedback_parser(sub)
    add_users_parser(sub)
    add_models_parser(sub)
    return p


def _add_analyze_parser(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("analyze", help="detect events in a video file as fast as possible")
    a.add_argument("video", type=Path, help="video or audio file to analyse")
    a.add_argument("--json", action="store_true", help="print the report as JSON")
    a.add_argument("--detect-width", type=int, default=320,
                   help="width detect frames are scaled to (64..1280, even; as a camera's detect_width)")
    a.add_argument("--fps", type=float, default=5.0, help="detect frames per second (0.5..30)")
    a.add_argument("--sensitivity", type=float, default=0.5, help="motion sensitivity, 0..1 (1: most sensitive)")
    a.add_argument("--min-frames", type=int, default=2,
                   help="consecutive motion frames that start an event (1..50)")
    a.add_argument("--post-roll", type=float, default=5.0,
                   help="seconds without motion that end an event (0..300)")
    a.add_argument("--no-audio", action="store_true", help="skip the audio-event model")
    a.add_argument("--plot", type=Path, help="write a timeline picture (.png, .svg, .pdf; needs the plot extra)")
    a.set_defaults(func=cmd_analyze)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "run":
        _setup_logging("WARNING" if args.command == "analyze" else "INFO")
    return run_command(args.func, args)


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """The CLI's one error handler: a domain error is one line on stderr and its exit code; anything else is
    a bug and keeps its traceback."""
    try:
        return func(args)
    except domain_errors() as exc:
        print(describe(exc), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
