"""``edge-media storage …``: lifecycle rules, sweeps, plan sync, and the owner's rights."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from uploader.index import ClipIndex
from uploader.lifecycle import apply_lifecycle
from uploader.outbox import Outbox
from uploader.sweeper import RetentionSweeper

from ..config import load_config
from ..privacy import OwnerRights
from ..service.context import HubContext
from ..service.plans import sync_plans


def _ctx(args: argparse.Namespace) -> HubContext:
    return HubContext.open(load_config(args.config))


def cmd_apply_lifecycle(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    cfg = apply_lifecycle(ctx.store, ctx.config.plans, grace_days=ctx.config.storage.lifecycle_grace_days)
    for rule in cfg.rules:
        print(f"rule {rule.rule_id}: expire after {rule.expiration.days if rule.expiration else '-'} days")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    sweeper = RetentionSweeper(ctx.store, ctx.db)
    report = sweeper.reconcile() if args.reconcile else sweeper.sweep()
    print(f"deleted {report.deleted} expired objects ({report.local_deleted} local copies), "
          f"{len(report.failed)} failed, in {report.duration_s:.2f} s")
    return 1 if report.failed else 0


def cmd_sync_plans(args: argparse.Namespace) -> int:
    done = sync_plans(_ctx(args))
    print("\n".join(f"{owner}: re-tagged {n} objects" for owner, n in done.items()) or "all plans up to date")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    summary = ClipIndex(ctx.db).get_summary()
    restricted = OwnerRights(ctx.store, ctx.spool, ctx.db).restricted()
    status = {"outbox": Outbox(ctx.db).counts(), "indexed_objects": summary.objects,
              "next_deadline": summary.next_deadline,
              "spool_bytes": ctx.spool.usage_bytes(),
              "restricted_cameras": sorted(c.name for c in ctx.config.cameras if ctx.camera_hash(c.name) in restricted)}
    print(json.dumps(status, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    rights = OwnerRights(ctx.store, ctx.spool, ctx.db)
    with contextlib.ExitStack() as stack:
        out = sys.stdout.buffer if args.out == "-" else stack.enter_context(open(args.out, "wb"))
        report = rights.export(ctx.scope(args.owner), out, fmt=args.format)
    print(f"exported {report.objects} stored and {report.spool_clips} unsent files ({report.bytes} bytes)",
          file=sys.stderr)
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    if not args.yes:
        print("erase deletes every recording of this owner, everywhere; add --yes to confirm", file=sys.stderr)
        return 2
    ctx = _ctx(args)
    report = OwnerRights(ctx.store, ctx.spool, ctx.db).erase(ctx.scope(args.owner), outbox=Outbox(ctx.db))
    print(f"erased {report.objects} stored objects, {report.spool_clips} spooled clips, "
          f"{report.outbox_rows} queued uploads")
    return 0


def cmd_restrict(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    owner = ctx.owner_of(args.camera)
    rights = OwnerRights(ctx.store, ctx.spool, ctx.db)
    (rights.restrict if args.command_name == "restrict" else rights.unrestrict)(ctx.scope(owner), args.camera)
    print(f"camera {args.camera}: {args.command_name}ed (a running service applies it within seconds)")
    return 0


def add_storage_parser(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("storage", help="storage, retention and owner-rights commands")
    ssub = st.add_subparsers(dest="storage_command", required=True)

    def cmd(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = ssub.add_parser(name, help=help_)
        p.add_argument("--config", required=True, type=Path)
        p.set_defaults(func=func, command_name=name)
        return p

    cmd("apply-lifecycle", cmd_apply_lifecycle, "set S3 lifecycle rules per plan (backstop expiry)")
    cmd("sweep", cmd_sweep, "delete expired clips now").add_argument(
        "--reconcile", action="store_true", help="also list the bucket by tag for objects the index lost")
    cmd("sync-plans", cmd_sync_plans, "re-tag stored clips after a plan change in the config")
    cmd("status", cmd_status, "outbox, index and spool state as JSON")
    ex = cmd("export", cmd_export, "export all recordings of an owner (zip or tar, with a manifest)")
    ex.add_argument("--owner", required=True)
    ex.add_argument("--out", required=True, help="file, or - for stdout")
    ex.add_argument("--format", choices=["zip", "tar"], default="zip")
    er = cmd("erase", cmd_erase, "erase all recordings of an owner everywhere")
    er.add_argument("--owner", required=True)
    er.add_argument("--yes", action="store_true")
    for name in ("restrict", "unrestrict"):
        cmd(name, cmd_restrict, f"{name} processing of a camera's new clips").add_argument("--camera", required=True)
