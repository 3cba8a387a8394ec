"""The one error base of edge-media, and the tuple of every domain error the CLI reports as one line.

Every error edge-media raises on purpose derives from ``EdgeMediaError``: its ``str()`` is the whole message
for the operator (one line naming the problem, never a secret) and ``exit_code`` says whether the input was
bad (2: config, options, paths) or something failed at run time (1). Anything else that escapes is a bug and
keeps its traceback.

``recorder`` and ``uploader`` are lower layers: they must never import ``edge_media`` (a layer never reaches
up), so each has ONE base of its own — ``recorder.RecorderError`` and ``uploader.StoreError`` — and this module
lists them beside ours in ``domain_errors()``, the tuple the CLI's single handler catches. It is a function, not a
constant: ``edge_media.config`` derives its errors from this module and must not pull in PyAV and minio.
"""

from __future__ import annotations

EXIT_RUNTIME = 1
EXIT_USAGE = 2


class EdgeMediaError(Exception):
    """Base of every edge-media domain error. ``str()`` is the operator's message."""

    exit_code: int = EXIT_RUNTIME


class UsageError(EdgeMediaError, ValueError):
    """A command-line option, path or name the command cannot use (nothing was written)."""

    exit_code = EXIT_USAGE


def domain_errors() -> tuple[type[Exception], ...]:
    """``(EdgeMediaError, RecorderError, StoreError)``: every error the CLI reports as one line."""
    from recorder import RecorderError
    from uploader import StoreError

    return (EdgeMediaError, RecorderError, StoreError)


def exit_code(exc: BaseException) -> int:
    """The process exit status for a domain error: its ``exit_code``, else 1 (a run-time failure)."""
    return int(getattr(exc, "exit_code", EXIT_RUNTIME))


def describe(exc: BaseException) -> str:
    """The message the CLI prints for a domain error (never empty)."""
    from recorder import RecorderError
    from uploader import StoreError

    text = str(exc) or type(exc).__name__
    # The lower layers cannot word their messages for the CLI; a prefix says which part failed.
    if isinstance(exc, StoreError):
        return f"storage error: {text}"
    if isinstance(exc, RecorderError):
        return f"recording error: {text}"
    return text
