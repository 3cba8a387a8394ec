"""The consent ledger (issue 10, item 1): append-only rows in the hub's SQLite file, answers from the rows,
notice bumps, only the owner acts, and the ``edge-media consent`` commands an owner runs."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import edge_media.privacy.notices as notices_pkg
from edge_media.cli import main
from edge_media.errors import UsageError
from edge_media.privacy.consent import TABLE, ConsentLedger, NotTheOwner
from edge_media.privacy.notices import Notice, NoticeBook, Purpose
from edge_media.service.context import DB_NAME
from uploader.db import Database

FEEDBACK, IMPROVE = Purpose.MISDETECTION_FEEDBACK, Purpose.PRODUCT_IMPROVEMENT
T0 = 1_800_000_000.0  # 2027-01-15, after the shipped notices' publication


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ledger_at(db: Database, clock: Clock, book: NoticeBook | None = None) -> ConsentLedger:
    return ConsentLedger(db, notices=book, clock=clock)


def row_count(db: Database) -> int:
    return int(db.query(f"SELECT COUNT(*) AS n FROM {TABLE}")[0]["n"])


def bump(book: NoticeBook, purpose: Purpose, version: int, at: float, *, reconsent: bool = True) -> NoticeBook:
    return book.publish(Notice(purpose, version, f"{purpose} notice v{version}\n", at, reconsent))


# -- the ledger -------------------------------------------------------------------------------------------


def test_grant_withdraw_regrant_and_what_allows_says_at_every_time(db: Database) -> None:
    clock = Clock()
    ledger = ledger_at(db, clock)
    first = ledger.grant("alice", IMPROVE, actor="alice", method="cli").record
    clock.now = T0 + 100
    withdrawal = ledger.withdraw("alice", IMPROVE, actor="alice", method="api")
    clock.now = T0 + 200
    second = ledger.grant("alice", IMPROVE, actor="alice", method="cli").record

    assert withdrawal is not None and withdrawal.record.withdraws == first.consent_id
    expected = {T0 - 1: ("never-granted", None), T0: ("granted", first.consent_id),
                T0 + 99.9: ("granted", first.consent_id), T0 + 100: ("withdrawn", None),
                T0 + 199: ("withdrawn", None), T0 + 200: ("granted", second.consent_id),
                T0 + 10_000: ("granted", second.consent_id)}  # fmt: skip
    for at, (reason, consent_id) in expected.items():
        state = ledger.allows("alice", IMPROVE, at)
        assert (state.reason, state.consent_id, bool(state)) == (reason, consent_id, reason == "granted"), at
    assert not ledger.allows("alice", FEEDBACK, T0 + 300), "a grant covers its own purpose only"
    assert not ledger.allows("bob", IMPROVE, T0 + 300), "and its own owner only"
    assert [r.action for r in ledger.history("alice")] == ["grant", "withdraw", "grant"]
    assert len({first.consent_id, second.consent_id, withdrawal.record.consent_id}) == 3, "random ids, one per row"


def test_a_grant_records_the_exact_notice_text_shown(db: Database) -> None:
    record = ledger_at(db, Clock()).grant("alice", FEEDBACK, actor="alice", method="cli").record
    shipped = Path(notices_pkg.__file__).parent / "misdetection-feedback-v1.txt"
    assert record.notice_version == 1
    assert record.notice_sha256 == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert (record.method, record.actor, record.at) == ("cli", "alice", T0)


def test_a_notice_requiring_reconsent_makes_older_grants_stop_counting(db: Database) -> None:
    clock = Clock()
    book = bump(NoticeBook.packaged(), FEEDBACK, 2, T0 + 50)
    ledger = ledger_at(db, clock, book)
    old = ledger.grant("alice", FEEDBACK, actor="alice", method="cli").record
    assert old.notice_version == 1, "before the bump is published, v1 is the current notice"
    assert ledger.allows("alice", FEEDBACK, T0 + 49.9)
    superseded = ledger.allows("alice", FEEDBACK, T0 + 50)
    assert superseded.reason == "notice-superseded" and not superseded and superseded.min_version == 2
    assert "requires consent again" in superseded.describe()

    clock.now = T0 + 60
    with pytest.raises(UsageError, match="v1 .* cannot be agreed to now"):
        ledger.grant("alice", FEEDBACK, actor="alice", method="api", notice_version=1)
    renewed = ledger.grant("alice", FEEDBACK, actor="alice", method="cli")
    assert renewed.recorded and renewed.record.notice_version == 2
    assert renewed.record.notice_sha256 == hashlib.sha256(b"misdetection-feedback notice v2\n").hexdigest()
    assert ledger.allows("alice", FEEDBACK, T0 + 60).consent_id == renewed.record.consent_id


def test_a_notice_without_reconsent_keeps_older_grants_and_new_grants_take_it(db: Database) -> None:
    clock = Clock()
    ledger = ledger_at(db, clock, bump(NoticeBook.packaged(), IMPROVE, 2, T0 + 50, reconsent=False))
    old = ledger.grant("alice", IMPROVE, actor="alice", method="cli").record
    assert ledger.allows("alice", IMPROVE, T0 + 1000).consent_id == old.consent_id
    clock.now = T0 + 60
    assert ledger.grant("bob", IMPROVE, actor="bob", method="cli").record.notice_version == 2
    again = ledger.grant("alice", IMPROVE, actor="alice", method="cli")
    assert again.recorded and again.record.notice_version == 2, "agreeing to the newer text is recorded"


def test_withdrawing_a_superseded_grant_is_recorded_so_its_samples_can_be_retracted(db: Database) -> None:
    clock = Clock()
    ledger = ledger_at(db, clock, bump(NoticeBook.packaged(), FEEDBACK, 2, T0 + 50))
    grant = ledger.grant("alice", FEEDBACK, actor="alice", method="cli").record
    clock.now = T0 + 100
    change = ledger.withdraw("alice", FEEDBACK, actor="alice", method="cli")
    assert change is not None and change.record.withdraws == grant.consent_id
    assert ledger.allows("alice", FEEDBACK, T0 + 100).reason == "withdrawn"


def test_repeating_a_grant_or_a_withdrawal_writes_nothing(db: Database) -> None:
    clock = Clock()
    ledger = ledger_at(db, clock)
    assert ledger.withdraw("alice", IMPROVE, actor="alice", method="cli") is None, "nothing to withdraw"
    first = ledger.grant("alice", IMPROVE, actor="alice", method="cli")
    clock.now += 5
    again = ledger.grant("alice", IMPROVE, actor="alice", method="cli")
    assert not again.recorded and again.record == first.record
    assert ledger.withdraw("alice", IMPROVE, actor="alice", method="cli") is not None
    assert ledger.withdraw("alice", IMPROVE, actor="alice", method="cli") is None
    assert row_count(db) == 2


def test_only_the_owner_grants_or_withdraws(db: Database) -> None:
    ledger = ledger_at(db, Clock())
    with pytest.raises(NotTheOwner, match="'bob' is not owner 'alice'"):
        ledger.grant("alice", IMPROVE, actor="bob", method="api")
    ledger.grant("alice", IMPROVE, actor="alice", method="api")
    with pytest.raises(NotTheOwner):
        ledger.withdraw("alice", IMPROVE, actor="bob", method="api")
    assert row_count(db) == 1 and ledger.allows("alice", IMPROVE)


def test_the_ledger_is_append_only(db: Database) -> None:
    ledger = ledger_at(db, Clock())
    grant = ledger.grant("alice", IMPROVE, actor="alice", method="cli").record
    for sql in (f"UPDATE {TABLE} SET action = 'withdraw', withdraws = consent_id",
                f"UPDATE {TABLE} SET notice_version = 99", f"DELETE FROM {TABLE}",
                f"DELETE FROM {TABLE} WHERE owner = 'alice'"):  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError, match="append-only"), db.tx() as conn:
            conn.execute(sql)
    assert ledger.history("alice") == [grant]


def test_the_schema_refuses_rows_the_code_never_writes(db: Database) -> None:
    ledger_at(db, Clock())
    bad = [("x1", "alice", "marketing", "grant", 1, "h", "cli", "alice", T0, None),  # unknown purpose
           ("x2", "alice", "product-improvement", "grant", None, None, "cli", "alice", T0, None),  # no notice
           ("x3", "alice", "product-improvement", "withdraw", None, None, "cli", "alice", T0, None),  # ends nothing
           ("x4", "alice", "product-improvement", "grant", 1, "h", "email", "alice", T0, None)]  # unknown method
    for row in bad:
        with pytest.raises(sqlite3.IntegrityError), db.tx() as conn:
            conn.execute(f"INSERT INTO {TABLE} (consent_id, owner, purpose, action, notice_version, notice_sha256,"
                         " method, actor, at, withdraws) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    assert row_count(db) == 0


def test_a_clock_stepped_back_never_dates_a_withdrawal_before_its_grant(db: Database) -> None:
    clock = Clock(T0 + 1000)
    ledger = ledger_at(db, clock)
    ledger.grant("alice", IMPROVE, actor="alice", method="cli")
    clock.now = T0  # NTP stepped the clock back
    withdrawal = ledger.withdraw("alice", IMPROVE, actor="alice", method="cli")
    assert withdrawal is not None and withdrawal.record.at == T0 + 1000
    assert ledger.allows("alice", IMPROVE).reason == "withdrawn", "a 'now' question sees every row written"
    clock.now = T0 + 500
    assert ledger.grant("bob", IMPROVE, actor="bob", method="cli").record.at == T0 + 1000, "times never go back"
    assert ledger.allows("alice", IMPROVE, T0 + 1000).reason == "withdrawn", "the later row wins at one instant"
    assert ledger.allows("alice", IMPROVE, T0 + 999).reason == "never-granted"


def test_answers_survive_a_restart_and_are_available_inside_a_transaction(tmp_path: Path) -> None:
    """The send-time re-check runs inside the sender's claiming transaction (allows_in); a reopened file (a
    restart, or another process such as the CLI) gives the same answers."""
    path = tmp_path / DB_NAME
    first = Database(path)
    grant = ledger_at(first, Clock()).grant("alice", FEEDBACK, actor="alice", method="cli").record
    other = Database(path)  # e.g. the running service, while the CLI still holds its connection
    ledger = ledger_at(other, Clock(T0 + 1))
    with other.tx() as conn:
        assert ledger.allows_in(conn, "alice", FEEDBACK, T0 + 1).consent_id == grant.consent_id
    ledger_at(first, Clock(T0 + 2)).withdraw("alice", FEEDBACK, actor="alice", method="cli")
    assert not ledger.allows("alice", FEEDBACK, T0 + 2), "the other connection sees the withdrawal at once"
    assert [r.action for r in ledger.changes_since(grant.seq)] == ["withdraw"]
    assert [r.seq for r in ledger.changes_since(0)] == [grant.seq, grant.seq + 1]
    first.close()
    other.close()


def test_the_packaged_notices_are_complete() -> None:
    """Every purpose has a current notice whose file is shipped in the package (read through
    importlib.resources, as an installed wheel reads it) and says how to withdraw."""
    book = NoticeBook.packaged()
    for purpose in Purpose:
        notice = book.current(purpose, T0)
        assert notice.version >= 1 and book.min_version(purpose, T0) <= notice.version
        assert f"consent withdraw --owner <you> --purpose {purpose}" in notice.text
        assert "speech masked" in notice.text and "never the video" in notice.text
    with pytest.raises(UsageError, match="no notice .* published yet"):
        book.current(FEEDBACK, 0.0)


def test_notice_versions_must_be_published_in_order() -> None:
    book = bump(NoticeBook.packaged(), FEEDBACK, 2, T0)
    with pytest.raises(ValueError, match="published in order"):
        bump(book, FEEDBACK, 3, T0 - 10)
    with pytest.raises(ValueError, match="unique"):
        bump(book, FEEDBACK, 2, T0 + 10)


# -- stateful: allows() equals a plain replay of the story, across restarts ---------------------------------

OWNERS = ("alice", "bob")


def _reference(events: list[tuple[float, str, str, Purpose, int]], bumps: list[tuple[float, Purpose, int, bool]],
               owner: str, purpose: Purpose, at: float) -> bool:  # fmt: skip
    """Replay the story up to ``at``: the version the owner last agreed to, unless withdrawn since, and no
    re-consent notice newer than it published by then."""
    agreed: int | None = None
    for t, kind, who, what, version in events:
        if t <= at and (who, what) == (owner, purpose):
            agreed = version if kind == "grant" else None
    required = max((v for t, p, v, reconsent in bumps if p == purpose and reconsent and t <= at), default=0)
    return agreed is not None and agreed >= required


class LedgerMachine(RuleBasedStateMachine):
    """Random grants, withdrawals, notice bumps, clock steps (forward, and back as NTP may) and restarts (a new
    connection to the same file). After every step: ``allows`` agrees with the replay at every time the story
    touched, no answer about the past has changed, and the rows written so far are unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="consent-"))
        self.clock, self.book = Clock(), NoticeBook.packaged()
        self.db = Database(self.dir / DB_NAME)
        self.ledger = ledger_at(self.db, self.clock, self.book)
        self.events: list[tuple[float, str, str, Purpose, int]] = []
        self.bumps: list[tuple[float, Purpose, int, bool]] = []
        self.rows: list = []
        self.answers: dict[tuple[str, Purpose, float], bool] = {}

    @rule(owner=st.sampled_from(OWNERS), purpose=st.sampled_from(list(Purpose)))
    def grant(self, owner: str, purpose: Purpose) -> None:
        change = self.ledger.grant(owner, purpose, actor=owner, method="cli")
        if change.recorded:
            self.events.append((change.record.at, "grant", owner, purpose, change.record.notice_version or 0))
        else:
            assert self.ledger.allows(owner, purpose).consent_id == change.record.consent_id

    @rule(owner=st.sampled_from(OWNERS), purpose=st.sampled_from(list(Purpose)))
    def withdraw(self, owner: str, purpose: Purpose) -> None:
        change = self.ledger.withdraw(owner, purpose, actor=owner, method="api")
        if change is not None:
            self.events.append((change.record.at, "withdraw", owner, purpose, 0))
            assert not self.ledger.allows(owner, purpose), "nothing may be sent once withdrawn"

    @rule(purpose=st.sampled_from(list(Purpose)), reconsent=st.booleans())
    def bump(self, purpose: Purpose, reconsent: bool) -> None:
        # Published no earlier than anything recorded: a software update never rewrites the past.
        at = max([self.clock.now, *(e[0] for e in self.events), *(b[0] for b in self.bumps)])
        version = max(n.version for n in self.book.all() if n.purpose == purpose) + 1
        self.book = bump(self.book, purpose, version, at, reconsent=reconsent)
        self.bumps.append((at, purpose, version, reconsent))
        self.ledger.notices = self.book

    @rule(dt=st.sampled_from([0.0, 0.5, 3.0, -2.0]))
    def tick(self, dt: float) -> None:
        self.clock.now += dt  # -2: the clock stepped back

    @rule()
    def restart(self) -> None:
        self.db.close()
        self.db = Database(self.dir / DB_NAME)
        self.ledger = ledger_at(self.db, self.clock, self.book)

    @invariant()
    def answers_match_the_replay_and_the_past_never_changes(self) -> None:
        latest = max((e[0] for e in self.events), default=T0 - 1)
        now = max(self.clock.now, latest)  # the ledger's "now" never precedes its latest row
        times = {T0 - 1, now, *(e[0] for e in self.events), *(b[0] for b in self.bumps)}
        for owner in OWNERS:
            for purpose in Purpose:
                assert bool(self.ledger.allows(owner, purpose)) == _reference(self.events, self.bumps, owner,
                                                                              purpose, now)  # fmt: skip
                for at in times:
                    answer = bool(self.ledger.allows(owner, purpose, at))
                    assert answer == _reference(self.events, self.bumps, owner, purpose, at)
                    if at < latest:  # before the latest row, history is settled
                        assert self.answers.setdefault((owner, purpose, at), answer) == answer, "the past changed"

    @invariant()
    def rows_are_only_ever_appended(self) -> None:
        rows = self.ledger.changes_since(0)
        assert rows[: len(self.rows)] == self.rows and len(rows) == len(self.events)
        self.rows = rows

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)


LedgerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_ledger_state_machine = LedgerMachine.TestCase


# -- the commands -------------------------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """alice owns a camera; bob is listed under [owners] only. Nothing is recorded: consent needs no clips."""
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[service]\ndata_dir = "{tmp_path / "data"}"\n[owners.bob]\n'
                   f'[[cameras]]\nname = "porch"\nowner = "alice"\nrecord_url = "{tmp_path / "porch.mp4"}"\n')
    return cfg


def consent(hub: Path, *args: str) -> list[str]:
    return ["consent", args[0], "--config", str(hub), *args[1:]]


def ledger_rows(hub: Path) -> int:
    path = hub.parent / "data" / DB_NAME
    if not path.exists():
        return 0
    con = sqlite3.connect(path)
    try:
        found = con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)).fetchone()
        return con.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0] if found else 0
    finally:
        con.close()


def test_grant_show_withdraw_transcript(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(consent(hub, "grant", "--owner", "alice", "--purpose", "misdetection-feedback", "--yes")) == 0
    out = capsys.readouterr().out
    notice = NoticeBook.packaged().current(FEEDBACK, T0)
    assert notice.text.strip() in out and f"sha256 {notice.sha256}" in out, "the notice is shown before granting"
    granted = out.strip().splitlines()[-1]
    assert granted.startswith("alice: granted misdetection-feedback under notice v1 at 20")
    consent_id = granted.rsplit("consent id ", 1)[1]

    assert main(consent(hub, "show", "--owner", "alice", "--json")) == 0
    shown = json.loads(capsys.readouterr().out)
    state = {s["purpose"]: s for s in shown["state"]}
    assert state["misdetection-feedback"]["allowed"] and state["misdetection-feedback"]["consent_id"] == consent_id
    assert not state["product-improvement"]["allowed"]
    assert [(h["action"], h["method"], h["actor"]) for h in shown["history"]] == [("grant", "cli", "alice")]

    assert main(consent(hub, "withdraw", "--owner", "alice", "--purpose", "misdetection-feedback", "--yes")) == 0
    assert f"(ends consent id {consent_id})" in capsys.readouterr().out
    assert main(consent(hub, "show", "--owner", "alice")) == 0
    text = capsys.readouterr().out
    assert "misdetection-feedback  withdrawn" in text and "product-improvement    never granted" in text
    assert text.count(consent_id) == 2, "the history table lists the grant and the withdrawal that ends it"

    assert main(consent(hub, "withdraw", "--owner", "alice", "--purpose", "misdetection-feedback", "--yes")) == 0
    assert "no consent for misdetection-feedback to withdraw; nothing recorded" in capsys.readouterr().out
    assert ledger_rows(hub) == 2


@pytest.mark.parametrize(("args", "message"), [
    (("--owner", "mallory", "--purpose", "product-improvement", "--yes"), "--owner: no owner 'mallory'"),
    (("--owner", "alice", "--purpose", "product-improvment", "--yes"), "did you mean 'product-improvement'"),
    (("--owner", "alice", "--purpose", "marketing", "--yes"), "--purpose: unknown purpose 'marketing'"),
    (("--owner", "alice", "--actor", "bob", "--purpose", "product-improvement", "--yes"), "'bob' is not 'alice'"),
    (("--owner", "alice", "--purpose", "product-improvement"), "stdin is not a terminal"),
])  # fmt: skip
@pytest.mark.parametrize("verb", ["grant", "withdraw"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(hub: Path, capsys: pytest.CaptureFixture[str],
                                                          verb: str, args: tuple[str, ...], message: str) -> None:
    if verb == "withdraw":  # something to withdraw, so that only the bad input can stop it
        assert main(consent(hub, "grant", "--owner", "alice", "--purpose", "product-improvement", "--yes")) == 0
    before = ledger_rows(hub)
    capsys.readouterr()
    assert main(consent(hub, verb, *args)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert ledger_rows(hub) == before


def test_show_refuses_an_unknown_owner_and_lists_a_purpose(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(consent(hub, "show", "--owner", "mallory")) == 2
    assert "no owner 'mallory'" in capsys.readouterr().err
    assert main(consent(hub, "show", "--owner", "bob", "--purpose", "product-improvement")) == 0
    out = capsys.readouterr().out
    assert "product-improvement  never granted" in out and "misdetection" not in out and "no consent recorded" in out


def test_the_ledger_takes_purposes_as_plain_strings_too(db: Database) -> None:
    """The API will pass the purpose as text: it is checked against the Purpose values, not trusted."""
    ledger = ledger_at(db, Clock())
    ledger.grant("alice", "product-improvement", actor="alice", method="api")  # type: ignore[arg-type]
    assert ledger.allows("alice", "product-improvement")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="purpose: unknown purpose 'marketing'"):
        ledger.grant("alice", "marketing", actor="alice", method="api")  # type: ignore[arg-type]
    assert row_count(db) == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "rows"), [("y\n", 0, 1), ("yes\n", 0, 1), ("n\n", 1, 0), ("\n", 1, 0)])
def test_on_a_terminal_the_owner_is_asked(hub: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], answer: str, code: int,
                                          rows: int) -> None:  # fmt: skip
    monkeypatch.setattr("sys.stdin", _Terminal(answer))
    assert main(consent(hub, "grant", "--owner", "bob", "--purpose", "product-improvement")) == code
    captured = capsys.readouterr()
    assert "bob: grant consent for product-improvement under notice v1? [y/N]" in captured.err
    assert ledger_rows(hub) == rows
    if rows:  # and withdrawing asks the same one question
        monkeypatch.setattr("sys.stdin", _Terminal(answer))
        assert main(consent(hub, "withdraw", "--owner", "bob", "--purpose", "product-improvement")) == 0
        assert "withdraw consent for product-improvement?" in capsys.readouterr().err
        assert ledger_rows(hub) == 2


def test_notice_command_prints_the_text_an_owner_agrees_to(hub: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["consent", "notice", "--purpose", "product-improvement"]) == 0
    assert NoticeBook.packaged().get(IMPROVE, 1).text.strip() in capsys.readouterr().out
    assert main(["consent", "notice", "--purpose", "product-improvement", "--version", "7"]) == 2
    assert "no notice version 7" in capsys.readouterr().err


def test_export_carries_the_consent_history_and_erasure_keeps_it(hub: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The owner's export includes consent.json (history, state, the notices agreed to); erasing the owner's
    recordings leaves the ledger — the proof of consent — and the consent in force."""
    for verb in ("grant", "withdraw", "grant"):
        assert main(consent(hub, verb, "--owner", "alice", "--purpose", "product-improvement", "--yes")) == 0
    assert main(consent(hub, "grant", "--owner", "bob", "--purpose", "product-improvement", "--yes")) == 0
    out = tmp_path / "alice.zip"
    assert main(["storage", "export", "--config", str(hub), "--owner", "alice", "--out", str(out)]) == 0
    exported = json.loads(zipfile.ZipFile(out).read("consent.json"))
    assert exported["owner"] == "alice"
    assert [h["action"] for h in exported["history"]] == ["grant", "withdraw", "grant"]
    assert {h["owner"] for h in exported["history"]} == {"alice"}, "nobody else's consent"
    (agreed,) = exported["notices"]
    assert agreed["version"] == 1 and hashlib.sha256(agreed["text"].encode()).hexdigest() == agreed["sha256"]
    assert agreed["sha256"] == exported["history"][0]["notice_sha256"]
    assert {s["purpose"]: s["allowed"] for s in exported["state"]} == {"misdetection-feedback": False,
                                                                        "product-improvement": True}

    assert main(["storage", "erase", "--config", str(hub), "--owner", "alice", "--yes"]) == 0
    capsys.readouterr()
    assert main(consent(hub, "show", "--owner", "alice", "--json")) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["history"] == exported["history"], "erasure keeps the ledger"
    assert {s["purpose"]: s["allowed"] for s in after["state"]}["product-improvement"]
