"""The notification rules (pure) and the ``[notify]`` config: quiet hours, per source and label, field errors."""

from __future__ import annotations

import re

import pytest

from edge_media.config import ConfigError, dump_example, parse_config
from edge_media.config.notify import MqttConfig, NotifyConfig, SourceRule, WebhookConfig
from edge_media.notify.policy import NotifyPolicy, QuietHours

CAM = '[[cameras]]\nname = "porch"\nrecord_url = "/x.mp4"\n[[cameras]]\nname = "garden"\nrecord_url = "/y.mp4"\n'


def policy(**notify: object) -> NotifyPolicy:
    return NotifyPolicy.from_config(NotifyConfig.model_validate(notify))


def hm(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


@pytest.mark.parametrize(("ranges", "inside", "outside"), [
    (["22:00-07:00"], ["22:00", "23:59", "00:00", "06:59"], ["07:00", "12:00", "21:59"]),
    (["09:00-17:30"], ["09:00", "17:29"], ["08:59", "17:30", "23:00"]),
    (["00:00-00:01", "12:00-13:00"], ["00:00", "12:30"], ["00:01", "13:00"]),
    ([], [], ["00:00", "12:00", "23:59"]),
])
def test_quiet_hours_ranges(ranges: list[str], inside: list[str], outside: list[str]) -> None:
    quiet = QuietHours.parse(ranges)
    assert all(quiet.contains(hm(t)) for t in inside)
    assert not any(quiet.contains(hm(t)) for t in outside)


def test_quiet_hours_hold_back_motion_but_never_safety_sounds() -> None:
    p = policy(quiet_hours=["22:00-07:00"])
    night, day = hm("03:00"), hm("12:00")
    assert p.notifies("porch", "motion", minute=day)
    assert not p.notifies("porch", "motion", minute=night)
    assert not p.notifies("porch", "dog_bark", minute=night)
    for label in ("smoke_co_alarm", "glass_break", "scream", "baby_cry"):  # the default always_notify
        assert p.notifies("porch", label, minute=night), label


def test_always_notify_is_configurable() -> None:
    p = policy(quiet_hours=["00:00-23:59"], always_notify=["siren"])
    assert p.notifies("porch", "siren", minute=60)
    assert not p.notifies("porch", "smoke_co_alarm", minute=60)


def test_per_source_and_per_label_rules() -> None:
    p = policy(labels={"dog_bark": False},
               cameras={"porch": {"labels": ["motion", "smoke_co_alarm"]}, "garden": {"enabled": False}})
    assert p.notifies("porch", "motion", minute=0) and p.notifies("porch", "smoke_co_alarm", minute=0)
    assert not p.notifies("porch", "glass_break", minute=0)  # not in porch's list
    assert not p.notifies("garden", "motion", minute=0) and not p.notifies("garden", "smoke_co_alarm", minute=0)
    assert not p.notifies("hall", "dog_bark", minute=0)  # off everywhere
    assert p.notifies("hall", "glass_break", minute=0)  # no rule: everything


def test_explicit_off_wins_over_always_notify() -> None:
    """The owner switched the label off on purpose (a camera facing the TV); quiet hours never do that."""
    p = policy(cameras={"porch": {"labels": ["motion"]}}, quiet_hours=["22:00-07:00"])
    assert not p.notifies("porch", "smoke_co_alarm", minute=hm("12:00"))


def test_config_errors_name_the_field() -> None:
    cases = {
        '[notify]\nquiet_hours = ["22:00-7:00"]\n': r"notify\.quiet_hours\[0\]: must be 'HH:MM-HH:MM'",
        '[notify]\nquiet_hours = ["08:00-08:00"]\n': r"notify\.quiet_hours\[0\]: .* is empty",
        '[notify]\nlabels = { smoke_alarm = false }\n': r"notify\.labels\.smoke_alarm: unknown label 'smoke_alarm'",
        '[notify]\nalways_notify = ["glass"]\n': r"notify\.always_notify\[1\]|notify\.always_notify\[0\]: unknown",
        '[notify.cameras.prch]\nenabled = false\n': r"notify\.cameras\.prch: no camera or microphone named 'prch' "
                                                    r"\(did you mean 'porch'\?",
        '[notify.cameras.porch]\nlabels = ["motoin"]\n': r"notify\.cameras\.porch\.labels\[0\]: unknown label",
        '[notify.cameras.porch]\nenable = false\n': r"notify\.cameras\.porch\.enable: unknown key \(did you mean",
        '[notify.mqtt]\nport = 0\n': r"notify\.mqtt\.port",
        '[notify.mqtt]\ntopic_prefix = "a/#"\n': r"notify\.mqtt\.topic_prefix",
        '[notify.mqtt]\ntopic_prefix = "a/"\n': r"notify\.mqtt\.topic_prefix: must not start or end",
        '[notify.mqtt]\nqos = 3\n': r"notify\.mqtt\.qos",
        '[notify.mqtt]\npassword = "pw-xyz"\n': r"notify\.mqtt\.username: a password is set but no username",
        '[notify.mqtt]\nca_file = "/etc/ca.pem"\n': r"notify\.mqtt\.ca_file: only used with tls = true",
    }
    for text, pattern in cases.items():
        with pytest.raises(ConfigError) as err:
            parse_config(text + CAM)
        assert re.search(pattern, str(err.value)), (text, str(err.value))


def test_mqtt_password_is_secret() -> None:
    cfg = parse_config('[notify.mqtt]\nenabled = true\nusername = "hub"\npassword = "hunter2-xyz"\n')
    assert cfg.notify.mqtt.password.get_secret_value() == "hunter2-xyz"
    assert "hunter2-xyz" not in repr(cfg) and "hunter2-xyz" not in str(cfg.notify)


def test_example_documents_every_notify_field_and_loads_with_webhooks() -> None:
    example = dump_example()
    for model in (NotifyConfig, MqttConfig, WebhookConfig, SourceRule):
        for name, f in model.model_fields.items():
            pattern = rf"^(#   |# )?{name} = |^\[notify\.{name}[\].]|^# \[\[notify\.{name}\]\]"
            assert re.search(pattern, example, re.M), name
            assert f.description, f"{model.__name__}.{name}"
    # the commented webhook block is valid once uncommented
    start = example.index("# [[notify.webhooks]]")
    end = example.index("[[microphones]]")
    block = re.sub(r"^#   ", "", example[start:end].replace("# [[notify.webhooks]]", "[[notify.webhooks]]"), flags=re.M)
    cfg = parse_config(example[:start] + block + example[end:])
    assert len(cfg.notify.webhooks[0].key) == 24 and cfg.notify.quiet_hours == ["22:00-07:00"]
