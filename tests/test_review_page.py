"""The review page in a real browser: Debian's Chromium, headless, driven by Playwright (never a downloaded
browser), against a running hub (its Service started on looping real-time cameras, its API on a free port).

The owner logs in with a token, sees the timeline, plays a recorded clip (H.264 + AAC in fragmented MP4),
flags it as wrong and the flag is checked through the API, grants and withdraws consent on the consent page
(checked through the API), and logs out; a viewer sees only the camera they were given. The screenshot goes
to ``artifacts/review-page.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge_media.access import UserStore
from edge_media.api import ApiServer, create_app
from edge_media.config import load_config
from edge_media.service.hub import Service

from api_hub import api_media
from clip_hub import Hub, copy_hub, write_config

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
TIMEOUT_MS = 20_000

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                                "(apt-get install chromium; CI installs it)")


@dataclass
class LiveHub:
    service: Service
    server: ApiServer
    tokens: dict[str, str]  # user name -> token

    @property
    def url(self) -> str:
        return self.server.url

    def get(self, user: str, path: str) -> httpx.Response:
        with httpx.Client(base_url=self.url, timeout=30.0,
                          headers={"Authorization": f"Bearer {self.tokens[user]}"}) as client:
            return client.get(path)


OWNERS = {"kitchen": "alice", "porch": "alice", "garage": "bob"}


def record(folder: Path) -> tuple[Hub, dict[str, Path]]:
    """alice's kitchen hears a smoke alarm, her porch sees three visits; bob's garage (the porch's file) too."""
    (folder / "media").mkdir(parents=True)
    media = api_media(folder / "media")
    media["garage"] = media["porch"]
    hub = Hub(write_config(folder / "hub.toml", folder / "data", media, owners=OWNERS), folder / "data")
    service = Service(load_config(hub.config))
    service.run()
    service.close()
    return hub, media


def live_config(hub: Hub, media: dict[str, Path]) -> None:
    """The recorded hub's cameras again, now looping at real time: connected, with a frame rate and new events."""
    cams = "".join(f'[[cameras]]\nname = "{name}"\nowner = "{OWNERS[name]}"\nrecord_url = "{path}"\n'
                   "realtime = true\nloop = true\n" for name, path in media.items())
    hub.config.write_text(f'[service]\ndata_dir = "{hub.data}"\n[recording]\npre_roll_s = 1.0\npost_roll_s = 1.0\n'
                          f"[api]\nport = 0\n{cams}")


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory) -> Iterator[LiveHub]:
    folder = tmp_path_factory.mktemp("review")
    recorded, media = record(folder / "recorded")
    hub = copy_hub(recorded, folder / "live", media, owners=OWNERS)
    live_config(hub, media)
    service = Service(load_config(hub.config))
    users = UserStore(service.ctx.db)
    tokens = {"alice": users.add("alice", "owner")[1],  # owns kitchen and porch
              "pat": users.add("pat", "viewer", cameras=["porch"])[1]}  # sees the porch only
    service.start()
    server = ApiServer(create_app(service), "127.0.0.1", 0)
    server.start()
    try:
        yield LiveHub(service, server, tokens)
    finally:
        server.stop()
        service.stop(upload_drain_s=5)
        service.close()


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    pg.problems = problems
    yield pg
    context.close()


def log_in(page, hub: LiveHub, user: str) -> None:
    page.goto(hub.url + "/")  # the API's root redirects to the page
    assert page.url == hub.url + "/ui/"
    page.get_by_label("Access token").fill(hub.tokens[user])
    page.get_by_role("button", name="Log in").click()
    page.locator("#events .event").first.wait_for()


def wait_playing(page, selector: str) -> dict:
    """The media element has decoded data and its clock moves; returns what it reports."""
    page.wait_for_function(f"""() => {{
        const m = document.querySelector({selector!r});
        return m && (m.error || (m.readyState >= 2 && m.currentTime > 0.3 && !m.paused));
    }}""", timeout=TIMEOUT_MS)
    return page.evaluate(f"""() => {{
        const m = document.querySelector({selector!r});
        return {{ready: m.readyState, time: m.currentTime, error: m.error && m.error.code, paused: m.paused,
                 src: m.currentSrc, width: m.videoWidth || 0, duration: m.duration}};
    }}""")


