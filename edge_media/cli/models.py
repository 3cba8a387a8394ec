"""``edge-media models …``: the audio model's signed releases on this hub (status, check, install, rollback).

These commands change the rollout tables; a running service follows within seconds (it runs an installed
candidate in shadow, swaps in a promoted or rolled-back model between two inference ticks).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from uploader.db import Database

from ..config import load_config
from ..errors import UsageError
from ..privacy.identity import load_or_create_secret
from ..rollout.manager import ModelReleases, build_source
from ..rollout.release import is_version
from ..rollout.store import RolloutStore
from .format import iso_utc, print_json, table
from .users import open_db


def _releases(config_path: Path) -> tuple[ModelReleases, Database]:
    config = load_config(config_path)
    db = open_db(config)
    releases = ModelReleases(config, RolloutStore(db, config.models_path),
                             load_or_create_secret(config.service.data_dir), build_source(config))
    return releases, db


def cmd_status(args: argparse.Namespace) -> int:
    releases, db = _releases(args.config)
    try:
        status = releases.status()
    finally:
        db.close()
    if args.json:
        print_json({**status, "phase_since": iso_utc(status["phase_since"]),
                    "log": [{**line, "time": iso_utc(line["time"])} for line in status["log"]]})
        return 0
    since = f" since {iso_utc(status['phase_since'])}" if status["phase_since"] else ""
    print(f"audio model: {status['active']} active; previous {status['previous'] or '-'}; "
          f"candidate {status['candidate'] or '-'}; phase {status['phase']}{since}")
    if status["stats"]:
        print("  " + ", ".join(f"{k} {v}" for k, v in sorted(status["stats"].items())))
    print(f"release source: {status['source'] or 'none'}; trusted keys: {', '.join(status['trusted_keys']) or 'none'}")
    if status["versions"]:
        print(table(["version", "status", "on disk", "reason"],
                    [[v, d["status"], v in status["installed"], d["reason"] or ""]
                     for v, d in status["versions"].items()]))
    for line in status["log"][-15:]:
        print(f"{iso_utc(line['time'])}  {line['version'] or '-':8} {line['step']:14} {line['message']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    releases, db = _releases(args.config)
    try:
        offers = releases.check()
        active = releases.active_version()
    finally:
        db.close()
    if args.json:
        print_json({"active": active, "releases": [{"version": o.version, "verdict": o.verdict} for o in offers]})
        return 0
    if not offers:
        print(f"no release newer than the active {active}")
        return 0
    print(table(["version", "verdict"], [[o.version, o.verdict] for o in offers]))
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    if args.version is not None and not is_version(args.version):
        raise UsageError(f"--version: {args.version!r} is not a release version (MAJOR.MINOR.PATCH, e.g. 1.2.1)")
    releases, db = _releases(args.config)
    try:
        manifest = releases.install(args.version, shadow=not args.no_shadow)
    finally:
        db.close()
    what = "is active now (no shadow run)" if args.no_shadow else "runs in shadow once the service ticks"
    print(f"installed audio model {manifest.version} (sha256 {manifest.sha256[:16]}…, signature and smoke test "
          f"ok); it {what}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    releases, db = _releases(args.config)
    try:
        state = releases.rollback("by hand")
        line = releases.store.log_lines("audio_events", 1)
    finally:
        db.close()
    print(line[-1].message if line else f"active: {state.active or 'shipped model'}")
    return 0


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    ms = sub.add_parser("models", help="the audio model's signed releases: status, check, install, rollback")
    msub = ms.add_subparsers(dest="models_command", required=True, metavar="COMMAND", help="one of:")

    def cmd(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = msub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
        p.set_defaults(func=func)
        return p

    cmd("status", cmd_status, "what runs, what is in shadow or watched, installed versions, recent steps"
        ).add_argument("--json", action="store_true", help="print the same data as JSON")
    cmd("check", cmd_check, "list newer releases and whether this hub would take each (signature, cohort)"
        ).add_argument("--json", action="store_true", help="print the same data as JSON")
    i = cmd("install", cmd_install, "download, verify and smoke-test a release; it then runs in shadow")
    i.add_argument("--version", help="this version (default: the newest this hub's cohort may take); an explicit "
                                     "version is installed even outside the cohort")
    i.add_argument("--no-shadow", action="store_true", help="make it active at once (it is still watched)")
    cmd("rollback", cmd_rollback, "drop the candidate in shadow, or return to the previous model")
