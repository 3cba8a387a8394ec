"""Default deny, walked: every route of the OpenAPI schema with every role, against an expected status. A route
added without an entry here fails the test. The matrix is the table in docs/api-roles.md (regenerate it with
``UPDATE_API_ROLES=1 pytest tests/test_api_roles.py``).

Roles: anonymous, a bad token, a revoked token, a viewer of camera A (kitchen), the owner of A (alice), and
another owner B (bob) with camera C (porch). Path parameters name A's resources throughout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from api_hub import ROLES, record_api_hub, served_hub

DOC = Path(__file__).resolve().parents[1] / "docs" / "api-roles.md"

ANY = dict.fromkeys(ROLES, 200)
NO_AUTH = {"anonymous": 401, "bad_token": 401, "revoked": 401}
AUTH = {**NO_AUTH, "viewer_a": 200, "owner_a": 200, "owner_b": 200}
OWN_A = {**NO_AUTH, "viewer_a": 200, "owner_a": 200, "owner_b": 404}  # A's resource: B must not learn it exists
OWNER_OWN_A = {**NO_AUTH, "viewer_a": 403, "owner_a": 200, "owner_b": 404}
OWNER = {**NO_AUTH, "viewer_a": 403, "owner_a": 200, "owner_b": 200}  # the owner's own data (B: B's own)

# (method, path) -> role -> status. Erasure goes last: it removes A's clips.
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/api/v1/health"): ANY,
    ("GET", "/api/v1/me"): AUTH,
    ("GET", "/api/v1/cameras"): AUTH,
    ("GET", "/api/v1/cameras/{name}"): OWN_A,
    ("POST", "/api/v1/cameras/{name}/restrict"): OWNER_OWN_A,
    ("DELETE", "/api/v1/cameras/{name}/restrict"): OWNER_OWN_A,
    ("GET", "/api/v1/events"): AUTH,
    ("GET", "/api/v1/clips"): AUTH,
    ("GET", "/api/v1/clips/{clip_id}"): OWN_A,
    ("POST", "/api/v1/clips/{clip_id}/link"): OWN_A,
    ("GET", "/api/v1/media/{clip_id}"): ANY,  # a valid link of the viewer's: the signature is the credential
    ("POST", "/api/v1/clips/{clip_id}/flags"): {**OWN_A, "viewer_a": 201, "owner_a": 201},
    ("GET", "/api/v1/flags"): AUTH,
    ("GET", "/api/v1/consent"): OWNER,
    ("GET", "/api/v1/consent/notice"): OWNER,
    ("POST", "/api/v1/consent/{purpose}/grant"): OWNER,
    ("POST", "/api/v1/consent/{purpose}/withdraw"): OWNER,
    ("GET", "/api/v1/disclosures"): OWNER,
    ("GET", "/api/v1/export"): OWNER,
    ("GET", "/api/v1/models"): AUTH,
    ("GET", "/metrics"): AUTH,
    ("POST", "/api/v1/erase"): OWNER,
}
FLAG_BODIES = {"viewer_a": {"kind": "missed", "label": "glass_break"},
               "owner_a": {"kind": "missed", "label": "dog_bark"}}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record_api_hub(tmp_path_factory.mktemp("roles"))


@pytest.fixture
def api(recorded, tmp_path):
    hub, media = recorded
    # Bad and revoked tokens fail on every route here: the failure limit must not turn them into 429s.
    with served_hub(hub, tmp_path, media, api="auth_failures_per_minute = 10000") as served:
        yield served


def _schema_routes(api) -> list[tuple[str, str]]:
    schema = httpx.get(f"{api.url}/api/v1/openapi.json").json()
    return [(method.upper(), path) for path, ops in schema["paths"].items() for method in ops]


def _request(api, client: httpx.Client, role: str, method: str, path: str, notice: int, link: str) -> int:
    clip = api.clips["kitchen"]
    url = path.format(name="kitchen", clip_id=clip, purpose="misdetection-feedback")
    params: dict[str, str] = {}
    body = None
    if path == "/api/v1/media/{clip_id}":
        url = link
    elif path == "/api/v1/consent/notice":
        params = {"purpose": "misdetection-feedback"}
    elif path == "/api/v1/export":
        params = {"format": "zip"}
    elif path.endswith("/flags") and method == "POST":
        body = FLAG_BODIES.get(role, {"kind": "missed", "label": "scream"})
    elif path.endswith("/grant"):
        body = {"notice_version": notice}
    elif path == "/api/v1/erase":
        body = {"confirm": "ERASE"}
    return client.request(method, url, params=params or None, json=body, headers=api.headers(role)).status_code


def test_every_route_with_every_role(api):
    routes = _schema_routes(api)
    missing = [r for r in routes if r not in MATRIX]
    assert not missing, f"routes without an entry in the role matrix (default deny needs one): {missing}"
    assert not [r for r in MATRIX if r not in routes], "matrix entries for routes that no longer exist"
    with api.client("owner_a") as c:
        notice = c.get("/api/v1/consent/notice", params={"purpose": "misdetection-feedback"}).json()["version"]
    with api.client("viewer_a") as c:
        link = c.post(f"/api/v1/clips/{api.clips['kitchen']}/link").json()["url"]
    got: dict[tuple[str, str], dict[str, int]] = {}
    with httpx.Client(base_url=api.url, timeout=30.0) as client:
        for route in MATRIX:  # the matrix's order: erasure last
            got[route] = {role: _request(api, client, role, *route, notice, link) for role in ROLES}
    table = render(got)
    print("\n" + table)
    if os.environ.get("UPDATE_API_ROLES"):
        DOC.write_text(DOC_HEAD + table + "\n")
    wrong = {f"{m} {p}": {r: (got[(m, p)][r], want) for r, want in MATRIX[(m, p)].items() if got[(m, p)][r] != want}
             for m, p in MATRIX}
    assert not {k: v for k, v in wrong.items() if v}, json.dumps({k: v for k, v in wrong.items() if v}, indent=1)
    assert DOC.read_text() == DOC_HEAD + table + "\n", "docs/api-roles.md is stale: UPDATE_API_ROLES=1 pytest ..."


DOC_HEAD = """# API roles: who gets what