def test_owner_reviews_plays_flags_and_consents(live_hub: LiveHub, page) -> None:
    log_in(page, live_hub, "alice")
    assert page.evaluate("sessionStorage.getItem('edge-media-token')") == live_hub.tokens["alice"]
    assert page.evaluate("localStorage.length") == 0
    assert live_hub.tokens["alice"] not in page.url
    # alice's cameras, live, and not bob's
    names = page.locator("#cameras .camera strong").all_inner_texts()
    assert names == ["kitchen", "porch"]
    page.wait_for_function("() => [...document.querySelectorAll('#cameras .camera-state')].every(c => "
                           "c.textContent.startsWith('connected'))")
    assert page.locator("#timeline .lane-name").all_inner_texts()[:2] == ["kitchen", "porch"]
    assert "garage" not in page.locator("main").inner_text()
    # the timeline has a mark per event; the list is newest first
    marks = page.locator("#timeline .mark")
    assert marks.count() >= 1
    starts = page.locator("#events .event time").evaluate_all("ts => ts.map(t => Date.parse(t.dateTime))")
    assert starts == sorted(starts, reverse=True)
    # filter by label
    page.get_by_label("Label").select_option("smoke_co_alarm")
    page.wait_for_function("() => [...document.querySelectorAll('#events .event-label')].every(e => "
                           "e.textContent === 'smoke co alarm')")
    # play the alarm's clip: H.264 + AAC, served through a signed link
    page.locator("#events .event").first.click()
    state = wait_playing(page, "#media-slot video")
    assert state["error"] is None and state["ready"] >= 2 and state["width"] == 320, state
    assert "/api/v1/media/" in state["src"] and "sig=" in state["src"]
    # "this was wrong": it was nothing
    page.get_by_label("What was it really?").select_option("nothing")
    page.locator("#flag-wrong").click()
    page.locator("#flag-result.ok").wait_for()
    assert "marked as wrong" in page.locator("#flag-result").inner_text()
    page.locator("#clip-flags li").first.wait_for()
    # "missed sound": the clip has audio, so any other sound of the model can be reported as missed
    missed = page.locator("#missed-label option").all_inner_texts()
    assert "glass break" in missed and "smoke co alarm" not in missed
    page.get_by_label("A sound the hub did not report").select_option("glass_break")
    page.locator("#flag-missed").click()
    page.locator("#flag-result.ok").filter(has_text="missed").wait_for()
    page.locator("#clip-flags li").nth(1).wait_for()  # the clip, read again, lists both
    flags = live_hub.get("alice", "/api/v1/flags").json()
    src = page.evaluate("document.querySelector('#media-slot video').currentSrc")
    assert sorted((f["kind"], f["label"], f["truth"]) for f in flags) == [("missed", "glass_break", None),
                                                                          ("wrong", "smoke_co_alarm", "nothing")]
    assert all(f"/media/{f['clip_id']}?" in src for f in flags)
    page.get_by_label("Label").select_option("")
    page.wait_for_function("() => document.querySelectorAll('#events .event').length >= 1")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-page.png"), full_page=True)

    # consent: grant under the notice shown, then withdraw, each after a confirmation
    page.get_by_role("button", name="Consent").click()
    purpose = page.locator("#purpose-misdetection-feedback")
    purpose.locator("pre.notice").wait_for()
    notice = live_hub.get("alice", "/api/v1/consent/notice?purpose=misdetection-feedback").json()
    assert purpose.locator("pre.notice").inner_text().strip() == notice["text"].strip()
    purpose.locator("button.grant").click()
    page.locator("#confirm[open]").wait_for()
    assert f"v{notice['version']}" in page.locator("#confirm-ok").inner_text()
    page.locator("#confirm-cancel").click()  # cancelling records nothing
    assert not _state(live_hub, "misdetection-feedback")["allowed"]
    purpose.locator("button.grant").click()
    page.locator("#confirm-ok").click()
    page.locator("#consent-result.ok").wait_for()
    granted = _state(live_hub, "misdetection-feedback")
    assert granted["allowed"] and granted["notice_version"] == notice["version"]
    page.locator("#purpose-misdetection-feedback [data-state='granted']").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review-consent.png"), full_page=True)
    purpose.locator("button.withdraw").click()
    page.locator("#confirm-ok").click()
    page.locator("#purpose-misdetection-feedback [data-state='withdrawn']").wait_for()
    assert _state(live_hub, "misdetection-feedback")["reason"] == "withdrawn"
    history = live_hub.get("alice", "/api/v1/consent").json()["history"]
    assert [(r["action"], r["method"], r["actor"]) for r in history] == [("grant", "api", "alice"),
                                                                         ("withdraw", "api", "alice")]
    assert page.locator("#history tr").count() == 2

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Access token").wait_for()
    assert page.evaluate("sessionStorage.length") == 0
    assert page.problems == []


