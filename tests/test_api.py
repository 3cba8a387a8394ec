"""The hub's REST API over real HTTP (uvicorn on a free port) against a hub that recorded real clips: every
route's happy path and its errors. Roles are walked in test_api_roles, links in test_api_links."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_media.cli import main
from edge_media.privacy.restrictions import Restrictions

from api_hub import record_api_hub, served_hub


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_api_hub(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def ro(recorded, tmp_path_factory):
    """Shared by the tests that only read."""
    hub, media = recorded
    with served_hub(hub, tmp_path_factory.mktemp("api-ro"), media) as served:
        yield served


@pytest.fixture
def api(recorded, tmp_path):
    """A fresh copy for a test that writes (flags, consent, restriction, erasure)."""
    hub, media = recorded
    with served_hub(hub, tmp_path, media) as served:
        yield served


def test_health_is_public_and_names_nothing(ro):
    with ro.client() as c:
        r = c.get("/api/v1/health")
    assert r.status_code == 200
    assert set(r.json()) == {"status", "version"} and r.json()["status"] == "ok"
    assert "kitchen" not in r.text and "alice" not in r.text
    # links carry signatures in their query: no page hands its URL on, and no answer is cached
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_root_redirects_to_the_review_page(ro):
    with ro.client() as c:
        r = c.get("/", follow_redirects=False)
    assert r.status_code in (302, 307) and r.headers["location"] == "/ui/"


def test_me_says_who_and_what_they_see(ro):
    expected = {"owner_a": {"name": "alice", "role": "owner", "owner": "alice", "cameras": ["kitchen"]},
                "viewer_a": {"name": "vic", "role": "viewer", "owner": None, "cameras": ["kitchen"]},
                "owner_b": {"name": "bob", "role": "owner", "owner": "bob", "cameras": ["porch"]}}
    for role, me in expected.items():
        with ro.client(role) as c:
            assert c.get("/api/v1/me").json() == me


def test_missing_and_invalid_tokens_get_401_with_the_bearer_challenge(ro):
    for role in ("anonymous", "bad_token", "revoked"):
        with ro.client(role) as c:
            r = c.get("/api/v1/me")
        assert r.status_code == 401, role
        assert r.headers["www-authenticate"] == "Bearer"
        assert "detail" in r.json()


def test_cameras_live_status_per_principal(ro):
    ro.service.live.sample_frames("kitchen", 0, now=100.0)
    ro.service.live.sample_frames("kitchen", 50, now=110.0)
    with ro.client("owner_a") as c:
        cams = c.get("/api/v1/cameras").json()
        one = c.get("/api/v1/cameras/kitchen").json()
        assert c.get("/api/v1/cameras/porch").status_code == 404  # bob's: as if it did not exist
        assert c.get("/api/v1/cameras/nowhere").status_code == 404
    assert [x["name"] for x in cams] == ["kitchen"] and cams[0] == one
    assert one | {"state": None} == {"name": "kitchen", "kind": "camera", "owner": "alice", "state": None,
                                     "connected": False, "fps": 5.0, "restricted": False, "last_motion": None,
                                     "last_audio": None}
    with ro.client("owner_b") as c:
        assert [x["name"] for x in c.get("/api/v1/cameras").json()] == ["porch"]


def test_last_events_come_from_the_hub_bus(api):
    from edge_media.service.bus import EventNotice

    api.service.bus.publish(EventNotice(source="kitchen", label="smoke_co_alarm", phase="start", event_id="e1",
                                        score=0.93, start=1_796_119_200.0, end=None))
    with api.client("viewer_a") as c:
        cam = c.get("/api/v1/cameras/kitchen").json()
    assert cam["last_audio"] == {"label": "smoke_co_alarm", "event_id": "e1", "start": "2026-12-01T10:00:00.000Z",
                                 "end": None, "score": 0.93}
    assert cam["last_motion"] is None


def _all_pages(client, path, **params):
    pages, cursor = [], None
    while True:
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        pages.append(r.json()["items"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return pages


def test_events_filter_and_paginate_newest_first(ro):
    with ro.client("owner_b") as c:
        everything = c.get("/api/v1/events").json()
        pages = _all_pages(c, "/api/v1/events", limit=1)
        assert c.get("/api/v1/events", params={"label": "smoke_co_alarm"}).json()["items"] == []
        motion = c.get("/api/v1/events", params={"label": "motion", "camera": "porch"}).json()["items"]
        newest = everything["items"][0]
        since = c.get("/api/v1/events", params={"since": newest["start"]}).json()["items"]
        until = c.get("/api/v1/events", params={"until": newest["start"]}).json()["items"]
    items = everything["items"]
    assert len(items) == 3 and everything["next_cursor"] is None
    assert {e["camera"] for e in items} == {"porch"} and {e["label"] for e in items} == {"motion"}
    assert [e["start"] for e in items] == sorted((e["start"] for e in items), reverse=True)
    assert [len(p) for p in pages] == [1, 1, 1] and [p[0] for p in pages] == items
    assert motion == items
    assert since == [newest] and until == items[1:]  # since <= start < until
    assert len({e["clip_id"] for e in items}) == 3 and len({e["event_id"] for e in items}) == 3


def test_event_pages_are_stable_when_new_clips_arrive(api, recorded):
    """Clips recorded between two page reads never repeat or hide an event that was there: the cursor is the
    last event's sort key, not an offset. (File cameras run faster than real time, so the new clips' wall times
    interleave with the old ones: some new events fall after the cursor and are listed, in order.)"""
    hub, media = recorded
    with api.client("owner_b") as c:
        before = c.get("/api/v1/events").json()["items"]
        first = c.get("/api/v1/events", params={"limit": 2}).json()
        _record_more(api, media["porch"])
        rest = _all_pages(c, "/api/v1/events", limit=2, cursor=first["next_cursor"])
        fresh = c.get("/api/v1/events", params={"limit": 10}).json()["items"]
    seen = first["items"] + [e for page in rest for e in page]
    ids = [e["event_id"] + e["clip_id"] for e in seen]
    assert len(ids) == len(set(ids))  # nothing twice
    assert {e["clip_id"] for e in before} <= {e["clip_id"] for e in seen}  # nothing hidden
    assert [e["start"] for e in seen] == sorted((e["start"] for e in seen), reverse=True)
    assert len(fresh) == 6 and [e["start"] for e in fresh] == sorted((e["start"] for e in fresh), reverse=True)
    assert set(map(json.dumps, seen)) <= set(map(json.dumps, fresh))


def _record_more(api, video) -> None:
    """Run the hub's cameras again over the same files: new clips in the same database and store."""
    from edge_media.config import load_config
    from edge_media.service.hub import Service

    svc = Service(load_config(api.hub.config))
    svc.workers = [w for w in svc.workers if w.cam.name == "porch"]
    svc.run()
    svc.close()


