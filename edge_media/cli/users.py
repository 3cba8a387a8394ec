"""``edge-media users …``: who may use the hub's API. ``add`` prints the new token once; only its hash is kept."""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

from uploader.db import Database

from ..access import ROLES, User, UserStore
from ..config import Config, load_config
from ..service.context import DB_NAME, DataDirError
from .format import iso_utc, print_json, table
from .storage import check_owner, check_source


def cmd_add(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    cameras = [c.strip() for c in (args.cameras or "").split(",") if c.strip()]
    if args.role == "owner":
        check_owner(config, args.owner or args.name)
    for name in cameras:
        check_source(config, name, option="--cameras")
    db = open_db(config)
    try:
        user, token = UserStore(db).add(args.name, args.role, owner=args.owner, cameras=cameras)
    finally:
        db.close()
    what = f"owner {user.owner}" if user.role == "owner" else f"viewer of {', '.join(user.cameras)}"
    print(f"added user {user.name} ({what}); their API token, shown only now:")
    print(token)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    db = open_db(load_config(args.config))
    try:
        users = UserStore(db).list_users()
    finally:
        db.close()
    if args.json:
        print_json([_user_dict(u) for u in users])
    elif not users:
        print("no users (add one: edge-media users add NAME --role owner --config F)")
    else:
        print(table(["name", "role", "owner", "cameras", "created", "revoked"],
                    [[u.name, u.role, u.owner, list(u.cameras), iso_utc(u.created), iso_utc(u.revoked_at)]
                     for u in users]))  # fmt: skip
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    db = open_db(load_config(args.config))
    try:
        user = UserStore(db).revoke(args.name)
    finally:
        db.close()
    print(f"revoked user {user.name} at {iso_utc(user.revoked_at)}: their token no longer works")
    return 0


def open_db(config: Config) -> Database:
    """Only the hub's database: managing users needs neither the store (nor its credentials) nor the spool."""
    data = Path(config.service.data_dir)
    try:
        data.mkdir(parents=True, exist_ok=True)
        return Database(data / DB_NAME)
    except (OSError, sqlite3.Error) as exc:
        raise DataDirError(f"cannot use service.data_dir {data}: {getattr(exc, 'strerror', None) or exc}") from None


def _user_dict(u: User) -> dict:
    return {"name": u.name, "role": u.role, "owner": u.owner, "cameras": list(u.cameras),
            "created": iso_utc(u.created), "revoked_at": iso_utc(u.revoked_at)}


def add_users_parser(sub: argparse._SubParsersAction) -> None:
    us = sub.add_parser("users", help="people who may use the hub's API: add (prints a token once), list, revoke")
    usub = us.add_subparsers(dest="users_command", required=True, metavar="COMMAND", help="one of:")

    def cmd(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = usub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
        p.set_defaults(func=func)
        return p

    a = cmd("add", cmd_add, "add a user and print their API token (shown only once)")
    a.add_argument("name", help="user name (letters, digits, _ . @ -)")
    a.add_argument("--role", required=True, choices=ROLES, help="owner: everything of their cameras; "
                   "viewer: events and clips of the named cameras, and flagging them")
    a.add_argument("--owner", help="role owner: the owner id they act for (default: NAME)")
    a.add_argument("--cameras", help="role viewer: comma-separated camera/microphone names they may see")
    ls = cmd("list", cmd_list, "list users (never their tokens)")
    ls.add_argument("--json", action="store_true", help="print the same data as JSON (times as ISO-8601 UTC)")
    cmd("revoke", cmd_revoke, "revoke a user's token at once (the user stays listed)").add_argument(
        "name", help="user name")
