"""Tokens: the users CLI (a token printed once, only its hash stored, list, revoke), failed-login rate limiting,
and no token, link signature or install secret in anything the hub logs."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3

import httpx
import pytest

from edge_media.cli import main

from api_hub import BAD_TOKEN, record_api_hub, served_hub


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_api_hub(tmp_path_factory.mktemp("auth"))


@pytest.fixture
def api(recorded, tmp_path):
    hub, media = recorded
    with served_hub(hub, tmp_path, media, api="auth_failures_per_minute = 5") as served:
        yield served


def test_more_bad_tokens_than_the_limit_from_one_address_get_429(api):
    with httpx.Client(base_url=api.url) as c:
        bad = {"Authorization": f"Bearer {BAD_TOKEN}"}
        statuses = [c.get("/api/v1/me", headers=bad).status_code for _ in range(7)]
        good = c.get("/api/v1/me", headers=api.headers("owner_a"))
        health = c.get("/api/v1/health")
        link = c.get(f"/api/v1/media/{api.clips['kitchen']}", params={"u": "vic", "exp": 9999999999, "sig": "00"})
    assert statuses == [401] * 5 + [429] * 2
    assert good.status_code == 429 and int(good.headers["retry-after"]) > 0  # the address is held off a minute
    assert health.status_code == 200  # public routes stay up
    assert link.status_code == 429


def test_good_tokens_are_never_limited(api):
    with api.client("viewer_a") as c:
        assert {c.get("/api/v1/me").status_code for _ in range(20)} == {200}


def test_no_token_signature_or_secret_in_the_logs(api, caplog):
    caplog.set_level(logging.DEBUG)
    with api.client("viewer_a") as c:
        url = c.post(f"/api/v1/clips/{api.clips['kitchen']}/link").json()["url"]
        assert c.get(url).status_code == 200
        assert c.get("/api/v1/events", params={"cursor": "bad"}).status_code == 422
    with api.client("bad_token") as c:
        assert c.get("/api/v1/me").status_code == 401
    sig = httpx.URL(url).params["sig"]
    secret = api.service.ctx.secret
    hub_lines = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the test client
    text = "\n".join(r.getMessage() for r in hub_lines)
    assert "edge_media.api.access" in {r.name for r in hub_lines}  # the hub does log its requests...
    assert f"GET /api/v1/media/{api.clips['kitchen']} 200" in text  # ...without their query strings
    for needle in (*api.tokens.values(), BAD_TOKEN, sig, secret.hex()):
        assert needle not in text
    assert "uvicorn.access" not in {r.name for r in hub_lines}


def test_users_cli_prints_the_token_once_and_stores_only_its_hash(recorded, tmp_path, capsys):
    hub, media = recorded
    with served_hub(hub, tmp_path, media) as api:
        config = str(api.hub.config)
        assert main(["users", "add", "carol", "--role", "viewer", "--cameras", "porch,kitchen", "--config",
                     config]) == 0
        out = capsys.readouterr().out
        token = out.strip().splitlines()[-1]
        assert len(token) >= 43 and token in out
        db = sqlite3.connect(api.hub.data / "edge-media.db")
        rows = db.execute("SELECT * FROM users").fetchall()
        dump = "\n".join(db.iterdump())
        db.close()
        assert token not in dump  # not in any table, column or index
        assert hashlib.sha256(token.encode()).hexdigest() in dump
        assert len(rows) == 5
        with api.client() as c:
            me = c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
        assert me == {"name": "carol", "role": "viewer", "owner": None, "cameras": ["kitchen", "porch"]}
        assert main(["users", "list", "--config", config]) == 0
        listing = capsys.readouterr().out
        assert "carol" in listing and "viewer" in listing and token not in listing
        assert main(["users", "list", "--config", config, "--json"]) == 0
        users = {u["name"]: u for u in json.loads(capsys.readouterr().out)}
        assert users["carol"]["cameras"] == ["kitchen", "porch"] and users["carol"]["revoked_at"] is None
        assert users["old"]["revoked_at"] is not None and "token" not in json.dumps(users)
        assert main(["users", "revoke", "carol", "--config", config]) == 0
        assert "revoked user carol" in capsys.readouterr().out
        with api.client() as c:
            assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize("argv, message", [
    (["users", "add", "alice", "--role", "owner"], "exists already"),
    (["users", "add", "dan", "--role", "viewer"], "needs --cameras"),
    (["users", "add", "dan", "--role", "viewer", "--cameras", "garage"],
     "--cameras: no camera or microphone named 'garage'"),
    (["users", "add", "dan", "--role", "owner"], "no owner 'dan'"),
    (["users", "add", "dan", "--role", "owner", "--owner", "alice", "--cameras", "porch"], "--cameras is for viewers"),
    (["users", "add", "no spaces", "--role", "viewer", "--cameras", "porch"], "user name"),
    (["users", "revoke", "nobody"], "no user 'nobody'"),
])
def test_users_cli_refuses_bad_input_with_one_line(recorded, tmp_path, capsys, argv, message):
    hub, media = recorded
    with served_hub(hub, tmp_path, media) as api:
        before = api.service.ctx.db.query("SELECT COUNT(*) FROM users")[0][0]
        assert main([*argv, "--config", str(api.hub.config)]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
        assert api.service.ctx.db.query("SELECT COUNT(*) FROM users")[0][0] == before


def test_an_owner_user_may_act_for_an_owner_id(recorded, tmp_path, capsys):
    hub, media = recorded
    with served_hub(hub, tmp_path, media) as api:
        assert main(["users", "add", "alice-phone", "--role", "owner", "--owner", "alice", "--config",
                     str(api.hub.config)]) == 0
        token = capsys.readouterr().out.strip().splitlines()[-1]
        with api.client() as c:
            r = c.get("/api/v1/cameras", headers={"Authorization": f"Bearer {token}"})
        assert [x["name"] for x in r.json()] == ["kitchen"]