def test_bad_cursor_and_bad_filters_are_422(ro):
    with ro.client("owner_a") as c:
        for params in ({"cursor": "nonsense"}, {"limit": 0}, {"limit": 501}, {"since": "yesterday"}):
            r = c.get("/api/v1/events", params=params)
            assert r.status_code == 422, params
            assert "detail" in r.json()
        clip_cursor = c.get("/api/v1/clips", params={"limit": 1}).json()["next_cursor"]
        assert c.get("/api/v1/events", params={"cursor": clip_cursor or "x"}).status_code == 422
        assert c.get("/api/v1/events", params={"camera": "porch"}).status_code == 404  # not hers


def test_clips_list_and_one(ro):
    with ro.client("owner_b") as c:
        listing = c.get("/api/v1/clips").json()
        pages = _all_pages(c, "/api/v1/clips", limit=2)
        one = c.get(f"/api/v1/clips/{listing['items'][0]['clip_id']}").json()
        assert c.get(f"/api/v1/clips/{ro.clips['kitchen']}").status_code == 404  # alice's
        assert c.get("/api/v1/clips/no-such-clip").status_code == 404
    items = listing["items"]
    assert len(items) == 3 and [len(p) for p in pages] == [2, 1] and pages[0] + pages[1] == items
    assert one == items[0]
    assert one["camera"] == "porch" and one["owner"] == "bob" and one["video"] is True and one["audio"] is False
    assert [e["label"] for e in one["events"]] == ["motion"] and one["flags"] == []
    assert one["start"] < one["end"] and one["retain_until"] > one["end"]
    with ro.client("viewer_a") as c:
        kitchen = c.get("/api/v1/clips").json()["items"]
    assert [k["camera"] for k in kitchen] == ["kitchen"] and kitchen[0]["audio"] is True
    assert kitchen[0]["events"][0]["label"] == "smoke_co_alarm"


