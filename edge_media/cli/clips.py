"""``edge-media clips list``: the hub's recorded clips, stored and not yet uploaded, with their events.

This is the hub's local view (camera and owner names are shown); see :mod:`edge_media.service.catalog` for where
each clip's events are read from.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import UsageError
from ..service.catalog import ClipCatalog, ClipRecord
from ..service.context import HubContext
from .format import iso_utc, print_json, table
from .storage import check_owner, check_source

UNKNOWN = "unknown"  # events of a clip whose sidecar could not be read


def cmd_list(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: must be at least 1, got {args.limit}")
    config = load_config(args.config)
    if args.owner is not None:
        check_owner(config, args.owner)
    if args.camera is not None:
        check_source(config, args.camera)
    ctx = HubContext.open(config)
    try:
        records = ClipCatalog(ctx).list_clips(owner=args.owner, camera=args.camera, limit=args.limit)
    finally:
        ctx.close()
    if args.json:
        print_json([clip_dict(r) for r in records])
    else:
        print(clips_text(records) if records else "no clips")
    return 0


def clip_dict(r: ClipRecord) -> dict[str, Any]:
    """One clip for ``--json``: ISO-8601 UTC times, event spans in seconds into the clip."""
    d = r.details
    events = None if d is None else [
        {"label": e.label, "score": round(e.score, 4), "start_s": round(max(0.0, e.start - d.stream_start), 3),
         "end_s": None if e.end is None else round(max(0.0, e.end - d.stream_start), 3)} for e in d.events]
    return {"clip_id": r.clip_id, "camera": r.camera, "camera_hash": r.camera_hash, "owner": r.owner,
            "start": iso_utc(d.wall_start) if d else None, "end": iso_utc(r.wall_end), "events": events,
            "audio": r.has_audio, "video": r.has_video, "where": r.location, "key": r.key,
            "local_copy": r.local_path, "retain_until": iso_utc(r.retain_until)}  # fmt: skip


def _events_cell(r: ClipRecord) -> str:
    if r.events is None:
        return UNKNOWN
    return ", ".join(f"{e.label} {e.score:.2f}" for e in r.events) or "-"


def _where_cell(r: ClipRecord) -> str:
    if r.location == "spool":
        return "spool (not uploaded)"
    return "stored, local copy" if r.local_path else "stored"


def clips_text(records: list[ClipRecord]) -> str:
    rows = [[r.clip_id, r.camera or f"(removed {r.camera_hash[:8]})", r.owner,
             iso_utc(r.details.wall_start) if r.details else None, iso_utc(r.wall_end), _events_cell(r),
             _where_cell(r), r.key] for r in records]  # fmt: skip
    return table(["clip", "camera", "owner", "start", "end", "events", "where", "key"], rows)


def add_clips_parser(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("clips", help="the hub's recorded clips")
    csub = c.add_subparsers(dest="clips_command", required=True, metavar="COMMAND", help="one of:")
    help_ = "list recorded clips (stored and not yet uploaded), newest first, with their events"
    p = csub.add_parser("list", help=help_, description=help_)
    p.add_argument("--config", required=True, type=Path, help="the hub's TOML config file")
    p.add_argument("--camera", help="only this camera or microphone")
    p.add_argument("--owner", help="only this owner's clips")
    p.add_argument("--limit", type=int, help="at most this many clips (the newest)")
    p.add_argument("--json", action="store_true", help="print the same data as JSON (times as ISO-8601 UTC)")
    p.set_defaults(func=cmd_list)
