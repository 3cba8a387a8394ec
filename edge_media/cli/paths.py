"""Output files of commands (exports, plots): checked before any work, written whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError


def check_output_path(path: Path, option: str) -> Path:
    """``path`` if a file can be created there; UsageError naming ``option`` otherwise (nothing is created)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option}: {path} is a directory; give a file name")
    if not parent.is_dir():
        why = "is not a directory" if parent.exists() else "does not exist"
        raise UsageError(f"{option}: cannot write {path}: directory {parent} {why}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option}: cannot write {path}: directory {parent} is not writable")
    return path


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffix, so writers that infer a format from it still do);
    on success it is fsynced and renamed onto ``path``, on any failure removed. A failed export therefore
    never leaves a 0-byte or truncated file that looks like a finished one."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