def test_flag_route_is_the_feedback_cli_s_domain_function(api, capsys):
    clip = api.clips["kitchen"]
    with api.client("viewer_a") as c:
        r = c.post(f"/api/v1/clips/{clip}/flags", json={"kind": "wrong", "label": "smoke_co_alarm", "truth": "nothing"})
        assert r.status_code == 201, r.text
        again = c.post(f"/api/v1/clips/{clip}/flags", json={"kind": "wrong", "label": "smoke_co_alarm"})
        unknown = c.post(f"/api/v1/clips/{clip}/flags", json={"kind": "wrong", "label": "unicorn"})
        missed_present = c.post(f"/api/v1/clips/{clip}/flags", json={"kind": "missed", "label": "smoke_co_alarm"})
        shape = c.post(f"/api/v1/clips/{clip}/flags", json={"kind": "maybe", "label": "motion"})
        listed = c.get("/api/v1/flags").json()
        in_clip = c.get(f"/api/v1/clips/{clip}").json()["flags"]
    flag = r.json()
    assert flag["kind"] == "wrong" and flag["label"] == "smoke_co_alarm" and flag["truth"] == "nothing"
    assert flag["clip_id"] == clip and flag["partner_queued"] is False  # alice gave no consent
    assert again.status_code == 409 and "already flagged" in again.json()["detail"]
    assert unknown.status_code == 422 and "unicorn" in unknown.json()["detail"]
    assert missed_present.status_code == 422 and shape.status_code == 422
    assert [f["flag_id"] for f in listed] == [flag["flag_id"]] == [f["flag_id"] for f in in_clip]
    # The CLI reads what the API wrote: one implementation, one table.
    assert main(["feedback", "flags", "--config", str(api.hub.config), "--json"]) == 0
    [cli_flag] = json.loads(capsys.readouterr().out)
    assert cli_flag["flag_id"] == flag["flag_id"] and cli_flag["actor"] == "api:vic"
    with api.client("owner_b") as c:
        assert c.get("/api/v1/flags").json() == []
        assert c.get("/api/v1/flags", params={"camera": "kitchen"}).status_code == 404


def test_flag_with_consent_queues_an_anonymised_sample(api):
    with api.client("owner_a") as c:
        notice = c.get("/api/v1/consent/notice", params={"purpose": "misdetection-feedback"}).json()
        assert c.post("/api/v1/consent/misdetection-feedback/grant",
                      json={"notice_version": notice["version"]}).status_code == 200
        r = c.post(f"/api/v1/clips/{api.clips['kitchen']}/flags", json={"kind": "wrong", "label": "smoke_co_alarm"})
        assert r.status_code == 201 and r.json()["partner_queued"] is True
        withdrawn = c.post("/api/v1/consent/misdetection-feedback/withdraw").json()
    assert withdrawn["recorded"] is True and withdrawn["deleted_samples"] == 1  # the queued sample is gone


