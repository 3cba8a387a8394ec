"""The feedback sending path on real recorded clips: consent checked when queued and again when claimed, the
partner bucket's layout (FLAC + JSON + manifest) on a real S3 server over HTTP, disclosures, withdrawal with its
retraction object, crash safety, and the command-line bad input."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from edge_media.cli import main
from edge_media.config import load_config
from edge_media.privacy.consent import ConsentLedger
from edge_media.privacy.feedback_send import FeedbackSender
from edge_media.privacy.notices import Purpose
from edge_media.service.context import HubContext
from edge_media.service.feedback import build_partner_store, open_queue
from uploader import LocalStore

from clip_hub import Hub, copy_hub, make_media, record_hub

MIS = "misdetection-feedback"
ACCESS_ENV, SECRET_ENV = "EM_TEST_PARTNER_ACCESS", "EM_TEST_PARTNER_SECRET"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("feedback-hub")
    media = make_media(folder)
    return record_hub(folder, media), media


def hub_with_partner(recorded, tmp_path: Path, partner: str) -> Hub:
    hub = copy_hub(recorded[0], tmp_path, recorded[1])
    hub.config.write_text(hub.config.read_text() + partner)
    return hub


@pytest.fixture
def s3_hub(recorded, tmp_path, s3_server, monkeypatch):
    """The recorded hub with its partner store on the moto S3 server (its own bucket and credentials)."""
    bucket = f"partner-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(ACCESS_ENV, s3_server.access_key)
    monkeypatch.setenv(SECRET_ENV, s3_server.secret_key)
    partner = (f'[feedback.partner]\nbackend = "s3"\n[feedback.partner.s3]\nendpoint = "{s3_server.endpoint}"\n'
               f'bucket = "{bucket}"\naccess_key_env = "{ACCESS_ENV}"\nsecret_key_env = "{SECRET_ENV}"\n')
    yield hub_with_partner(recorded, tmp_path, partner)
    from s3_fixtures import empty_bucket

    empty_bucket(s3_server, bucket)


@pytest.fixture
def local_hub(recorded, tmp_path):
    return hub_with_partner(recorded, tmp_path, "")


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def consent(hub: Hub, action: str, owner: str = "alice", purpose: str = MIS) -> None:
    assert main(["consent", action, "--config", str(hub.config), "--owner", owner, "--purpose", purpose,
                 "--yes"]) == 0


def flag_alarm(hub: Hub, capsys) -> str:
    capsys.readouterr()
    clip = hub.clip_of("kitchen", capsys)
    code, out = run(capsys, "feedback", "flag", "--config", str(hub.config), "--clip", clip, "--wrong",
                    "smoke_co_alarm", "--truth", "nothing")
    assert code == 0, out
    return out


def partner_objects(hub: Hub) -> dict[str, bytes]:
    store = build_partner_store(load_config(hub.config))
    return {o.key: store.get_object(o.key) for o in store.list_objects()}


def queue_of(hub: Hub):
    ctx = HubContext.open(load_config(hub.config))
    return ctx, open_queue(ctx, recover=True)  # as the sending process opens it at its start


def test_flag_without_consent_queues_nothing_and_sends_nothing(local_hub, capsys):
    out = flag_alarm(local_hub, capsys)
    assert "nothing queued for the model partner" in out
    ctx, queue = queue_of(local_hub)
    assert queue.pending() == []
    assert not list((local_hub.data / "feedback").glob("*")), "no consent: the audio was not even anonymised"
    ctx.close()
    code, out = run(capsys, "feedback", "send", "--config", str(local_hub.config))
    assert code == 0 and out.startswith("sent 0 sample(s)")
    assert partner_objects(local_hub) == {}, "the local partner store stays empty"


def test_grant_flag_send_puts_flac_json_and_manifest_on_s3_and_logs_the_disclosure(s3_hub, capsys):
    consent(s3_hub, "grant")
    capsys.readouterr()
    assert "an anonymised sample is queued" in flag_alarm(s3_hub, capsys)
    code, out = run(capsys, "feedback", "send", "--config", str(s3_hub.config))
    assert code == 0 and out.startswith("sent 1 sample(s)"), out
    objects = partner_objects(s3_hub)
    [flac] = [k for k in objects if k.endswith(".flac")]
    [meta_key] = [k for k in objects if k.startswith("samples/") and k.endswith(".json")]
    [manifest] = [k for k in objects if k.startswith("manifests/")]
    assert flac.startswith("samples/20") and objects[flac][:4] == b"fLaC"
    meta = json.loads(objects[meta_key])
    assert (meta["predicted"], meta["corrected"], meta["purpose"]) == ("smoke_co_alarm", "nothing", MIS)
    [line] = [json.loads(x) for x in objects[manifest].decode().splitlines()]
    assert line == {"file_name": flac, **meta}, "one audiofolder line: file_name from the bucket root + the JSON"
    code, out = run(capsys, "feedback", "disclosures", "--config", str(s3_hub.config), "--owner", "alice", "--json")
    [row] = json.loads(out)
    ledger_grant = ConsentLedger(s3_hub.db()).allows("alice", Purpose.MISDETECTION_FEEDBACK).consent_id
    assert (row["sample_id"], row["consent_id"], row["label"]) == (meta["sample_id"], ledger_grant, "smoke_co_alarm")
    assert row["bytes"] == len(objects[flac]) and not row["retracted"]
    assert not (s3_hub.data / "feedback" / f"{meta['sample_id']}.flac").exists(), "sent: the spool copy goes"


def test_withdraw_deletes_queued_samples_and_retracts_the_sent_ones(s3_hub, capsys, tmp_path):
    consent(s3_hub, "grant")
    flag_alarm(s3_hub, capsys)
    assert run(capsys, "feedback", "send", "--config", str(s3_hub.config))[0] == 0
    sent = [d.sample_id for d in queue_of(s3_hub)[1].disclosures("alice")]
    capsys.readouterr()
    clip = s3_hub.clip_of("kitchen", capsys)  # a second flag, queued and not sent
    assert run(capsys, "feedback", "flag", "--config", str(s3_hub.config), "--clip", clip, "--missed",
               "glass_break")[0] == 0
    ctx, queue = queue_of(s3_hub)
    [queued] = queue.pending("alice")
    ctx.close()
    assert main(["consent", "withdraw", "--config", str(s3_hub.config), "--owner", "alice", "--purpose", MIS,
                 "--yes"]) == 0
    out = capsys.readouterr().out
    assert "1 queued sample(s) deleted; 1 retraction(s) written" in out
    ctx, queue = queue_of(s3_hub)
    assert queue.pending() == [] and not (s3_hub.data / "feedback" / f"{queued.sample_id}.flac").exists()
    ctx.close()
    objects = partner_objects(s3_hub)
    [retraction] = [json.loads(v) for k, v in objects.items() if k.startswith("retractions/")]
    assert retraction["sample_ids"] == sent and set(retraction) == {"retraction_id", "created_month", "sample_ids"}
    assert not any(queued.sample_id in k for k in objects), "the queued sample never reached the bucket"
    assert run(capsys, "feedback", "send", "--config", str(s3_hub.config))[1].startswith("sent 0")


def test_consent_withdrawn_between_queue_and_send_is_not_sent(s3_hub, capsys):
    consent(s3_hub, "grant")
    flag_alarm(s3_hub, capsys)
    ctx, queue = queue_of(s3_hub)
    # Withdrawn straight in the ledger: the sender's claim is the last line of defence, not the CLI's clean-up.
    queue.ledger.withdraw("alice", Purpose.MISDETECTION_FEEDBACK, actor="alice", method="api")
    result = FeedbackSender(queue, build_partner_store(ctx.config)).send_pass()
    assert (result.sent, result.dropped) == (0, 1) and queue.pending() == []
    ctx.close()
    assert partner_objects(s3_hub) == {}


def test_a_crash_between_upload_and_commit_sends_no_duplicate(s3_hub, capsys):
    consent(s3_hub, "grant")
    flag_alarm(s3_hub, capsys)
    ctx, queue = queue_of(s3_hub)
    store = build_partner_store(ctx.config)
    item, consent_id = queue.claim()
    FeedbackSender(queue, store)._upload(item)  # the objects are up; the process dies before its commit
    ctx.close()
    ctx, queue = queue_of(s3_hub)  # restart: the inflight item is pending again
    [again] = queue.pending()
    assert again.sample_id == item.sample_id and again.attempts == 1
    result = FeedbackSender(queue, store).send_pass()
    assert result.sent == 1
    assert [d.sample_id for d in queue.disclosures()] == [item.sample_id]
    ctx.close()
    samples = [k for k in partner_objects(s3_hub) if k.startswith("samples/")]
    assert sorted(samples) == sorted([item.flac_key, item.json_key])


def test_withdrawn_after_a_crashed_upload_removes_the_unlisted_objects(s3_hub, capsys):
    consent(s3_hub, "grant")
    flag_alarm(s3_hub, capsys)
    ctx, queue = queue_of(s3_hub)
    store = build_partner_store(ctx.config)
    item, _ = queue.claim()
    FeedbackSender(queue, store)._upload(item)
    ctx.close()
    ctx, queue = queue_of(s3_hub)
    queue.ledger.withdraw("alice", Purpose.MISDETECTION_FEEDBACK, actor="alice", method="cli")
    queue.withdrawn("alice", Purpose.MISDETECTION_FEEDBACK)
    result = FeedbackSender(queue, store).send_pass()
    assert result.sent == 0 and queue.pending() == [] and queue.disclosures() == []
    ctx.close()
    assert partner_objects(s3_hub) == {}, "objects of a sample never disclosed are removed, not left unlisted"


def test_the_local_partner_backend_receives_the_same_layout(local_hub, capsys):
    consent(local_hub, "grant")
    flag_alarm(local_hub, capsys)
    assert run(capsys, "feedback", "send", "--config", str(local_hub.config))[0] == 0
    keys = sorted(partner_objects(local_hub))
    assert [k.split("/")[0] for k in keys] == ["manifests", "samples", "samples"]
    assert isinstance(build_partner_store(load_config(local_hub.config)), LocalStore)
    assert (local_hub.data / "partner").is_dir()


def test_disclosures_of_an_unknown_owner_is_one_line_exit_2(local_hub, capsys):
    code = main(["feedback", "disclosures", "--config", str(local_hub.config), "--owner", "mallory"])
    assert code == 2
    assert "mallory" in capsys.readouterr().err


def test_a_partner_s3_table_without_a_bucket_is_a_config_error_naming_the_field(tmp_path, capsys):
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[service]\ndata_dir = "{tmp_path}"\n[feedback.partner]\nbackend = "s3"\n'
                   '[feedback.partner.s3]\nendpoint = "127.0.0.1:9000"\n')
    assert main(["feedback", "send", "--config", str(cfg)]) == 2
    assert "feedback.partner.s3.bucket" in capsys.readouterr().err


def test_export_carries_the_disclosure_log_and_erasure_removes_queued_samples_but_keeps_the_proof(local_hub,
                                                                                                   capsys, tmp_path):
    import zipfile

    consent(local_hub, "grant")
    flag_alarm(local_hub, capsys)
    assert run(capsys, "feedback", "send", "--config", str(local_hub.config))[0] == 0
    clip = local_hub.clip_of("kitchen", capsys)
    assert run(capsys, "feedback", "flag", "--config", str(local_hub.config), "--clip", clip, "--missed",
               "glass_break")[0] == 0
    ctx, queue = queue_of(local_hub)
    [sent] = queue.disclosures("alice")
    [queued] = queue.pending("alice")
    ctx.close()
    out = tmp_path / "alice.zip"
    assert main(["storage", "export", "--config", str(local_hub.config), "--owner", "alice", "--out", str(out)]) == 0
    [row] = json.loads(zipfile.ZipFile(out).read("feedback-disclosures.json"))
    assert row["sample_id"] == sent.sample_id and "owner" not in row
    assert main(["storage", "erase", "--config", str(local_hub.config), "--owner", "alice", "--yes"]) == 0
    ctx, queue = queue_of(local_hub)
    assert queue.pending() == [] and not (local_hub.data / "feedback" / f"{queued.sample_id}.flac").exists()
    assert [d.sample_id for d in queue.disclosures("alice")] == [sent.sample_id], "the proof of what was sent stays"
    ctx.close()


def test_no_partner_object_carries_an_owner_camera_hub_or_clip_identifier(s3_hub, capsys):
    consent(s3_hub, "grant")
    flag_alarm(s3_hub, capsys)
    assert run(capsys, "feedback", "send", "--config", str(s3_hub.config))[0] == 0
    consent(s3_hub, "withdraw")
    capsys.readouterr()
    ctx = HubContext.open(load_config(s3_hub.config))
    clip = s3_hub.clip_of("kitchen", capsys)
    secrets = [b"alice", b"kitchen", clip.encode(), ctx.camera_hash("kitchen").encode(), ctx.secret.hex().encode(),
               str(s3_hub.data).encode()]
    ctx.close()
    objects = partner_objects(s3_hub)
    assert {k.split("/")[0] for k in objects} == {"samples", "manifests", "retractions"}
    for key, body in objects.items():
        for needle in secrets:
            assert needle not in body and needle.decode() not in key, (key, needle)


class WithdrawDuringUpload(LocalStore):
    """A real local partner store; the owner withdraws while the sample's FLAC is being put (a race the sender
    cannot prevent: consent held when it claimed the item)."""

    ledger: ConsentLedger

    def put_object(self, key, path, **kw):
        info = super().put_object(key, path, **kw)
        if key.endswith(".flac"):
            self.ledger.withdraw("alice", Purpose.MISDETECTION_FEEDBACK, actor="alice", method="api")
        return info


def test_a_withdrawal_during_the_upload_is_retracted_in_the_same_pass(local_hub, capsys):
    consent(local_hub, "grant")
    flag_alarm(local_hub, capsys)
    ctx, queue = queue_of(local_hub)
    store = WithdrawDuringUpload(ctx.config.partner_path)
    store.ledger = queue.ledger
    result = FeedbackSender(queue, store).send_pass()
    [sent] = queue.disclosures("alice")
    ctx.close()
    assert (result.sent, result.retractions) == (1, 1), "disclosed (it did leave) and retracted at once"
    [key] = [o.key for o in store.list_objects("retractions/")]
    assert json.loads(store.get_object(key))["sample_ids"] == [sent.sample_id] and sent.retraction_id
