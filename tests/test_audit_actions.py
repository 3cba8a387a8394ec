"""The audit log's documented actions cover every action the code writes."""

from __future__ import annotations

import re
from pathlib import Path

import uploader.audit

ROOT = Path(uploader.audit.__file__).resolve().parents[1]


def documented_actions() -> set[str]:
    """The words of the comment that documents ``AuditEntry.action``."""
    source = Path(uploader.audit.__file__).read_text(encoding="utf-8")
    block = source[source.index("class AuditEntry"):source.index("\n", source.index("    action: str"))]
    comment = " ".join(line.split("#", 1)[1] for line in block.splitlines() if "#" in line)
    return set(re.findall(r"[a-z][a-z-]*", comment))


def written_actions() -> set[str]:
    found = set()
    for package in ("edge_media", "uploader", "recorder"):
        for path in (ROOT / package).rglob("*.py"):
            found |= set(re.findall(r'audit\.record\(\s*conn,\s*"([^"]+)"', path.read_text(encoding="utf-8")))
    return found


def test_every_audit_action_written_is_documented():
    """Regression: the stop-recording quota wrote `refuse` entries that the documented list of actions lacked."""
    written = written_actions()
    assert {"refuse", "delete", "erase", "restrict"} <= written, f"the scan finds the writers: {sorted(written)}"
    assert written - documented_actions() == set(), "undocumented audit actions"