def test_consent_routes_match_the_cli(api, capsys):
    with api.client("owner_a") as c:
        notice = c.get("/api/v1/consent/notice", params={"purpose": "product-improvement"}).json()
        stale = c.post("/api/v1/consent/product-improvement/grant", json={"notice_version": notice["version"] + 1})
        granted = c.post("/api/v1/consent/product-improvement/grant", json={"notice_version": notice["version"]})
        twice = c.post("/api/v1/consent/product-improvement/grant", json={"notice_version": notice["version"]})
        shown = c.get("/api/v1/consent").json()
        withdrawn = c.post("/api/v1/consent/product-improvement/withdraw").json()
        nothing = c.post("/api/v1/consent/product-improvement/withdraw").json()
        bad = c.post("/api/v1/consent/everything/grant", json={"notice_version": 1})
        bad_notice = c.get("/api/v1/consent/notice", params={"purpose": "everything"})
        no_body = c.post("/api/v1/consent/product-improvement/grant")
    assert len(notice["sha256"]) == 64 and notice["text"] and notice["purpose"] == "product-improvement"
    assert stale.status_code == 409
    g = granted.json()
    assert granted.status_code == 200 and g["recorded"] is True and g["action"] == "grant"
    assert twice.json()["recorded"] is False and twice.json()["consent_id"] == g["consent_id"]
    assert withdrawn["recorded"] is True and nothing["recorded"] is False
    assert bad.status_code == 422 and "product-improvement" in bad.json()["detail"]
    assert bad_notice.status_code == 422 and no_body.status_code == 422
    assert main(["consent", "show", "--config", str(api.hub.config), "--owner", "alice", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["history"][0] == shown["history"][0] and shown["history"][0]["method"] == "api"
    assert shown["owner"] == "alice" and {s["purpose"] for s in shown["state"]} == {
        "misdetection-feedback", "product-improvement"}
    assert len(cli["history"]) == 2  # grant, withdraw


def test_disclosures_are_the_owner_s_log(api):
    with api.client("owner_a") as c:
        r = c.get("/api/v1/disclosures")
    assert r.status_code == 200 and r.json() == []


def test_restrict_and_unrestrict(api):
    with api.client("owner_a") as c:
        on = c.post("/api/v1/cameras/kitchen/restrict")
        shown = c.get("/api/v1/cameras/kitchen").json()["restricted"]
        rows = Restrictions(api.service.ctx.db).restricted_hashes()
        off = c.delete("/api/v1/cameras/kitchen/restrict")
        after = Restrictions(api.service.ctx.db).restricted_hashes()
        assert c.post("/api/v1/cameras/porch/restrict").status_code == 404
    assert on.status_code == 200 and on.json() == {"camera": "kitchen", "restricted": True} and shown is True
    assert rows == {api.service.ctx.camera_hash("kitchen")}
    assert off.json() == {"camera": "kitchen", "restricted": False} and after == set()


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_export_streams_everything_of_the_owner(api, fmt):
    with api.client("owner_b") as c, c.stream("GET", "/api/v1/export", params={"format": fmt}) as r:
        assert r.status_code == 200
        assert "attachment" in r.headers["content-disposition"]
        assert "content-length" not in r.headers  # streamed, not built first
        body = r.read()
    if fmt == "zip":
        names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    else:
        names = tarfile.open(fileobj=io.BytesIO(body)).getnames()
    assert {"manifest.json", "consent.json", "flags.json", "feedback-disclosures.json"} <= set(names)
    clips = [n for n in names if n.endswith(".mp4")]
    assert len(clips) == 3 and all(api.service.ctx.camera_hash("porch") in n for n in clips)
    with api.client("owner_b") as c:
        assert c.get("/api/v1/export", params={"format": "rar"}).status_code == 422


def test_erase_needs_the_word_and_removes_the_owner_s_clips(api):
    with api.client("owner_b") as c:
        assert c.post("/api/v1/erase", json={}).status_code == 422
        assert c.post("/api/v1/erase", json={"confirm": "yes"}).status_code == 422
        r = c.post("/api/v1/erase", json={"confirm": "ERASE"})
        assert r.status_code == 200, r.text
        assert c.get("/api/v1/clips").json()["items"] == []
        assert c.get("/api/v1/events").json()["items"] == []
    report = r.json()
    assert report["objects"] == 6 and report["index_rows"] == 6  # three clips and their sidecars
    with api.client("owner_a") as c:
        assert len(c.get("/api/v1/clips").json()["items"]) == 1  # alice's are untouched


def test_models_lists_names_and_versions(ro):
    with ro.client("viewer_a") as c:
        models = c.get("/api/v1/models").json()["models"]
    assert {m["name"] for m in models} == {"motion", "audio_events"} and all(m["version"] for m in models)
    audio = next(m for m in models if m["name"] == "audio_events")
    assert audio["rollout"]["phase"] == "idle" and audio["rollout"]["candidate"] is None  # nothing installed yet
    assert next(m for m in models if m["name"] == "motion")["rollout"] is None


def test_metrics_show_only_the_principal_s_cameras(ro):
    for name in ("kitchen", "porch"):
        ro.service.live.sample_frames(name, 0, now=200.0)
        ro.service.live.sample_frames(name, 30, now=210.0)
    seen = {}
    for role in ("owner_a", "viewer_a", "owner_b"):
        with ro.client(role) as c:
            r = c.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        seen[role] = {s.labels["camera"] for s in families["edge_media_camera_fps"].samples}
        assert "edge_media_outbox_depth" in families
    assert seen == {"owner_a": {"kitchen"}, "viewer_a": {"kitchen"}, "owner_b": {"porch"}}
