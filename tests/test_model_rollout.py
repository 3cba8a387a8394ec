"""Signed model releases end to end: a tiny retrain from a real feedback bucket becomes a release the hub
installs; bad releases are refused while the running model stays; shadow, promotion and hot swap under a
continuous stream lose no window; a regression in the watch window rolls back.

Real parts throughout: Ed25519 keys, ONNX files derived from the shipped model, moto as the partner and models
buckets, the real anonymiser and feedback sender, the service with a microphone stand-in that plays a real
encoded file (the capture device is the only stand-in).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_media.audio.events import AudioEventLogic
from edge_media.cli import main
from edge_media.config import load_config
from edge_media.privacy.consent import ConsentLedger
from edge_media.privacy.feedback import FeedbackQueue
from edge_media.privacy.feedback_send import FeedbackSender
from edge_media.privacy.identity import load_or_create_secret
from edge_media.privacy.notices import Purpose
from edge_media.rollout.manager import ModelReleases, build_source
from edge_media.rollout.release import (
    ReleaseError,
    cohort_position,
    in_cohort,
    load_public_key,
    public_key_text,
    sign,
    verify_manifest,
)
from edge_media.rollout.store import RELEASE_FILE, RELEASE_SIG, RolloutStore
from edge_media.service.audio_slot import AudioModelSlot
from edge_media.service.context import HubContext
from edge_media.service.hub import Service
from edge_media.service.model_rollout import FlaggedSpan, ModelRollout, flag_rate_exceeded, shadow_verdict
from uploader.db import Database

from audio_fixtures import FileMic, alarm_scene, encode_audio
from rollout_fixtures import (
    ENTRY,
    clinks,
    hub_config,
    inf_on_loud,
    loud_bursts,
    publish,
    publish_to,
    release,
    retrain,
    s3_models,
    shipped_with_bias,
    write_model,
)
from s3_fixtures import empty_bucket

SR = 16000
MIC = '[[microphones]]\nname = "hall"\nowner = "alice"\n'


@pytest.fixture(scope="module")
def signing_key() -> Ed25519PrivateKey:
    """The ML team's release key (a hub only ever sees its public half)."""
    return Ed25519PrivateKey.generate()


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def status(capsys, config: Path) -> dict:
    code, out, _ = cli(capsys, "models", "status", "--config", str(config), "--json")
    assert code == 0
    return json.loads(out)


# -- the release format ------------------------------------------------------------------------------------

def test_a_manifest_verifies_only_with_its_key_and_its_exact_bytes(tmp_path, signing_key):
    path = write_model(shipped_with_bias(), tmp_path, "1.2.1")
    signed = release(path, "1.2.1").to_bytes()
    keys = [signing_key.public_key()]
    assert verify_manifest(signed, sign(signed, signing_key), keys, name="audio_events", version="1.2.1").version \
        == "1.2.1"
    cases = {
        "another key": (signed, sign(signed, Ed25519PrivateKey.generate())),
        "a changed byte": (signed.replace(b'"rollout_percent": 100.0', b'"rollout_percent": 100.5'),
                           sign(signed, signing_key)),
        "no signature": (signed, None),
        "garbage": (signed, b"not base64!"),
    }
    for why, (data, sig) in cases.items():
        with pytest.raises(ReleaseError, match="refused"):
            verify_manifest(data, sig, keys, name="audio_events", version="1.2.1")
        assert why
    replay = r"describes audio_events 1.2.1 \(audio_events-1.2.1.onnx\), not"  # no replaying 1.2.1 as 1.3.0
    with pytest.raises(ReleaseError, match=replay):
        verify_manifest(signed, sign(signed, signing_key), keys, name="audio_events", version="1.3.0")
    with pytest.raises(ValueError, match="32 bytes"):
        load_public_key(public_key_text(signing_key.public_key())[:20])