Every route of `/api/v1/openapi.json`, called by every kind of caller; the status each one gets. Generated by
`tests/test_api_roles.py` (which fails when a route has no row, or a status differs):
`UPDATE_API_ROLES=1 pytest tests/test_api_roles.py` rewrites this file.

Callers: no token, a bad token, a revoked token, a viewer of camera A, the owner of A, and the owner B of
another camera C. Path parameters name camera A's resources, so 404 for owner B means "as if it did not
exist". The media route is called with a valid link the viewer obtained (the link, not a token, is the
credential); expired or altered links get 403 (tests/test_api_links.py).

"""


def render(got: dict[tuple[str, str], dict[str, int]]) -> str:
    head = "| route | " + " | ".join(r.replace("_", " ") for r in ROLES) + " |"
    rule = "|---|" + "---|" * len(ROLES)
    rows = [f"| `{m} {p}` | " + " | ".join(str(got[(m, p)][r]) for r in ROLES) + " |" for m, p in got]
    return "\n".join([head, rule, *rows])


def test_no_reads_across_cameras_or_owners(api):
    """Every GET route, called by the viewer of A and by owner B, with A's and B's data present (clips, flags,
    consent): no response names the other side's cameras, owner, clips, flags or consent records."""
    with api.client("owner_a") as c:
        notice = c.get("/api/v1/consent/notice", params={"purpose": "misdetection-feedback"}).json()["version"]
        a_consent = c.post("/api/v1/consent/misdetection-feedback/grant", json={"notice_version": notice}).json()
        a_flag = c.post(f"/api/v1/clips/{api.clips['kitchen']}/flags", json={"kind": "missed", "label": "siren"})
    with api.client("owner_b") as c:
        b_consent = c.post("/api/v1/consent/misdetection-feedback/grant", json={"notice_version": notice}).json()
        b_clips = [x["clip_id"] for x in c.get("/api/v1/clips").json()["items"]]
        b_flag = c.post(f"/api/v1/clips/{b_clips[0]}/flags", json={"kind": "wrong", "label": "motion"})
    assert a_flag.status_code == b_flag.status_code == 201
    a_secrets = {"kitchen", "alice", api.clips["kitchen"], a_flag.json()["flag_id"], a_consent["consent_id"]}
    b_secrets = {"porch", "bob", *b_clips, b_flag.json()["flag_id"], b_consent["consent_id"]}
    for ro in ("viewer_a", "owner_b"):  # the live status of both cameras is known to the hub
        api.service.live.sample_frames("kitchen" if ro == "owner_b" else "porch", 0, now=1.0)
        api.service.live.sample_frames("kitchen" if ro == "owner_b" else "porch", 10, now=2.0)
    checked = 0
    for role, foreign in (("viewer_a", b_secrets), ("owner_b", a_secrets)):
        own = "porch" if role == "owner_b" else "kitchen"
        for method, path in _schema_routes(api):
            if method != "GET" or path in ("/api/v1/media/{clip_id}", "/api/v1/export"):
                continue
            url = path.format(name=own, clip_id=b_clips[0] if role == "owner_b" else api.clips["kitchen"])
            params = {"purpose": "misdetection-feedback"} if path.endswith("/notice") else {}
            with api.client(role) as c:
                r = c.get(url, params=params)
            assert r.status_code < 500, (role, path)
            leaked = [s for s in foreign if s in r.text]
            assert not leaked, f"{role} read {leaked} through GET {path}"
            checked += 1
    assert checked >= 20
