"""A hypothesis state machine over grant / withdraw (both purposes) / a notice bump (with or without
re-consent) / flag (misdetection feedback) / record (product improvement) / send pass / crash between upload
and commit / restart, with two owners sharing a hub, checking after every step that:

* every sample object in the partner store was sent while a consent for its purpose was in force (its
  disclosure names the grant the ledger says was in force at that moment), or is the upload of a crashed pass
  that is still queued — and is removed rather than left unlisted if consent goes;
* after a withdrawal nothing of that owner is queued for sending;
* every sample retracted in the log is listed in a retraction object once a pass has run;
* a send pass to a working store sends every queued sample whose consent holds (on: all of it goes) — and
  nothing is ever queued without consent (off: none of it goes).

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
from edge_media.privacy.notices import Notice, NoticeBook, Purpose
from edge_media.service.feedback import FeedbackThread
from uploader import LocalStore
from uploader.db import Database

from audio_fixtures import alarm_scene, encode_audio

MIS = Purpose.MISDETECTION_FEEDBACK
PURPOSES = tuple(Purpose)
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
        self.book = NoticeBook.packaged()  # a notice bump is a new release: the next start reads the new book
        self.open()

    def open(self) -> None:
        self.db = Database(self.dir / "edge-media.db")
        self.ledger = ConsentLedger(self.db, notices=self.book, clock=self.clock)
        self.queue = FeedbackQueue(self.db, self.dir / "feedback", self.ledger, clock=self.clock)
        self.sender = FeedbackSender(self.queue, self.store)
        # The service's sender: it applies withdrawals from the ledger's change feed (a fresh one after a restart).
        self.service = FeedbackThread(self.queue, self.store, 3600, threading.Event())
        self.settled = False  # a pass has run since the last withdrawal

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(owner=st.sampled_from(OWNERS), purpose=st.sampled_from(PURPOSES))
    def grant(self, owner: str, purpose: Purpose) -> None:
        self.ledger.grant(owner, purpose, actor=owner, method="cli")

    @rule(owner=st.sampled_from(OWNERS), purpose=st.sampled_from(PURPOSES), clean_up=st.booleans())
    def withdraw(self, owner: str, purpose: Purpose, clean_up: bool) -> None:
        """As the CLI does (withdraw, then clean up at once) or as an API client might (the ledger only: the
        sender's claim-time check must then hold the line)."""
        if self.ledger.withdraw(owner, purpose, actor=owner, method="api") is None:
            return
        self.settled = False
        if clean_up:
            self.queue.withdrawn(owner, purpose)
            assert not [i for i in self.queue.pending(owner)
                        if i.purpose == purpose and self._state(i.sample_id) == "pending"]

    @rule(purpose=st.sampled_from(PURPOSES), reconsent=st.booleans())
    def notice_bump(self, purpose: Purpose, reconsent: bool) -> None:
        """A release publishes a new notice version; with re-consent, older grants stop counting from then."""
        version = max(n.version for n in self.book.all() if n.purpose == purpose) + 1
        at = max(self.clock(), max(n.published for n in self.book.all()) + 1)
        self.book = self.book.publish(Notice(purpose, version, f"{purpose} notice v{version}\n", at, reconsent))
        self.restart()

    @rule(owner=st.sampled_from(OWNERS))
    def flag(self, owner: str) -> None:
        self._offer(owner, MIS)

    @rule(owner=st.sampled_from(OWNERS))
    def record(self, owner: str) -> None:
        """A new recording with audio: offered for product improvement (queued only while it is granted)."""
        self._offer(owner, Purpose.PRODUCT_IMPROVEMENT)

    def _offer(self, owner: str, purpose: Purpose) -> None:
        base = base_sample()
        sample = AnonymisedSample(base.flac, replace(base.meta, sample_id=str(uuid.uuid4()), purpose=purpose.value))
        spool = self.dir / "feedback"
        spool.mkdir(exist_ok=True)
        flac, meta = spool / f"{sample.sample_id}.flac", spool / f"{sample.sample_id}.json"
        write_atomic(flac, sample.flac)
        write_atomic(meta, sample.json_bytes())
        queued = self.queue.queue(Prepared(sample, owner, purpose, "smoke_co_alarm", flac, meta))
        assert queued == bool(self.ledger.allows(owner, purpose)), "queued exactly while consent holds"
        if not queued:
            assert not flac.exists() and not meta.exists()

    @rule()
    def send_pass(self) -> None:
        self.service.check_withdrawals()
        self.sender.send_pass()
        self.settled = True
        owed = self.queue.owed_retractions()
        assert owed == [], "a working store gets every retraction in the same pass"
        left = [i for i in self.queue.pending() if self.ledger.allows(i.owner, i.purpose)]
        assert left == [], "a pass to a working store sends everything whose consent holds"

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
            state = self.ledger.allows(d.owner, Purpose(d.purpose), at=d.sent_at)
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
                last = [r for r in self.ledger.history(d.owner) if r.purpose == Purpose(d.purpose)][-1]
                assert last.action == "grant", f"{d.sample_id}: sent, withdrawn, a pass ran, yet not retracted"


FeedbackMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
TestFeedbackMachine = FeedbackMachine.TestCase


def test_a_notice_requiring_reconsent_stops_samples_queued_under_the_old_grant():
    """The claim-time consent check is the last line when consent lapses without a withdrawal (a notice bump
    that requires re-consent): the queued sample is dropped, not sent. A mutant sending at claim despite the
    lapsed consent passed the machine above at 50 examples; this sequence pins it."""
    m = FeedbackMachine()
    try:
        m.grant("alice", MIS)
        m.flag("alice")
        m.notice_bump(MIS, True)
        m.send_pass()
        assert list(m.store.list_objects("samples/")) == [] and m.queue.disclosures() == []
        m.every_partner_sample_was_sent_under_consent_in_force()
        m.grant("alice", MIS)  # re-consent under the new notice: new samples go again
        m.record("bob")  # bob never granted product improvement: nothing of his is queued
        m.flag("alice")
        m.send_pass()
        assert len(m.queue.disclosures()) == 1 and len(list(m.store.list_objects("samples/"))) == 2
    finally:
        m.teardown()
