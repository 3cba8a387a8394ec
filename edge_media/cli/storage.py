"""``edge-media storage …``: lifecycle rules, sweeps, plan sync, and the owner's rights."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from uploader.index import ClipIndex
from uploader.lifecycle import apply_lifecycle
from uploader.outbox import Outbox
from uploader.sweeper import RetentionSweeper, SweepReport

from ..config import Config, load_config
from ..errors import UsageError
from ..privacy import OwnerRights
from ..service.context import HubContext
from ..service.plans import sync_plans
from .format import fields, human_bytes, iso_utc, print_json, table
from .paths import atomic_output, check_output_path


def _ctx(args: argparse.Namespace, config: Config | None = None) -> HubContext:
    return HubContext.open(config or load_config(args.config))


def check_owner(config: Config, owner: str) -> None:
    """An owner the config does not know would export or erase nothing and say so with a 0: refuse."""
    known = set(config.owners) | {c.owner for c in config.cameras} | {m.owner for m in config.microphones}
    if owner not in known:
        raise UsageError(f"--owner: no owner {owner!r} in this config (known: {', '.join(sorted(known)) or 'none'});"
                         " to reach recordings of an owner since removed, add it back under [owners]")


def check_source(config: Config, name: str, *, option: str = "--camera") -> None:
    known = [c.name for c in config.cameras] + [m.name for m in config.microphones]
    if name not in known:
        raise UsageError(f"{option}: no camera or microphone named {name!r} in this config "
                         f"(known: {', '.join(known) or 'none'})")


def cmd_apply_lifecycle(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    cfg = apply_lifecycle(ctx.store, ctx.config.plans, grace_days=ctx.config.storage.lifecycle_grace_days)
    for rule in cfg.rules:
        print(f"rule {rule.rule_id}: expire after {rule.expiration.days if rule.expiration else '-'} days")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    sweeper = RetentionSweeper(ctx.store, ctx.db)
    reports = [("sweep", sweeper.sweep())]
    if args.reconcile:  # also, not instead: the bucket listing finds what the index lost
        reports.append(("reconcile", sweeper.reconcile()))
    for what, report in reports:
        print(_sweep_line(what, report))
    return 1 if any(report.failed for _, report in reports) else 0


def _sweep_line(what: str, report: SweepReport) -> str:
    if what == "sweep":
        head = f"sweep: deleted {report.deleted} expired indexed objects ({report.local_deleted} local copies)"
    else:
        head = (f"reconcile: deleted {report.deleted} expired unindexed objects, "
                f"kept {len(report.undated)} without a retain-until tag")
    return f"{head}, {len(report.failed)} failed, in {report.duration_s:.2f} s"


def cmd_sync_plans(args: argparse.Namespace) -> int:
    done = sync_plans(_ctx(args))
    print("\n".join(f"{owner}: re-tagged {n} objects" for owner, n in done.items()) or "all plans up to date")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    summary = ClipIndex(ctx.db).get_summary()
    hashes = OwnerRights(ctx.store, ctx.spool, ctx.db).restricted()
    names = [c.name for c in ctx.config.cameras] + [m.name for m in ctx.config.microphones]
    restricted = {name for name in names if ctx.camera_hash(name) in hashes}
    status = {
        "outbox": Outbox(ctx.db).counts(), "indexed_objects": summary.objects,
        "next_deadline": iso_utc(summary.next_deadline), "spool_bytes": ctx.spool.usage_bytes(),
        # Two lists, not one: scripts read restricted_cameras as cameras only, as before microphones could be.
        "restricted_cameras": sorted(c.name for c in ctx.config.cameras if c.name in restricted),
        "restricted_microphones": sorted(m.name for m in ctx.config.microphones if m.name in restricted),
        "sources": _sources(ctx.config, restricted)}
    if args.json:
        print_json(status)
    else:
        print(_status_text(status, ctx.config.recording.spool_quota_bytes))
    return 0


def _sources(config: Config, restricted: set[str]) -> list[dict]:
    """One row per camera and microphone: the columns a coming ``clips list`` shares (camera, owner)."""
    rows = []
    for kind, sources in (("camera", config.cameras), ("microphone", config.microphones)):
        for s in sources:
            state = "restricted" if s.name in restricted else "enabled" if s.enabled else "disabled"
            rows.append({"camera": s.name, "kind": kind, "owner": s.owner, "state": state})
    return rows


def _status_text(status: dict, quota: int) -> str:
    outbox = ", ".join(f"{n} {state}" for state, n in status["outbox"].items()) or "empty"
    spool = f"{human_bytes(status['spool_bytes'])} of {human_bytes(quota)} quota"
    summary = fields({"outbox": outbox, "stored objects": status["indexed_objects"],
                      "next deadline": status["next_deadline"], "spool": spool})
    sources = table(["camera", "kind", "owner", "state"], [list(r.values()) for r in status["sources"]])
    return f"{summary}\n\n{sources}"


def cmd_export(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    check_owner(config, args.owner)
    target = None if args.out == "-" else check_output_path(Path(args.out), "--out")
    ctx = _ctx(args, config)
    rights = OwnerRights(ctx.store, ctx.spool, ctx.db)
    if target is None:
        report = rights.export(ctx.scope(args.owner), sys.stdout.buffer, fmt=args.format)
    else:
        with atomic_output(target) as tmp, open(tmp, "wb") as out:
            report = rights.export(ctx.scope(args.owner), out, fmt=args.format)
    print(f"exported {report.objects} stored and {report.spool_clips} unsent files ({report.bytes} bytes)",
          file=sys.stderr)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    if not args.yes:
        print("erase deletes every recording of this owner, everywhere; add --yes to confirm", file=sys.stderr)
        return 2
    config = load_config(args.config)
    check_owner(config, args.owner)
    ctx = _ctx(args, config)
    report = OwnerRights(ctx.store, ctx.spool, ctx.db).erase(ctx.scope(args.owner), outbox=Outbox(ctx.db))
    print(f"erased {report.objects} stored objects, {report.spool_clips} spooled clips, "
          f"{report.outbox_rows} queued uploads, {report.flags} misdetection flags")
    return 0


def cmd_restrict(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    check_source(config, args.camera)
    ctx = _ctx(args, config)
    owner = ctx.owner_of(args.camera)
    rights = OwnerRights(ctx.store, ctx.spool, ctx.db)
    (rights.restrict if args.command_name == "restrict" else rights.unrestrict)(ctx.scope(owner), args.camera)
    print(f"camera {args.camera}: {args.command_name}ed (a running service applies it within seconds)")
    return 0


def add_storage_parser(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("storage", help="storage, retention and owner-rights commands")
    ssub = st.add_subparsers(dest="storage_command", required=True, metavar="COMMAND", help="one of:")

    def cmd(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = ssub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
        p.set_defaults(func=func, command_name=name)
        return p

    cmd("apply-lifecycle", cmd_apply_lifecycle, "set S3 lifecycle rules per plan (backstop expiry)")
    cmd("sweep", cmd_sweep, "delete expired clips now").add_argument(
        "--reconcile", action="store_true", help="also list the bucket by tag for objects the index lost")
    cmd("sync-plans", cmd_sync_plans, "re-tag stored clips after a plan change in the config")
    cmd("status", cmd_status, "outbox, stored objects, spool and each source's state").add_argument(
        "--json", action="store_true", help="print the same data as JSON (times as ISO-8601 UTC)")
    ex = cmd("export", cmd_export, "export all recordings of an owner (zip or tar, with a manifest)")
    ex.add_argument("--owner", required=True, help="owner id, as in [owners] or a camera's owner")
    ex.add_argument("--out", required=True, help="archive file to create, or - for stdout")
    ex.add_argument("--format", choices=["zip", "tar"], default="zip", help="archive format (default: zip)")
    er = cmd("erase", cmd_erase, "erase all recordings of an owner everywhere")
    er.add_argument("--owner", required=True, help="owner id, as in [owners] or a camera's owner")
    er.add_argument("--yes", action="store_true", help="confirm: erasure cannot be undone")
    for name in ("restrict", "unrestrict"):
        cmd(name, cmd_restrict, f"{name} processing of a camera's new clips").add_argument(
            "--camera", required=True, help="camera or microphone name")
