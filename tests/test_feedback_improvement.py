"""Product improvement: while the owner's consent holds, every new recording's audio is anonymised and sent by
the running service; without it, on a restricted camera, or over the daily cap, nothing is. Withdrawals reach
the running sender's queue through the ledger's change feed."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from edge_media.cli import main
from edge_media.config import load_config
from edge_media.privacy.notices import Purpose
from edge_media.service.catalog import ClipCatalog
from edge_media.service.context import HubContext
from edge_media.service.feedback import (
    FeedbackThread,
    ProductImprovement,
    Recording,
    build_partner_store,
    clip_file,
    open_queue,
)
from edge_media.service.hub import Service

from clip_hub import Hub, copy_hub, make_media, record_hub, write_config

PI = "product-improvement"


def grant(hub: Hub, owner: str = "alice", purpose: str = PI) -> None:
    assert main(["consent", "grant", "--config", str(hub.config), "--owner", owner, "--purpose", purpose,
                 "--yes"]) == 0


def partner_objects(hub: Hub) -> dict[str, bytes]:
    store = build_partner_store(load_config(hub.config))
    return {o.key: store.get_object(o.key) for o in store.list_objects()}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    return make_media(tmp_path_factory.mktemp("pi-media"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, media):
    return record_hub(tmp_path_factory.mktemp("pi-hub"), media)


def test_the_service_sends_every_new_recording_with_audio_while_product_improvement_is_granted(tmp_path, media,
                                                                                                capsys):
    hub = Hub(write_config(tmp_path / "hub.toml", tmp_path / "data", media), tmp_path / "data")
    grant(hub, "alice")  # kitchen (alice) has an audio track; porch (bob) has none and bob never agreed
    svc = Service(load_config(hub.config))
    svc.run()
    svc.close()
    objects = partner_objects(hub)
    metas = [json.loads(v) for k, v in objects.items() if k.startswith("samples/") and k.endswith(".json")]
    assert len(metas) == 1 and metas[0]["purpose"] == PI
    assert (metas[0]["predicted"], metas[0]["corrected"]) == (None, None), "whole clip, not a flag"
    assert len([k for k in objects if k.startswith("manifests/")]) == 1
    capsys.readouterr()
    assert main(["feedback", "disclosures", "--config", str(hub.config), "--owner", "alice", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["sample_id"] == metas[0]["sample_id"] and row["purpose"] == PI
    assert not list((hub.data / "feedback" / "incoming").glob("*")), "the offered clip's link is gone"


def recording(hub: Hub, camera: str = "kitchen"):
    ctx = HubContext.open(load_config(hub.config))
    [clip] = ClipCatalog(ctx).list_clips(camera=camera)
    return ctx, clip


@pytest.fixture
def pi_hub(recorded, media, tmp_path) -> Hub:
    return copy_hub(recorded, tmp_path, media)


def offer_kitchen(hub: Hub, *, restricted: set[str] = frozenset(), cap: int | None = None) -> tuple[bool, int]:
    if cap is not None:
        hub.config.write_text(hub.config.read_text() + f"[feedback]\ndaily_byte_cap = {cap}\n")
    ctx, clip = recording(hub)
    queue = open_queue(ctx)
    pi = ProductImprovement(ctx, queue, restricted=lambda: set(restricted))
    assert clip.details is not None
    with clip_file(ctx, clip) as path:
        offered = pi.offer(Recording(clip.clip_id, "kitchen", path, True, clip.details.wall_start))
    queued = pi.process()
    ctx.close()
    return offered, queued


def test_without_product_improvement_consent_nothing_is_offered(pi_hub):
    assert offer_kitchen(pi_hub) == (False, 0)
    assert not (pi_hub.data / "feedback" / "incoming").exists()


def test_a_restricted_camera_sends_nothing_even_with_consent(pi_hub):
    grant(pi_hub)
    ctx, clip = recording(pi_hub)
    ctx.close()
    assert offer_kitchen(pi_hub, restricted={clip.camera_hash}) == (False, 0)


def test_the_daily_byte_cap_is_respected(pi_hub):
    grant(pi_hub)
    assert offer_kitchen(pi_hub, cap=1000) == (True, 0), "one sample is larger than the cap: not queued"
    assert not list((pi_hub.data / "feedback").glob("*.flac")), "its anonymised files are gone too"


def test_with_consent_the_clip_is_queued_and_a_withdrawal_reaches_the_running_sender(pi_hub):
    grant(pi_hub)
    assert offer_kitchen(pi_hub) == (True, 1)
    ctx = HubContext.open(load_config(pi_hub.config))
    queue = open_queue(ctx)
    thread = FeedbackThread(queue, build_partner_store(ctx.config), 3600, threading.Event())
    queue.ledger.withdraw("alice", Purpose.PRODUCT_IMPROVEMENT, actor="alice", method="api")
    assert thread.check_withdrawals() == 1, "the change feed hands the withdrawal to the sender"
    assert queue.pending() == [] and not list((pi_hub.data / "feedback").glob("*.flac"))
    ctx.close()


def feedback_metrics(hub: Hub) -> dict[tuple[str, str], float]:
    """(sample name, purpose) -> value of the feedback metrics of a service on ``hub`` (scraped, parsed)."""
    from prometheus_client.parser import text_string_to_metric_families

    svc = Service(load_config(hub.config))
    try:
        text = svc.metrics.render().decode()
    finally:
        svc.close()
    return {(s.name, s.labels["purpose"]): s.value for f in text_string_to_metric_families(text)
            if f.name.startswith("edge_media_feedback") for s in f.samples}


def test_metrics_count_samples_queued_and_sent(pi_hub):
    grant(pi_hub)
    assert feedback_metrics(pi_hub) == {
        ("edge_media_feedback_queued", PI): 0, ("edge_media_feedback_queued", "misdetection-feedback"): 0,
        ("edge_media_feedback_sent_total", PI): 0, ("edge_media_feedback_sent_total", "misdetection-feedback"): 0}
    assert offer_kitchen(pi_hub) == (True, 1)
    queued = feedback_metrics(pi_hub)
    assert queued[("edge_media_feedback_queued", PI)] == 1 and queued[("edge_media_feedback_sent_total", PI)] == 0
    ctx = HubContext.open(load_config(pi_hub.config))
    FeedbackThread(open_queue(ctx), build_partner_store(ctx.config), 3600, threading.Event()).run_once()
    ctx.close()
    sent = feedback_metrics(pi_hub)
    samples = [k for k in partner_objects(pi_hub) if k.startswith("samples/") and k.endswith(".json")]
    assert sent[("edge_media_feedback_sent_total", PI)] == len(samples) == 1
    assert sent[("edge_media_feedback_queued", PI)] == 0
