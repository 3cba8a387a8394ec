"""``edge-media consent …``: the owner grants, withdraws and reviews consent to send anonymised audio.

Granting shows the notice (its text, version and sha256) and asks on a terminal; without one it needs
``--yes``. Withdrawing takes exactly the same command and confirmation. Withdrawing when nothing is in force is
not an error: it says so and exits 0 (the owner's wish — no consent — already holds; a retry is harmless).
Bad input (unknown owner or purpose, an actor who is not the owner) is one line, exit 2, and nothing is opened
or written.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

from uploader.db import Database

from ..config import Config, load_config
from ..errors import UsageError
from ..privacy.consent import ConsentLedger, NotTheOwner, iso_utc
from ..privacy.notices import Notice, NoticeBook, Purpose
from ..service.consenting import consent_summary, grant_consent, has_consent_to_withdraw, withdraw_consent
from ..service.context import DB_NAME, DataDirError, HubContext
from .format import fields, print_json, table
from .storage import check_owner


def _checked(args: argparse.Namespace) -> tuple[Config, Purpose | None]:
    """Everything the command line can get wrong, before the database is opened."""
    config = load_config(args.config)
    check_owner(config, args.owner)
    purpose = Purpose.parse(args.purpose) if args.purpose is not None else None
    actor = getattr(args, "actor", None)
    if actor is not None and actor != args.owner:
        raise NotTheOwner(f"--actor: only the owner can grant or withdraw consent; {actor!r} is not {args.owner!r}")
    if hasattr(args, "yes") and not args.yes and not sys.stdin.isatty():
        raise UsageError(f"stdin is not a terminal: read the notice (edge-media consent notice --purpose {purpose}) "
                         f"and add --yes to confirm the {args.consent_command}")
    return config, purpose


def _ledger(config: Config) -> ConsentLedger:
    data = Path(config.service.data_dir)
    try:
        return ConsentLedger(Database(data / DB_NAME))
    except (OSError, sqlite3.Error) as exc:
        raise DataDirError(f"cannot use service.data_dir {data}: {getattr(exc, 'strerror', None) or exc}") from None


def _confirmed(args: argparse.Namespace, question: str) -> bool:
    if args.yes:
        return True
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _print_notice(notice: Notice) -> None:
    print(notice.text.rstrip("\n"))
    print(f"\n[notice {notice.purpose} v{notice.version}, sha256 {notice.sha256}]")


def cmd_grant(args: argparse.Namespace) -> int:
    config, purpose = _checked(args)
    assert purpose is not None  # --purpose is required here
    ledger = _ledger(config)
    notice = ledger.notices.current(purpose, ledger.clock())
    _print_notice(notice)  # shown before asking: the grant records this exact text's hash
    if not _confirmed(args, f"{args.owner}: grant consent for {purpose} under notice v{notice.version}?"):
        print("not granted; nothing recorded", file=sys.stderr)
        return 1
    change = grant_consent(ledger, args.owner, purpose, notice_version=notice.version,
                           actor=args.actor or args.owner, method="cli")  # fmt: skip
    r = change.record
    verb = "granted" if change.recorded else "already granted"
    print(f"{args.owner}: {verb} {purpose} under notice v{r.notice_version} at {iso_utc(r.at)}; "
          f"consent id {r.consent_id}")
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    config, purpose = _checked(args)
    assert purpose is not None
    ledger = _ledger(config)
    if not has_consent_to_withdraw(ledger, args.owner, purpose):
        print(f"{args.owner}: no consent for {purpose} to withdraw; nothing recorded")
        return 0
    question = (f"{args.owner}: withdraw consent for {purpose}? Nothing more will be sent, queued samples are "
                "deleted and samples already sent are retracted")
    if not _confirmed(args, question):
        print("not withdrawn; nothing recorded", file=sys.stderr)
        return 1
    ctx = HubContext.open(config)
    try:
        done = withdraw_consent(ctx, args.owner, purpose, actor=args.actor or args.owner, method="cli")
    finally:
        ctx.close()
    if done is None:  # withdrawn meanwhile, by another command
        print(f"{args.owner}: no consent for {purpose} to withdraw; nothing recorded")
        return 0
    r = done.change.record
    print(f"{args.owner}: withdrew {purpose} at {iso_utc(r.at)} (ends consent id {r.withdraws}); "
          f"withdrawal id {r.consent_id}")
    owed = done.retractions_owed
    print(f"{args.owner}: {done.deleted} queued sample(s) deleted; {done.retractions_written} retraction(s) "
          "written to the partner" + (f", {owed} owed (written by the next sending pass)" if owed else ""))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    config, purpose = _checked(args)
    ledger = _ledger(config)
    states = [s for s in ledger.states(args.owner) if purpose in (None, s.purpose)]
    history = [r for r in ledger.history(args.owner) if purpose in (None, r.purpose)]
    if args.json:
        print_json(consent_summary(ledger, args.owner, purpose))
        return 0
    print(fields({"owner": args.owner, **{s.purpose.value: s.describe() for s in states}}))
    headers = ["at", "action", "purpose", "notice", "method", "actor", "consent id", "withdraws"]
    rows = [[iso_utc(r.at), r.action, r.purpose.value, f"v{r.notice_version}" if r.notice_version else None,
             r.method, r.actor, r.consent_id, r.withdraws] for r in history]  # fmt: skip
    print("\n" + (table(headers, rows) if rows else "no consent recorded"))
    return 0


def cmd_notice(args: argparse.Namespace) -> int:
    purpose = Purpose.parse(args.purpose)
    book = NoticeBook.packaged()
    if args.version is None:
        _print_notice(book.current(purpose, time.time()))
    else:
        _print_notice(book.get(purpose, args.version))
    return 0


def add_consent_parser(sub: argparse._SubParsersAction) -> None:
    co = sub.add_parser("consent", help="the owner's consent to send anonymised audio to the model partner")
    csub = co.add_subparsers(dest="consent_command", required=True, metavar="COMMAND", help="one of:")
    purposes = " | ".join(p.value for p in Purpose)

    def cmd(name: str, func, help_: str, *, purpose_required: bool = True) -> argparse.ArgumentParser:
        p = csub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
        p.add_argument("--owner", required=True, help="owner id, as in [owners] or a camera's owner")
        p.add_argument("--purpose", required=purpose_required, help=purposes)
        p.set_defaults(func=func)
        return p

    for name, func, help_ in (("grant", cmd_grant, "show the notice and record the owner's consent"),
                              ("withdraw", cmd_withdraw, "record the owner's withdrawal of consent")):
        p = cmd(name, func, help_)
        p.add_argument("--yes", action="store_true", help="confirm without asking (required when not on a terminal)")
        p.add_argument("--actor", help="who acts (default: the owner; anyone else is refused)")
    cmd("show", cmd_show, "the owner's consent per purpose and full history", purpose_required=False).add_argument(
        "--json", action="store_true", help="print the same data as JSON (times as ISO-8601 UTC)")
    n = csub.add_parser("notice", help="print a consent notice", description="print a consent notice")
    n.add_argument("--purpose", required=True, help=purposes)
    n.add_argument("--version", type=int, help="notice version (default: the current one)")
    n.set_defaults(func=cmd_notice)