def _state(hub: LiveHub, purpose: str) -> dict:
    consent = hub.get("alice", "/api/v1/consent").json()
    return next(s for s in consent["state"] if s["purpose"] == purpose)


def test_viewer_sees_only_their_camera_and_plays_it(live_hub: LiveHub, page) -> None:
    log_in(page, live_hub, "pat")
    assert page.locator("#cameras .camera strong").all_inner_texts() == ["porch"]
    cams = set(page.locator("#events .event-camera").all_inner_texts())
    assert cams == {"porch"}
    assert page.locator("#nav-consent").is_hidden()  # consent is the owner's
    page.locator("#events .event").first.click()
    state = wait_playing(page, "#media-slot video")
    assert state["error"] is None and state["ready"] >= 2, state
    assert page.locator("#missed-form").is_hidden()  # porch has no audio track: no sound can be missed
    assert page.problems == []


def test_bad_token_stays_on_the_login_form(live_hub: LiveHub, page) -> None:
    page.goto(live_hub.url + "/ui/")
    page.get_by_label("Access token").fill("not-a-token-of-this-hub")
    page.get_by_role("button", name="Log in").click()
    page.locator("#login-error").filter(has_text="not accepted").wait_for()
    assert page.locator("#events-view").is_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    headers = httpx.get(live_hub.url + "/ui/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"



def test_too_many_bad_tokens_says_so(live_hub: LiveHub, page) -> None:
    """The API answers 429 once an address has failed too often; the page says what that means. A second app on
    the same hub has its own limiter, so the other tests' address is not blocked."""
    server = ApiServer(create_app(live_hub.service), "127.0.0.1", 0)
    server.start()
    try:
        page.goto(server.url + "/ui/")
        limit = live_hub.service.config.api.auth_failures_per_minute
        for _ in range(limit + 1):
            page.get_by_label("Access token").fill("not-a-token-of-this-hub")
            page.get_by_role("button", name="Log in").click()
            page.wait_for_function("() => document.getElementById('login-error').textContent !== ''")
        assert "Too many attempts" in page.locator("#login-error").inner_text()
    finally:
        server.stop()


def test_api_docs_render_from_the_hub_alone(live_hub: LiveHub, page) -> None:
    """/docs works on a hub without internet: Swagger UI and its styles come from the hub (FastAPI's default page
    loads them from a CDN, and shows nothing offline). Every request the page makes stays on the hub."""
    hosts: set[str] = set()
    page.on("request", lambda req: hosts.add(httpx.URL(req.url).host))
    page.goto(live_hub.url + "/docs")
    page.wait_for_selector(".opblock", timeout=TIMEOUT_MS)
    operations = page.locator(".opblock").count()
    assert operations >= 20, f"only {operations} operations rendered"
    assert page.get_by_text("/api/v1/events", exact=True).count() >= 1
    assert hosts == {"127.0.0.1"}, hosts
    assert not page.problems
