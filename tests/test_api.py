"""The hub's REST API over real HTTP (uvicorn on a free port) against a hub that recorded real clips."""

from __future__ import annotations

import pytest

from clip_hub import make_media, record_hub
from api_hub import served_hub


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("api-media"))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, media):
    return record_hub(tmp_path_factory.mktemp("api-hub"), media)


@pytest.fixture
def api(recorded, media, tmp_path):
    with served_hub(recorded, tmp_path, media) as served:
        yield served


def test_smoke(api):
    with api.client("owner_a") as c:
        r = c.get("/api/v1/me")
        print(r.json())
        assert r.status_code == 200
        print(c.get("/api/v1/cameras").json())
        print(c.get("/api/v1/events").json())
        print(c.get("/api/v1/clips").json())
