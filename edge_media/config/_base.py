"""Shared base for every config model, plus the located error used by cross-field checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ..errors import EXIT_USAGE, EdgeMediaError


class ConfigModel(BaseModel):
    """Base of every section: unknown keys are errors (typos must not be silently ignored),
    strict types (TOML is typed, so "5" for a number is a mistake, not something to coerce),
    and frozen (the running service shares one config object between threads)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=True)


class FieldCheckError(EdgeMediaError, ValueError):
    """A cross-field check failure that knows which field to blame.

    Pydantic reports errors raised by a model validator at the model's own location; carrying a
    relative ``loc`` lets the loader name the offending field (``storage.plan``) instead of the
    whole section.
    """

    exit_code = EXIT_USAGE

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
