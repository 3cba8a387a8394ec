"""Standard Webhooks against a real local HTTP receiver (webhook_fixtures) that verifies every signature itself."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time

import pytest

from edge_media.config import ConfigError, parse_config
from edge_media.config.notify import NotifyConfig, WebhookConfig
from edge_media.notify import Notifications, NotifyPolicy, WebhookSender
from edge_media.service.bus import EventNotice, HubBus, StorageNotice, event_id

from webhook_fixtures import SECRET, Receiver, verify


def sender(url: str, **kw: object) -> WebhookSender:
    hook = WebhookSender(WebhookConfig.model_validate({"url": url, "secret": SECRET, "backoff_s": 0.05, **kw}))
    hook.start()
    return hook


def wait_until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_signed_delivery_verifies(receiver: Receiver) -> None:
    hook = sender(receiver.url)
    msg_id = hook.submit({"type": "storage", "problem": "quota_reached", "active": True})
    [hit] = receiver.wait_hits(1)
    hook.stop()
    assert hit.valid
    assert hit.headers["webhook-id"] == msg_id and hit.headers["content-type"] == "application/json"
    assert json.loads(hit.body) == {"type": "storage", "problem": "quota_reached", "active": True}
    assert hook.delivered == 1
    # the same check fails with another key (the verifier is not a rubber stamp)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert not verify(other, hit.headers, hit.body)


def test_503_twice_then_delivered_once_with_one_id(receiver: Receiver) -> None:
    receiver.answers = [(503, {}), (503, {})]
    hook = sender(receiver.url)
    hook.submit({"type": "new", "camera": "porch"})
    hits = receiver.wait_hits(3)
    wait_until(lambda: hook.delivered == 1)
    time.sleep(0.3)  # no fourth request after the 200
    hook.stop()
    assert len(receiver.hits) == 3
    assert len({h.headers["webhook-id"] for h in hits}) == 1  # receivers de-duplicate on it
    assert all(h.valid for h in hits) and hook.given_up == 0


def test_429_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.answers = [(429, {"Retry-After": "1"})]
    hook = sender(receiver.url, backoff_s=0.01)
    hook.submit({"type": "new"})
    first, second = receiver.wait_hits(2)
    hook.stop()
    assert second.at - first.at >= 0.9  # the receiver's 1 s, not the 0.01 s backoff


def test_gives_up_after_max_attempts_with_one_line(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.answers = [(500, {})] * 10
    hook = sender(receiver.url, max_attempts=3)
    hook.submit({"type": "new"})
    receiver.wait_hits(3)
    wait_until(lambda: hook.given_up == 1)
    hook.stop()
    assert len(receiver.hits) == 3
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "gave up" in lines[0] and "3 attempts" in lines[0]
    assert "tok-ABC123" not in caplog.text and SECRET not in caplog.text  # query tokens and secrets stay out


def test_stop_lets_due_messages_out_first(receiver: Receiver) -> None:
    """The last event end, queued just before the hub stops, still reaches the receiver."""
    hook = sender(receiver.url)
    for i in range(5):
        hook.submit({"type": "end", "n": i})
    hook.stop()
    assert [json.loads(h.body)["n"] for h in receiver.hits] == [0, 1, 2, 3, 4]


def test_client_error_is_not_retried(receiver: Receiver) -> None:
    receiver.answers = [(400, {})]
    hook = sender(receiver.url)
    hook.submit({"type": "new"})
    receiver.wait_hits(1)
    wait_until(lambda: hook.given_up == 1)
    time.sleep(0.3)
    hook.stop()
    assert len(receiver.hits) == 1


def test_unreachable_receiver_is_retried_then_given_up() -> None:
    from mqtt_fixtures import free_port

    hook = sender(f"http://127.0.0.1:{free_port()}/", max_attempts=2)  # nothing listens: connection refused
    hook.submit({"type": "new"})
    wait_until(lambda: hook.given_up == 1)
    hook.stop()
    assert hook.delivered == 0


def test_hanging_receiver_never_blocks_the_pipeline(receiver: Receiver) -> None:
    """The receiver holds its first request open; the bus keeps publishing and returning meanwhile."""
    receiver.hold = threading.Event()
    hook = WebhookSender(WebhookConfig.model_validate({"url": receiver.url, "secret": SECRET, "timeout_s": 30,
                                                       "queue_size": 20}))
    notes = Notifications(NotifyPolicy.from_config(NotifyConfig()), webhooks=[hook])
    bus = HubBus()
    bus.subscribe(notes.on_notice)
    notes.start()
    bus.publish(StorageNotice("quota_reached", True))
    receiver.wait_hits(1)  # the sender thread is now stuck in that request
    for i in range(100):
        bus.publish(EventNotice("porch", "motion", "start", event_id("porch", "motion", i), 0.9, float(i)))
    # The bus returned 100 times while the sender was stuck; its queue stayed bounded, dropping the oldest.
    wait_until(lambda: hook.dropped == 80)
    assert len(receiver.hits) == 1 and hook.pending == 20
    receiver.hold.set()
    receiver.wait_hits(21)
    notes.stop()
    starts = [json.loads(h.body)["start"] for h in receiver.hits[1:]]
    assert starts == [float(i) for i in range(80, 100)]  # the newest 20, in order


def test_secret_errors_name_the_field_without_the_value() -> None:
    base = '[[notify.webhooks]]\nurl = "https://example.net/h"\n'
    for secret, why in (("not-a-whsec-value", "must start with 'whsec_'"),
                        ("whsec_!!!notbase64!!!", "not valid base64"),
                        ("whsec_" + base64.b64encode(b"short").decode(), "24 to 64 bytes")):
        with pytest.raises(ConfigError) as err:
            parse_config(base + f'secret = "{secret}"\n')
        assert "notify.webhooks[0].secret" in str(err.value) and why in str(err.value)
        assert secret not in str(err.value)
    with pytest.raises(ConfigError, match=r"notify\.webhooks\[0\]\.url: must be an http"):
        parse_config('[[notify.webhooks]]\nurl = "ftp://x"\nsecret = "' + SECRET + '"\n')
    cfg = parse_config(base + f'secret = "{SECRET}"\n')
    assert SECRET not in repr(cfg) and SECRET not in str(cfg.notify.webhooks[0])
