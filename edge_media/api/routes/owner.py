"""The owner's own business: consent, the disclosure log, export and erasure. Owners only (viewers get 403)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import Annotated, BinaryIO, Literal

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from ...privacy.consent import ConsentLedger
from ...privacy.notices import Purpose
from ...service.consenting import consent_summary, grant_consent, withdraw_consent
from ...service.feedback import open_queue
from ..auth import Owner, State
from ..schemas import ConsentChangeOut, ConsentOut, EraseIn, EraseOut, GrantIn, NoticeOut, iso
from ..state import ApiState

log = logging.getLogger(__name__)
router = APIRouter()

CHUNK = 64 * 1024


def _owner_id(who: Owner) -> str:
    assert who.owner is not None  # role owner always has one
    return who.owner


def _purpose(text: str) -> Purpose:
    return Purpose.parse(text, option="purpose")  # UsageError -> 422, naming the purposes


@router.get("/api/v1/consent", response_model=ConsentOut, tags=["consent"])
def consent(state: State, who: Owner) -> ConsentOut:
    """The same data as ``edge-media consent show --json``."""
    return ConsentOut(**consent_summary(ConsentLedger(state.hub.ctx.db), _owner_id(who)))


@router.get("/api/v1/consent/notice", response_model=NoticeOut, tags=["consent"])
def notice(state: State, who: Owner, purpose: Annotated[str, Query(max_length=64)]) -> NoticeOut:
    """The current notice of ``purpose``: what the owner must read before granting (grant names its version)."""
    ledger = ConsentLedger(state.hub.ctx.db)
    n = ledger.notices.current(_purpose(purpose), ledger.clock())
    return NoticeOut(purpose=n.purpose.value, version=n.version, sha256=n.sha256, text=n.text)


@router.post("/api/v1/consent/{purpose}/grant", response_model=ConsentChangeOut, tags=["consent"],
             responses={409: {"description": "notice_version is not the current notice"}})
def grant(purpose: str, body: GrantIn, state: State, who: Owner) -> ConsentChangeOut:
    """Record the owner's consent under the notice they were shown (its version; 409 if no longer current)."""
    owner = _owner_id(who)
    # actor: the owner id this user acts for (the ledger accepts only the owner's own acts; the user is
    # authenticated as acting for them).
    change = grant_consent(ConsentLedger(state.hub.ctx.db), owner, _purpose(purpose),
                           notice_version=body.notice_version, actor=owner, method="api")  # fmt: skip
    r = change.record
    return ConsentChangeOut(owner=owner, purpose=r.purpose.value, action="grant", recorded=change.recorded,
                            consent_id=r.consent_id, at=iso(r.at))


@router.post("/api/v1/consent/{purpose}/withdraw", response_model=ConsentChangeOut, tags=["consent"])
def withdraw(purpose: str, state: State, who: Owner) -> ConsentChangeOut:
    """The same as ``edge-media consent withdraw``: queued samples are deleted, those sent are retracted."""
    owner, p = _owner_id(who), _purpose(purpose)
    done = withdraw_consent(state.hub.ctx, owner, p, actor=owner, method="api")
    if done is None:  # nothing in force: the owner's wish already holds
        return ConsentChangeOut(owner=owner, purpose=p.value, action="withdraw", recorded=False, consent_id=None,
                                at=None)
    r = done.change.record
    return ConsentChangeOut(owner=owner, purpose=p.value, action="withdraw", recorded=True, consent_id=r.consent_id,
                            at=iso(r.at), deleted_samples=done.deleted, retractions_written=done.retractions_written,
                            retractions_owed=done.retractions_owed)


@router.get("/api/v1/disclosures", response_model=list[dict], tags=["consent"])
def disclosures(state: State, who: Owner) -> list[dict]:
    """What was sent to the model partner, under which consent, and whether it was retracted."""
    return [d.to_json() for d in open_queue(state.hub.ctx).disclosures(_owner_id(who))]


@router.get("/api/v1/export", tags=["owner rights"], response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {}, "application/x-tar": {}},
                             "description": "Everything of the owner, streamed"}})
async def export(state: State, who: Owner, format: Literal["zip", "tar"] = "zip") -> StreamingResponse:
    """Every clip, sidecar, flag, consent record and disclosure of the owner, as one archive written while it
    downloads (never held in memory). Fails with 503 before the first byte if the store cannot be read."""
    owner = _owner_id(who)
    stream = _ExportStream(state, owner, format)
    first = await run_in_threadpool(stream.first_chunk)
    name = f"edge-media-{owner}.{'zip' if format == 'zip' else 'tar'}"
    media_type = "application/zip" if format == "zip" else "application/x-tar"
    return StreamingResponse(stream.rest(first), media_type=media_type,
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post("/api/v1/erase", response_model=EraseOut, tags=["owner rights"])
def erase(body: EraseIn, state: State, who: Owner) -> EraseOut:
    """Erase every recording of the owner (store, spool, queues, flags); restrictions and the consent ledger
    stay. Cannot be undone: the body must say ``{"confirm": "ERASE"}``."""
    report = state.hub.rights.erase(state.hub.ctx.scope(_owner_id(who)), outbox=state.hub.outbox)
    state.clips.invalidate()
    return EraseOut(objects=report.objects, spool_clips=report.spool_clips, outbox_rows=report.outbox_rows,
                    index_rows=report.index_rows, flags=report.flags, feedback=report.feedback)


class _ExportStream:
    """OwnerRights.export writing into a pipe from a thread; the response reads the other end. Memory stays at
    one pipe buffer plus one chunk whatever the size of the owner's recordings."""

    def __init__(self, state: ApiState, owner: str, fmt: Literal["zip", "tar"]) -> None:
        read_fd, write_fd = os.pipe()
        self._reader: BinaryIO = os.fdopen(read_fd, "rb")
        self._writer: BinaryIO = os.fdopen(write_fd, "wb")
        self.error: BaseException | None = None
        scope = state.hub.ctx.scope(owner)
        self._thread = threading.Thread(target=self._write, args=(state, scope, fmt), name="api-export", daemon=True)
        self._thread.start()

    def _write(self, state: ApiState, scope, fmt: Literal["zip", "tar"]) -> None:
        try:
            state.hub.rights.export(scope, self._writer, fmt=fmt)
        except BrokenPipeError:
            log.info("export download abandoned by the client")
        except BaseException as exc:  # reported to the reader: 503 before the first byte, a cut stream after
            self.error = exc
            log.warning("export failed: %s", exc)
        finally:
            try:
                self._writer.close()
            except OSError:
                pass

    def first_chunk(self) -> bytes:
        first = self._reader.read(CHUNK)
        if not first:
            self._thread.join()
            self._reader.close()
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"export failed: {self.error}" if self.error else "export produced nothing")
        return first

    def rest(self, first: bytes) -> Iterator[bytes]:
        try:
            yield first
            while chunk := self._reader.read(CHUNK):
                yield chunk
            self._thread.join()
            if self.error is not None:  # cut the response short: the client must not take it for complete
                raise RuntimeError(f"export failed mid-stream: {self.error}")
        finally:
            self._reader.close()
