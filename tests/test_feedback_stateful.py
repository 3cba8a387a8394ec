"""A hypothesis state machine over grant / withdraw / flag / send pass / crash between upload and commit /
restart, with two owners sharing a hub, checking after every step that:

* every sample object in the partner store was sent while a consent for its purpose was in force (its
  disclosure names the grant the ledger says was in force at that moment), or is the upload of a crashed pass
  that is still queued — and is removed rather than left unlisted if consent goes;
* after a withdrawal nothing of that owner is queued for sending;
* every sample retracted in the log is listed in a retraction object once a pass has run.

One real anonymised sample (PyAV-encoded alarm, real speech masking) is cloned under fresh sample ids: what
is tested here is the queue's bookkeeping, not the anonymiser, and cloning keeps each step fast."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import threading
import uuid
from dataclasses import replace
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from edge_media.privacy.anonymise import AnonymisedSample, anonymise
from edge_media.privacy.consent import ConsentLedger
from edge_media.privacy.feedback import FeedbackQueue, Prepared, write_atomic
from edge_media.privacy.feedback_send import FeedbackSender
from edge_media.privacy.notices import Purpose
from edge_media.service.feedback import FeedbackThread
from uploader import LocalStore
from uploader.db import Database

from audio_fixtures import alarm_scene, encode_audio

MIS = Purpose.MISDETECTION_FEEDBACK
OWNERS = ("alice", "bob")
_BASE: list[AnonymisedSample] = []


def base_sample() -> AnonymisedSample:
    if not _BASE:
        folder = Path(tempfile.mkdtemp(prefix="fb-base-"))
        samples, _ = alarm_scene(16000, silence_s=0.5, lead_noise_s=0.5, alarm_s=1.5, tail_s=0.5)
        clip = encode_audio(folder / "alarm.flac", samples, 16000)
        _BASE.append(anonymise(clip, span=(1.0, 2.5), purpose=MIS.value, predicted="smoke_co_alarm", score=0.9,
                               corrected="nothing", model_name="audio_events", model_version="1.1.0",
                               month="2026-11"))
        shutil.rmtree(folder)
    return _BASE[0]


class FeedbackMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="fb-machine-"))
        ticks = itertools.count(1_800_000_000)
        self.clock = lambda: float(next(ticks))  # every call a later second: no two rows share a time
        self.store = LocalStore(self.dir / "partner")
        self.open()

    def open(self) -> None:
        self.db = Database(self.dir / "edge-media.db")
        self.ledger = ConsentLedger(self.db, clock=self.clock)
        self.queue = FeedbackQueue(self.db, self.dir / "feedback", self.ledger, clock=self.clock)
        self.sender = FeedbackSender(self.queue, self.store)
        # The service's sender: it applies withdrawals from the ledger's change feed (a fresh one after a restart).
        self.service = FeedbackThread(self.queue, self.store, 3600, threading.Event())
        self.settled = False  # a pass has run since the last withdrawal

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(owner=st.sampled_from(OWNERS))
    def grant(self, owner: str) -> None:
        self.ledger.grant(owner, MIS, actor=owner, method="cli")

    @rule(owner=st.sampled_from(OWNERS), clean_up=st.booleans())
    def withdraw(self, owner: str, clean_up: bool) -> None:
        """As the CLI does (withdraw, then clean up at once) or as an API client might (the ledger only: the
        sender's claim-time check must then hold the line)."""
        if self.ledger.withdraw(owner, MIS, actor=owner, method="api") is None:
            return
        self.settled = False
        if clean_up:
            self.queue.withdrawn(owner, MIS)
            assert not [i for i in self.queue.pending(owner) if self._state(i.sample_id) == "pending"]

    @rule(owner=st.sampled_from(OWNERS))
    def flag(self, owner: str) -> None:
        base = base_sample()
        sample = AnonymisedSample(base.flac, replace(base.meta, sample_id=str(uuid.uuid4())))
        spool = self.dir / "feedback"
        spool.mkdir(exist_ok=True)
        flac, meta = spool / f"{sample.sample_id}.flac", spool / f"{sample.sample_id}.json"
        write_atomic(flac, sample.flac)
        write_atomic(meta, sample.json_bytes())
        queued = self.queue.queue(Prepared(sample, owner, MIS, "smoke_co_alarm", flac, meta))
        assert queued == bool(self.ledger.allows(owner, MIS)) or not queued
        if not queued:
            assert not flac.exists() and not meta.exists()

    @rule()
    def send_pass(self) -> None:
        self.service.check_withdrawals()
        self.sender.send_pass()
        self.settled = True
        owed = self.queue.owed_retractions()
        assert owed == [], "a working store gets every retraction in the same pass"

    @precondition(lambda self: any(i for i in self.queue.pending() if self._state(i.sample_id) == "pending"))
    @rule()
    def crash_after_upload(self) -> None:
        claimed = self.queue.claim()
        if claimed is not None and claimed[1] is not None:
            self.sender._upload(claimed[0])  # objects up; the process dies before its commit
        self.restart()

    @rule()
    def restart(self) -> None:
        self.db.close()
        self.open()

    def _state(self, sample_id: str) -> str | None:
        rows = self.db.query("SELECT state FROM feedback_outbox WHERE sample_id = ?", (sample_id,))
        return rows[0]["state"] if rows else None

    @invariant()
    def every_partner_sample_was_sent_under_consent_in_force(self) -> None:
        disclosed = {d.sample_id: d for d in self.queue.disclosures()}
        queued = {i.sample_id for i in self.queue.pending() if i.attempts}
        for obj in self.store.list_objects("samples/"):
            sample_id = Path(obj.key).stem
            if sample_id in queued:
                continue  # a crashed pass's upload: sent (and logged) or removed by the next pass
            d = disclosed.get(sample_id)
            assert d is not None, f"{obj.key} is in the partner store but was never disclosed"
            state = self.ledger.allows(d.owner, MIS, at=d.sent_at)
            assert state.allowed and state.consent_id == d.consent_id, (obj.key, state)

    @invariant()
    def every_retracted_sample_is_in_a_written_retraction(self) -> None:
        written = {}
        for obj in self.store.list_objects("retractions/"):
            body = json.loads(self.store.get_object(obj.key))
            written[body["retraction_id"]] = set(body["sample_ids"])
        for r in self.queue.owed_retractions():
            written.setdefault(r.retraction_id, set(r.sample_ids))  # owed until the next pass
        for d in self.queue.disclosures():
            if d.retraction_id is not None:
                assert d.sample_id in written[d.retraction_id]
            elif self.settled:
                last = [r for r in self.ledger.history(d.owner) if r.purpose == MIS][-1]
                assert last.action == "grant", f"{d.sample_id}: sent, withdrawn, a pass ran, yet not retracted"


FeedbackMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=40, deadline=None)
TestFeedbackMachine = FeedbackMachine.TestCase
