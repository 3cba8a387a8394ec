"""Granting and withdrawing consent: the one implementation behind ``edge-media consent grant|withdraw`` and the
API's consent routes.

A grant names the notice version the owner was shown; it must be the current one (a page left open across a
notice bump must not record agreement to a text the owner never saw). A withdrawal is recorded first, then the
owner's queued samples are deleted and the retraction of those already sent is written (or owed, durably).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..privacy.consent import ConsentChange, ConsentLedger, Method
from ..privacy.notices import Purpose
from .context import HubContext
from .feedback import after_withdrawal


class NoticeNotCurrent(UsageError):
    """The notice version agreed to is not the current one: nothing was recorded; show the current notice."""


@dataclass(frozen=True)
class Withdrawal:
    change: ConsentChange
    deleted: int  # queued samples deleted
    retractions_written: int
    retractions_owed: int  # written by the next sending pass


def grant_consent(ledger: ConsentLedger, owner: str, purpose: Purpose, *, notice_version: int, actor: str,
                  method: Method) -> ConsentChange:
    """Record ``owner``'s consent to ``purpose`` under the notice they were shown (``notice_version``)."""
    current = ledger.notices.current(purpose, ledger.clock())
    if notice_version != current.version:
        raise NoticeNotCurrent(f"notice v{notice_version} of {purpose} is not the current notice "
                               f"(v{current.version}); show it and ask again. Nothing recorded")
    return ledger.grant(owner, purpose, actor=actor, method=method, notice_version=notice_version)


def has_consent_to_withdraw(ledger: ConsentLedger, owner: str, purpose: Purpose) -> bool:
    history = [r for r in ledger.history(owner) if r.purpose == purpose]
    return bool(history) and history[-1].action != "withdraw"


def withdraw_consent(ctx: HubContext, owner: str, purpose: Purpose, *, actor: str,
                     method: Method) -> Withdrawal | None:
    """Record the withdrawal and act on it at once; None when nothing was in force (nothing written)."""
    change = ConsentLedger(ctx.db).withdraw(owner, purpose, actor=actor, method=method)
    if change is None:
        return None
    deleted, written, owed = after_withdrawal(ctx, owner, purpose)
    return Withdrawal(change, deleted, written, owed)


def consent_summary(ledger: ConsentLedger, owner: str, purpose: Purpose | None = None) -> dict:
    """``consent show --json`` and ``GET /api/v1/consent``: the state per purpose and the full history."""
    return {"owner": owner,
            "state": [s.to_json() for s in ledger.states(owner) if purpose in (None, s.purpose)],
            "history": [r.to_json() for r in ledger.history(owner) if purpose in (None, r.purpose)]}