def test_cohorts_are_deterministic_and_grow_with_the_percentage():
    secrets = [bytes([i % 256, i // 256]) * 16 for i in range(4000)]
    pos = np.array([cohort_position(s, "audio_events", "1.2.1") for s in secrets])
    assert np.all((pos >= 0) & (pos < 100))
    assert pos.tolist() == [cohort_position(s, "audio_events", "1.2.1") for s in secrets], "same secret, same place"
    for pct in (5, 25, 100):
        assert abs(np.mean(pos < pct) - pct / 100) < 0.02
    # a hub inside 5 % stays inside at 25 %, by construction; other releases draw other early hubs
    other = np.array([cohort_position(s, "audio_events", "1.2.2") for s in secrets])
    assert np.mean((pos < 5) & (other < 5)) < 0.01


# -- retrain to release to hub ---------------------------------------------------------------------------------

@pytest.fixture
def partner_bucket(s3_server):
    store = s3_server.store()
    store.ensure_bucket()
    yield store
    empty_bucket(s3_server, store.bucket)


@pytest.fixture
def models_bucket(s3_server, monkeypatch):
    target, toml = s3_models(s3_server, monkeypatch)
    yield target, toml
    empty_bucket(s3_server, target.bucket)


def flag_false_alarms(tmp_path: Path, parent_dir: Path, partner, count: int, label: str = "glass_break") -> int:
    """An owner flags ``count`` false alarms of ``label`` on clinking glasses as "nothing"; consent, the real
    anonymiser, the feedback queue and sender put them in the partner bucket. Returns how many were sent."""
    from edge_media.audio.model import AudioEventModel

    parent = AudioEventModel.from_manifest("audio_events", parent_dir)
    db = Database(tmp_path / "hub.db")
    ledger = ConsentLedger(db)
    ledger.grant("alice", Purpose.MISDETECTION_FEEDBACK, actor="alice", method="cli")
    queue = FeedbackQueue(db, tmp_path / "fb-spool", ledger)
    rng = np.random.default_rng(21)
    flagged = 0
    while flagged < count:
        x = clinks(rng)
        if label not in retrain.evaluate.event_starts(parent, *retrain.evaluate.scan(parent, x, rng), raw=False):
            continue  # only what the parent really raised gets flagged
        clip = encode_audio(tmp_path / f"clip{flagged}.flac", x, SR)
        queue.queue(queue.prepare("alice", Purpose.MISDETECTION_FEEDBACK, clip, label=label,
                                  span=(0.0, 6.0), predicted=label, score=0.97, corrected="nothing",
                                  model_name="audio_events", model_version=parent.version, month="2026-11"))
        flagged += 1
    result = FeedbackSender(queue, partner).send_pass()
    db.close()
    return result.sent


def test_a_tiny_retrain_from_the_feedback_bucket_becomes_a_release_the_hub_installs(
        tmp_path, signing_key, partner_bucket, models_bucket, s3_server, capsys):
    # a parent that raises baby_cry on clinking glasses (its head's baby-cry bias raised; no held-out clip is a
    # baby cry, so the gate's recall check cannot object to unlearning it)
    parent_dir = tmp_path / "parent"
    write_model(shipped_with_bias({"baby_cry": 8.0}), parent_dir, "1.2.0")
    assert flag_false_alarms(tmp_path, parent_dir, partner_bucket, 12, "baby_cry") == 12
    samples = list(retrain.FeedbackBucket(s3_server.client(), partner_bucket.bucket).samples())
    assert len(samples) == 12 and all(s.corrected == "nothing" for s in samples)

    out = retrain.retrain(samples, parent_dir=parent_dir, version="1.2.1", out=tmp_path / "release",
                          base="synth", base_scale=0.05, heldout="samples", steps=100, workers=1, rollout=100.0,
                          slice_percent=50.0)  # the anonymiser's ids are random: a wide slice is never a lucky one
    manifest = out.manifest
    assert manifest.gate["passed"], manifest.gate["reasons"]
    slice_ = manifest.metrics["feedback_slice"]
    assert slice_["new"]["errors"] < slice_["parent"]["errors"], "better on flags it never trained on"
    assert (manifest.parent_version, manifest.labels, manifest.thresholds) == ("1.2.0", ENTRY["labels"],
                                                                               ENTRY["thresholds"])
    assert manifest.training_data["feedback_trained"] + manifest.training_data["feedback_held_out"] == 12
    for condition in ("clean", "over_background"):
        assert set(manifest.metrics["heldout_real"]["new"][condition]) == set(ENTRY["product_labels"])

    target, source = models_bucket
    publish_to(target, signing_key, manifest, out.model_path)
    config = hub_config(tmp_path / "hub", signing_key, source)
    code, text, _ = cli(capsys, "models", "check", "--config", str(config))
    assert code == 0 and "1.2.1" in text and "available" in text
    code, text, err = cli(capsys, "models", "install", "--config", str(config))
    assert code == 0, err
    assert "installed audio model 1.2.1" in text
    st = status(capsys, config)
    assert (st["candidate"], st["phase"]) == ("1.2.1", "shadow")
    assert st["active"].startswith("1.2.0"), "the running model is untouched until the shadow run ends"
    installed = tmp_path / "hub" / "data" / "models" / "audio_events" / "1.2.1"
    verify_manifest((installed / RELEASE_FILE).read_bytes(), (installed / RELEASE_SIG).read_bytes(),
                    [signing_key.public_key()], name="audio_events", version="1.2.1")
    assert {p.name for p in installed.iterdir()} == {"audio_events-1.2.1.onnx", "manifest.json", RELEASE_FILE,
                                                     RELEASE_SIG}


def test_the_release_gate_refuses_a_model_that_is_not_better_on_held_out_feedback(tmp_path, partner_bucket,
                                                                                 s3_server):
    # no training steps: the "new" model is the parent, so it cannot be better on the held-out flags
    parent_dir = tmp_path / "parent"
    write_model(shipped_with_bias({"glass_break": 8.0}), parent_dir, "1.2.0")
    flag_false_alarms(tmp_path, parent_dir, partner_bucket, 4)
    samples = list(retrain.FeedbackBucket(s3_server.client(), partner_bucket.bucket).samples())
    out = retrain.retrain(samples, parent_dir=parent_dir, version="1.2.1", out=tmp_path / "release",
                          base="synth", base_scale=0.05, heldout="samples", steps=0, workers=1)
    assert not out.manifest.gate["passed"]
    assert any("not better on the held-out feedback" in r or "no held-out feedback" in r
               for r in out.manifest.gate["reasons"])


def test_the_release_gate_refuses_a_model_that_unlearns_held_out_events(tmp_path, partner_bucket, s3_server):
    # owners flag glass_break on clinking glasses; unlearning it also loses the real held-out glass break laid
    # over a held-out background, which the parent (glass bias raised) found
    parent_dir = tmp_path / "parent"
    write_model(shipped_with_bias({"glass_break": 8.0}), parent_dir, "1.2.0")
    flag_false_alarms(tmp_path, parent_dir, partner_bucket, 12)
    samples = list(retrain.FeedbackBucket(s3_server.client(), partner_bucket.bucket).samples())
    out = retrain.retrain(samples, parent_dir=parent_dir, version="1.2.1", out=tmp_path / "release",
                          base="synth", base_scale=0.05, heldout="samples", steps=100, workers=1,
                          slice_percent=50.0)  # random ids: a wide slice, so the feedback check passes every time
    assert out.manifest.gate["reasons"] == ["glass_break (over_background): held-out recall 0.000 below the "
                                            "parent's 95 % lower bound 0.025"]


# -- refusals ---------------------------------------------------------------------------------------------------

def _bad_release(case: str, tmp_path: Path, target, key) -> None:
    proto = {"smoke": shipped_with_bias({"glass_break": 10.0})}.get(case, shipped_with_bias())
    path = write_model(proto, tmp_path / "rel", "1.2.1")
    entry = dict(ENTRY)
    if case == "labels":
        entry["product_labels"] = [x for x in ENTRY["product_labels"] if x != "dog_bark"]
    manifest = release(path, "1.2.1", entry=entry)
    signer = Ed25519PrivateKey.generate() if case == "wrong_key" else key
    publish_to(target, signer, manifest, path)
    base = "releases/audio_events/1.2.1/"
    if case == "tampered":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        target.put(base + path.name, bytes(data))
    if case == "unsigned":
        target.client.remove_object(target.bucket, base + "manifest.json.sig")


@pytest.mark.parametrize("case, message", [
    ("tampered", "does not match its signed manifest"),
    ("wrong_key", "does not verify with any configured public key"),
    ("unsigned", "is unsigned"),
    ("labels", "lacks labels this hub's config uses: dog_bark (in audio.thresholds)"),
    ("smoke", "failed the smoke test"),
])
def test_a_bad_release_is_refused_with_a_clear_message(case, message, tmp_path, signing_key, models_bucket,
                                                       capsys):
    target, source = models_bucket
    _bad_release(case, tmp_path, target, signing_key)
    config = hub_config(tmp_path / "hub", signing_key, source, extra="[audio]\nthresholds = { dog_bark = 0.9 }\n")
    code, _, err = cli(capsys, "models", "install", "--config", str(config), "--version", "1.2.1")
    assert code != 0
    assert message in err and "1.2.1" in err and "Traceback" not in err
    st = status(capsys, config)
    assert st["active"].startswith("1.2.0") and st["candidate"] is None
    assert not (tmp_path / "hub" / "data" / "models" / "audio_events" / "1.2.1").exists()
    assert not list((tmp_path / "hub" / "data" / "models" / "audio_events").glob(".staging-*"))
    assert any(message.split(":")[0] in line["message"] for line in st["log"]), "the refusal is in the log"


# -- the service: shadow, promotion, hot swap, rollback ------------------------------------------------------------

def dir_source(tmp_path: Path) -> tuple[publish.DirTarget, str]:
    root = tmp_path / "releases-share"
    return publish.DirTarget(root), f'[models.source]\nbackend = "local"\nlocal_dir = "{root}"\n'


def run_service(config: Path, mic: FileMic, during=None) -> Service:
    svc = Service(load_config(config))
    svc.mics = [svc._mic(svc.config.microphones[0], source=mic)]
    try:
        svc.start()
        if during is not None:
            during(svc)
        svc.wait()
    finally:
        svc.stop(upload_drain_s=5.0)
        svc.close()
    return svc


def windows_heard(svc: Service) -> int:
    return sum(m.chain.windower.stats.windows for m in svc.mics)


@pytest.fixture(scope="module")
def stream_with_alarm(tmp_path_factory):
    samples, _ = alarm_scene(SR, silence_s=1.0, lead_noise_s=6.0, alarm_s=12.0, tail_s=20.0)
    return encode_audio(tmp_path_factory.mktemp("mic") / "hall.flac", samples, SR)


def test_shadow_then_hot_swap_under_a_continuous_stream_loses_no_window(tmp_path, signing_key, stream_with_alarm,
                                                                         capsys):
    target, source = dir_source(tmp_path)
    path = write_model(shipped_with_bias(), tmp_path / "rel", "1.2.1")
    publish_to(target, signing_key, release(path, "1.2.1"), path)
    models = "shadow_s = 0.0\nshadow_min_windows = 20\nwatch_s = 3600.0\n"
    config = hub_config(tmp_path, signing_key, source, models=models, extra=MIC)
    assert cli(capsys, "models", "install", "--config", str(config), "--version", "1.2.1")[0] == 0
    svc = run_service(config, FileMic(stream_with_alarm, realtime=True, speed=4.0))
    st = status(capsys, config)
    assert (st["active"], st["phase"], st["previous"]) == ("1.2.1", "watch", None), st["log"]
    assert svc.slot is not None and svc.queues.audio is not None
    heard = windows_heard(svc)
    assert set(svc.slot.windows) == {"1.2.0", "1.2.1"}, "both models scored part of the stream"
    assert sum(svc.slot.windows.values()) == heard, "every window scored once, by one model"
    assert svc.queues.audio.dropped == 0
    assert svc.mics[0].chain.logic.model_version == "1.2.1"
    shadow = st["stats"]["shadow"]
    assert shadow["scored"] >= 20 and shadow["candidate_events"] <= shadow["event_limit"]
    steps = [line["step"] for line in st["log"]]
    assert steps.index("candidate") < steps.index("shadow") < steps.index("promoted")


def test_the_service_finds_installs_and_shadows_a_new_release_by_itself(tmp_path, signing_key, capsys):
    target, source = dir_source(tmp_path)
    path = write_model(shipped_with_bias(), tmp_path / "rel", "1.2.1")
    publish_to(target, signing_key, release(path, "1.2.1"), path)
    config = hub_config(tmp_path, signing_key, source, extra=MIC)
    config.write_text(config.read_text().replace("check_interval_s = 0.0", "check_interval_s = 0.5"))
    clip = encode_audio(tmp_path / "room.flac", loud_bursts(32.0, np.random.default_rng(4)) * 0.3, SR)
    svc = run_service(config, FileMic(clip, realtime=True, speed=4.0))
    st = status(capsys, config)
    assert (st["candidate"], st["phase"]) == ("1.2.1", "shadow"), st["log"]
    assert svc.slot is not None and set(svc.slot.windows) == {"1.2.0"}, "a day of shadow before any promotion"
    assert st["stats"].get("scored", 0) > 0 or "shadow" in [line["step"] for line in st["log"]]


def test_a_release_refused_while_the_service_runs_leaves_the_running_model(tmp_path, signing_key, capsys):
    target, source = dir_source(tmp_path)
    path = write_model(shipped_with_bias(), tmp_path / "rel", "1.2.1")
    publish_to(target, signing_key, release(path, "1.2.1"), path)
    (target.root / "releases/audio_events/1.2.1/manifest.json.sig").unlink()
    config = hub_config(tmp_path, signing_key, source, extra=MIC)
    clip = encode_audio(tmp_path / "room.flac", loud_bursts(12.0, np.random.default_rng(3)) * 0.3, SR)

    def refused_meanwhile(svc: Service) -> None:
        assert svc.releases is not None
        with pytest.raises(ReleaseError, match="is unsigned"):
            svc.releases.install("1.2.1")

    svc = run_service(config, FileMic(clip, realtime=True, speed=4.0), during=refused_meanwhile)
    assert svc.slot is not None and set(svc.slot.windows) == {"1.2.0"}
    assert sum(svc.slot.windows.values()) == windows_heard(svc) > 0, "it heard the whole stream"
    st = status(capsys, config)
    assert st["candidate"] is None and "verify" in [line["step"] for line in st["log"]]


def test_a_model_failing_in_the_watch_window_is_rolled_back_without_losing_windows(tmp_path, signing_key, capsys):
    target, source = dir_source(tmp_path)
    path = write_model(inf_on_loud(shipped_with_bias()), tmp_path / "rel", "1.2.1")
    publish_to(target, signing_key, release(path, "1.2.1"), path)
    config = hub_config(tmp_path, signing_key, source, models="watch_s = 3600.0\n", extra=MIC)
    code, _, err = cli(capsys, "models", "install", "--config", str(config), "--no-shadow")
    assert code == 0, err  # the smoke test's clips are quiet: the regression does not show there
    assert status(capsys, config)["active"] == "1.2.1"
    clip = encode_audio(tmp_path / "bursts.flac", loud_bursts(24.0, np.random.default_rng(2)), SR)
    svc = run_service(config, FileMic(clip, realtime=True, speed=4.0))
    st = status(capsys, config)
    assert st["active"].startswith("1.2.0") and st["phase"] == "idle"
    assert st["versions"]["1.2.1"]["status"] == "rolled_back"
    assert "failed in use" in st["versions"]["1.2.1"]["reason"]
    assert sum(svc.slot.windows.values()) == windows_heard(svc), "the failing batch was scored again, not lost"
    assert svc.queues.audio.dropped == 0


def test_flags_past_the_bound_in_the_watch_window_roll_back(tmp_path, signing_key, capsys):
    target, source = dir_source(tmp_path)
    path = write_model(shipped_with_bias(), tmp_path / "rel", "1.2.1")
    publish_to(target, signing_key, release(path, "1.2.1"), path)
    config_path = hub_config(tmp_path, signing_key, source, models="watch_s = 3600.0\n")
    assert cli(capsys, "models", "install", "--config", str(config_path), "--no-shadow")[0] == 0
    config = load_config(config_path)
    ctx = HubContext.open(config)
    releases = ModelReleases(config, RolloutStore(ctx.db, config.models_path), ctx.secret, build_source(config))
    promoted = releases.state().phase_since
    store = releases.store
    for i in range(20):  # the previous model: 20 events in the day before, one flagged
        store.add_event("audio_events", "1.2.0", "active", "cam1", "dog_bark", promoted - 3000 + i * 100)
    for i in range(5):  # the new one: 5 events since, 3 flagged
        store.add_event("audio_events", "1.2.1", "active", "cam1", "dog_bark", promoted + 10 + i * 60)
    flagged = [promoted - 3000, promoted + 10, promoted + 70, promoted + 130]
    spans = [FlaggedSpan("cam1", "dog_bark", t, t + 1.0) for t in flagged]
    slot = AudioModelSlot(releases.load("1.2.1"), lambda name, m: None)  # type: ignore[arg-type,return-value]
    rollout = ModelRollout(config, ctx, releases, slot, ctx_stop := __import__("threading").Event(),
                           flag_spans=lambda since: [s for s in spans if s.end >= since])
    rollout.tick()
    ctx_stop.set()
    state = releases.state()
    assert (state.active, state.phase) == (None, "idle")
    assert slot.pending, "the shipped model is swapped in on the next batch"
    st = status(capsys, config_path)
    assert "3 of its 5 events were flagged" in st["versions"]["1.2.1"]["reason"]
    ctx.close()


def test_rollback_by_hand_and_nothing_to_roll_back(tmp_path, signing_key, capsys):
    target, source = dir_source(tmp_path)
    path = write_model(shipped_with_bias(), tmp_path / "rel", "1.2.1")
    publish_to(target, signing_key, release(path, "1.2.1"), path)
    config = hub_config(tmp_path, signing_key, source)
    code, _, err = cli(capsys, "models", "rollback", "--config", str(config))
    assert code != 0 and "nothing to roll back to" in err
    assert cli(capsys, "models", "install", "--config", str(config), "--no-shadow")[0] == 0
    code, text, _ = cli(capsys, "models", "rollback", "--config", str(config))
    assert code == 0 and "1.2.1 rolled back to the shipped model" in text
    assert status(capsys, config)["active"].startswith("1.2.0")
    # a rolled-back release is not offered again by a check; it can still be installed by version
    code, text, _ = cli(capsys, "models", "check", "--config", str(config))
    assert "rolled_back" in text


def test_staged_rollout_moves_a_hub_in_by_editing_one_field(tmp_path, signing_key, capsys):
    target, source = dir_source(tmp_path)
    config = hub_config(tmp_path, signing_key, source)
    secret = load_or_create_secret(tmp_path / "data")
    pos = cohort_position(secret, "audio_events", "1.2.1")
    path = write_model(shipped_with_bias(), tmp_path / "rel", "1.2.1")
    manifest = release(path, "1.2.1", rollout=max(0.0, pos - 1.0))
    publish_to(target, signing_key, manifest, path)
    assert not in_cohort(secret, manifest)
    code, text, _ = cli(capsys, "models", "check", "--config", str(config))
    assert "not in cohort" in text
    code, _, err = cli(capsys, "models", "install", "--config", str(config))
    assert code != 0 and "no newer release" in err
    publish.set_rollout(target, "releases", "audio_events", "1.2.1", min(100.0, pos + 1.0), signing_key)
    code, text, _ = cli(capsys, "models", "check", "--config", str(config))
    assert "available" in text
    assert cli(capsys, "models", "install", "--config", str(config))[0] == 0


# -- the pieces ------------------------------------------------------------------------------------------------------

def test_an_event_sounding_during_a_swap_goes_on_and_a_dropped_label_ends():
    old = AudioEventLogic("hall", ["background", "dog_bark", "siren"], {"dog_bark": 0.5, "siren": 0.5},
                          min_duration_s=0.0, model_version="1.0.0")
    starts = [tr for t in (0.0, 0.5) for tr in old.update(t, np.array([0.0, 0.9, 0.9], np.float32))]
    assert {tr.event.label for tr in starts if tr.kind == "start"} == {"dog_bark", "siren"}
    new = AudioEventLogic("hall", ["dog_bark", "background", "scream"], {"dog_bark": 0.6, "scream": 0.5},
                          min_duration_s=0.0, model_version="1.1.0")
    ended = old.adopt(new)
    assert [(tr.kind, tr.event.label) for tr in ended] == [("end", "siren")], "siren is gone from the new model"
    assert old.model_version == "1.1.0" and old.labels == ("dog_bark", "background", "scream")
    again = old.update(1.0, np.array([0.9, 0.0, 0.0], np.float32))  # new column order
    assert not [tr for tr in again if tr.kind == "start"], "the bark goes on: not started twice"
    assert old.active["dog_bark"].start == 0.0 and old.active["dog_bark"].last_seen == 1.0


def test_the_promotion_and_rollback_rules():
    assert shadow_verdict(10, 12, 2, 2, ratio=1.25, slack=2).promote
    assert not shadow_verdict(10, 15, 0, 0, ratio=1.25, slack=2).promote, "more events than the limit"
    worse = shadow_verdict(10, 4, 1, 1, ratio=1.25, slack=2)
    assert not worse.promote and "flag-confirmed false-alarm rate" in worse.reason
    assert shadow_verdict(0, 2, 0, 0, ratio=1.25, slack=2).promote, "a quiet home: the slack allows a few"
    assert flag_rate_exceeded(3, 5, 1, 20, min_flags=3, factor=2.0, margin=0.05)[0]
    assert not flag_rate_exceeded(2, 5, 1, 20, min_flags=3, factor=2.0, margin=0.05)[0], "too few flags to judge"
    assert not flag_rate_exceeded(3, 60, 1, 20, min_flags=3, factor=2.0, margin=0.05)[0], "the same rate"


def test_a_config_with_a_bad_public_key_names_the_field(tmp_path):
    bad = tmp_path / "hub.toml"
    bad.write_text(f'[service]\ndata_dir = "{tmp_path}"\n[models]\npublic_keys = ["abc"]\n')
    from edge_media.config import ConfigError

    with pytest.raises(ConfigError, match=r"models.public_keys.*public_keys\[0\]: not an Ed25519 public key"):
        load_config(bad)


def test_bad_input_to_the_new_commands_is_one_line_and_exit_2(tmp_path, signing_key, capsys):
    _, source = dir_source(tmp_path)
    config = hub_config(tmp_path, signing_key, source)
    code, _, err = cli(capsys, "models", "install", "--config", str(config), "--version", "../../etc")
    assert code == 2 and err.count("\n") == 1 and "not a release version" in err
    with pytest.raises(SystemExit) as exit_:
        publish.main(["rollout", "--key", str(tmp_path / "none.pem"), "--version", "1.2.1", "--percent", "5",
                      "--dir", str(tmp_path)])
    assert exit_.value.code == 2 and "not a readable unencrypted Ed25519 PEM private key" in capsys.readouterr().err


def test_status_is_readable_with_nothing_installed(tmp_path, signing_key, capsys):
    config = hub_config(tmp_path, signing_key, "")
    code, text, _ = cli(capsys, "models", "status", "--config", str(config))
    assert code == 0 and "1.2.0 (shipped) active" in text and "release source: none" in text
    code, _, err = cli(capsys, "models", "check", "--config", str(config))
    assert code != 0 and "no release source is configured" in err


def test_the_smoke_test_clips_ship_in_the_wheel():
    import tomllib

    from edge_media.rollout.smoke import CASES

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for case in CASES:  # an installed hub without them would refuse every release
        assert shipped[f"models/audio_events/samples/{case.file}"] == \
            f"edge_media/_models/audio_events/samples/{case.file}"


def test_an_owners_erasure_removes_their_sources_from_the_event_ledger(tmp_path, signing_key, capsys):
    extra = ('[[cameras]]\nname = "porch"\nowner = "alice"\nrecord_url = "rtsp://127.0.0.1:1/x"\n'
             '[[cameras]]\nname = "yard"\nowner = "bob"\nrecord_url = "rtsp://127.0.0.1:1/y"\n')
    config_path = hub_config(tmp_path, signing_key, "", extra=extra)
    config = load_config(config_path)
    ctx = HubContext.open(config)
    store = RolloutStore(ctx.db, config.models_path)
    for camera in ("porch", "yard"):
        store.add_event("audio_events", "1.2.0", "active", ctx.camera_hash(camera), "dog_bark", 100.0)
    yard = ctx.camera_hash("yard")
    ctx.close()
    assert cli(capsys, "storage", "erase", "--config", str(config_path), "--owner", "alice", "--yes")[0] == 0
    db = Database(tmp_path / "data" / "edge-media.db")
    rows = db.query("SELECT source_hash FROM model_events")
    db.close()
    assert [r["source_hash"] for r in rows] == [yard], "alice's events are gone, bob's stay"
