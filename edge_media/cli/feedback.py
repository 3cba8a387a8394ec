"""``edge-media feedback …``: the owner reports what the models got wrong in a clip, and sees what they reported.

A flag is always kept on the hub (it is the owner's: export includes it, erasure removes it). Only audio flags
can ever go to the model partner, and only through the consent-gated feedback queue (``feedback send`` runs one
pass of it; ``feedback disclosures`` shows the owner what was sent).
"""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import UsageError
from ..privacy.feedback_send import FeedbackSender
from ..privacy.flags import MOTION, NOTHING, Flag, FlagRequest, Flags
from ..service.catalog import ClipCatalog
from ..service.context import HubContext
from ..service.feedback import build_partner_store, open_queue
from ..service.flagging import flag_clip
from .format import iso_utc, print_json, table
from .storage import check_owner


def cmd_flag(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    wrong = args.wrong is not None
    request = FlagRequest(kind="wrong" if wrong else "missed", label=args.wrong if wrong else args.missed,
                          truth=args.truth, actor=_actor())
    ctx = HubContext.open(config)
    try:
        clip = ClipCatalog(ctx).get(args.clip)
        if clip is None:
            raise UsageError(f"--clip: no clip {args.clip!r} on this hub (see: edge-media clips list)")
        outcome = flag_clip(ctx, clip, request)
    finally:
        ctx.close()
    flag = outcome.flag
    truth = f", truth {flag.truth}" if flag.truth else ""
    where = ("kept on this hub only (motion flags never leave it)" if not flag.partner_eligible
             else "kept on this hub; an anonymised sample is queued for the model partner" if outcome.partner_queued
             else "kept on this hub; nothing queued for the model partner (no misdetection-feedback consent)")
    print(f"flagged clip {flag.clip_id}: {flag.kind} {flag.label}{truth} (flag {flag.flag_id}); {where}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    ctx = HubContext.open(config)
    try:
        if not config.feedback.enabled:
            print("feedback is disabled ([feedback] enabled = false); nothing sent")
            return 0
        result = FeedbackSender(open_queue(ctx, recover=True), build_partner_store(config)).send_pass()
    finally:
        ctx.close()
    print(result.describe())
    return 1 if result.failed else 0


def cmd_disclosures(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    check_owner(config, args.owner)
    ctx = HubContext.open(config)
    try:
        rows = open_queue(ctx).disclosures(args.owner)
    finally:
        ctx.close()
    if args.json:
        print_json([d.to_json() for d in rows])
    elif not rows:
        print(f"{args.owner}: nothing was sent to the model partner")
    else:
        print(table(["sample id", "purpose", "consent id", "label", "bytes", "sent", "retracted"],
                    [[d.sample_id, d.purpose, d.consent_id, d.label or None, d.bytes, iso_utc(d.sent_at),
                      d.retraction_id or "no"] for d in rows]))  # fmt: skip
    return 0


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (e.g. a container)
        return "cli"


def cmd_flags(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.owner is not None:
        check_owner(config, args.owner)
    ctx = HubContext.open(config)
    try:
        flags = Flags(ctx.db).list_flags(owner=args.owner)
        names = ClipCatalog(ctx).camera_names
    finally:
        ctx.close()
    if args.json:
        print_json([_flag_dict(f, names.get(f.camera_hash)) for f in flags])
    elif not flags:
        print("no flags")
    else:
        rows = [[f.flag_id, f.clip_id, names.get(f.camera_hash), f.owner, f.kind, f.label, f.truth,
                 None if f.score is None else round(f.score, 3),
                 iso_utc(f.created), "eligible" if f.partner_eligible else "local only"] for f in flags]
        print(table(["flag", "clip", "camera", "owner", "kind", "label", "truth", "score", "created", "partner"],
                    rows))  # fmt: skip
    return 0


def _flag_dict(flag: Flag, camera: str | None) -> dict[str, Any]:
    return {**flag.to_dict(), "camera": camera, "created": iso_utc(flag.created)}


def add_feedback_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("feedback", help="report misdetections in a clip; see what was reported")
    fsub = f.add_subparsers(dest="feedback_command", required=True, metavar="COMMAND", help="one of:")
    help_ = "flag an event of a clip as wrong, or one the model missed (kept on this hub)"
    p = fsub.add_parser("flag", help=help_, description=help_)
    p.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
    p.add_argument("--clip", required=True, help="clip id (see: edge-media clips list)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--wrong", metavar="LABEL", help=f"an event of the clip that was wrong ({MOTION} or audio)")
    which.add_argument("--missed", metavar="LABEL",
                       help="an event that happened in the clip but the model did not detect")
    p.add_argument("--truth", metavar="LABEL", help=f"with --wrong: what it really was, or '{NOTHING}'")
    p.set_defaults(func=cmd_flag)
    help_ = "list the misdetections reported on this hub"
    ls = fsub.add_parser("flags", help=help_, description=help_)
    ls.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
    ls.add_argument("--owner", help="only this owner's flags")
    ls.add_argument("--json", action="store_true", help="print the same data as JSON (times as ISO-8601 UTC)")
    ls.set_defaults(func=cmd_flags)
    help_ = "run one sending pass of the consented, anonymised samples to the model partner"
    snd = fsub.add_parser("send", help=help_, description=help_)
    snd.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
    snd.set_defaults(func=cmd_send)
    help_ = "what of the owner's audio was sent to the model partner (never the audio itself)"
    dis = fsub.add_parser("disclosures", help=help_, description=help_)
    dis.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
    dis.add_argument("--owner", required=True, help="owner id")
    dis.add_argument("--json", action="store_true", help="print the same data as JSON (times as ISO-8601 UTC)")
    dis.set_defaults(func=cmd_disclosures)
