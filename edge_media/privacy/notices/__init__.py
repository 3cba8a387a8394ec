"""The consent notices: the exact texts an owner is shown before agreeing, one file per purpose and version.

A purpose exists because it has a notice. ``index.json`` lists every published version per purpose with its
publication time and whether it requires re-consent; the texts beside it are never edited once published (the
ledger stores the sha256 of the text the owner saw, so an edited text would no longer prove what was agreed).
A new version that requires re-consent makes grants under earlier versions stop counting from its publication.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache
from importlib import resources

from ...errors import UsageError


class Purpose(StrEnum):
    """What an owner consents to. The values are the CLI's spelling and the ledger's."""

    MISDETECTION_FEEDBACK = "misdetection-feedback"
    PRODUCT_IMPROVEMENT = "product-improvement"

    @classmethod
    def parse(cls, text: str, *, option: str = "--purpose") -> Purpose:
        try:
            return cls(text)
        except ValueError:
            known = [p.value for p in cls]
            close = difflib.get_close_matches(text, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(f"{option}: unknown purpose {text!r} ({hint}purposes: {', '.join(known)})") from None


@dataclass(frozen=True)
class Notice:
    purpose: Purpose
    version: int
    text: str = field(repr=False)
    published: float  # epoch seconds, UTC
    requires_reconsent: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


class NoticeBook:
    """Every published notice, by purpose; answers which one is current and which versions still count."""

    def __init__(self, notices: Iterable[Notice]) -> None:
        self._by_purpose: dict[Purpose, list[Notice]] = {p: [] for p in Purpose}
        for n in sorted(notices, key=lambda n: n.version):
            earlier = self._by_purpose[n.purpose]
            if earlier and (n.version == earlier[-1].version or n.published < earlier[-1].published):
                raise ValueError(f"notice {n.purpose} v{n.version}: versions must be unique and published in order")
            earlier.append(n)

    @classmethod
    def packaged(cls) -> NoticeBook:
        """The notices shipped in this package (read once)."""
        return _packaged()

    @classmethod
    def from_index(cls, index: dict, read_text: Callable[[str], str]) -> NoticeBook:
        notices = [Notice(Purpose(purpose), int(e["version"]), read_text(e["file"]),
                          datetime.fromisoformat(e["published"]).timestamp(), bool(e["requires_reconsent"]))
                   for purpose, entries in index.items() if not purpose.startswith("_") for e in entries]
        return cls(notices)

    def publish(self, notice: Notice) -> NoticeBook:
        """A new book with ``notice`` added (how a notice bump is rolled out, and tested)."""
        return NoticeBook([*self.all(), notice])

    def all(self) -> list[Notice]:
        return [n for notices in self._by_purpose.values() for n in notices]

    def get(self, purpose: Purpose, version: int) -> Notice:
        for n in self._by_purpose[purpose]:
            if n.version == version:
                return n
        raise UsageError(f"no notice version {version} for {purpose}")

    def current(self, purpose: Purpose, at: float) -> Notice:
        """The newest notice for ``purpose`` published at or before ``at``: the one a grant at ``at`` shows."""
        published = [n for n in self._by_purpose[purpose] if n.published <= at]
        if not published:
            raise UsageError(f"no notice for {purpose} is published yet; consent cannot be given")
        return published[-1]

    def min_version(self, purpose: Purpose, at: float) -> int:
        """The oldest version whose grants still count at ``at``: the newest re-consent version published by
        then (0 if none, so every grant counts)."""
        bumps = [n.version for n in self._by_purpose[purpose] if n.requires_reconsent and n.published <= at]
        return max(bumps, default=0)


@cache
def _packaged() -> NoticeBook:
    root = resources.files(__name__)
    index = json.loads(root.joinpath("index.json").read_text(encoding="utf-8"))
    # Bytes, decoded: the sha256 must be of the file exactly as shipped (no newline translation).
    return NoticeBook.from_index(index, lambda name: root.joinpath(name).read_bytes().decode("utf-8"))
