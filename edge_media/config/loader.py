"""Read the TOML file, validate it, and turn every failure into one human-readable ConfigError."""

from __future__ import annotations

import tomllib
import typing
from collections.abc import Iterable
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import EXIT_USAGE, EdgeMediaError
from ._base import FieldCheckError
from .root import Config


class ConfigError(EdgeMediaError):
    """A configuration file that cannot be used. ``str()`` is the whole message for the operator:
    it names the file and every bad field with its location; ``problems`` holds one line each."""

    exit_code = EXIT_USAGE

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        if len(problems) == 1:
            message = f"config error in {source}: {problems[0]}"
        else:
            lines = "".join(f"\n  - {p}" for p in problems)
            message = f"config error in {source}: {len(problems)} problems:{lines}"
        super().__init__(message)


def load_config(path: str | Path) -> Config:
    """Load and validate the TOML config at ``path``; raises ConfigError, never anything else."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(source, ["is a directory, not a file"]) from None
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not valid UTF-8 (byte {exc.start})"]) from None
    return parse_config(text, source=source)


def parse_config(text: str, *, source: str = "<string>") -> Config:
    """Validate TOML ``text``; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line L, column C)".
        raise ConfigError(source, [f"invalid TOML: {exc}"]) from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        # `from None`: the operator needs the message, not pydantic's traceback.
        raise ConfigError(source, describe_errors(exc.errors())) from None


def dump_example() -> str:
    """A commented example config that loads cleanly (README, ``edge-media --example-config``)."""
    return EXAMPLE_TOML


def describe_errors(errors: Iterable[Any]) -> list[str]:
    """One ``location: message`` line per pydantic error."""
    return [_describe(err) for err in errors]


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, FieldCheckError):
        loc, message = loc + cause.loc, cause.message
    elif isinstance(cause, Exception):
        message = str(cause)  # our own field validators: drop pydantic's "Value error, " prefix
    elif err["type"] == "extra_forbidden":
        message = _unknown_key(loc)
    elif err["type"] == "missing":
        message = "required field is missing"
    elif err["type"] == "path_type":
        message = f"Input should be a path string (got {_show(err['input'])})"
    else:
        message = f"{err['msg']} (got {_show(err['input'])})"
    where = format_loc(loc)
    return f"{where}: {message}" if where else message


def format_loc(loc: tuple[Any, ...]) -> str:
    """``("cameras", 1, "detect_fps")`` -> ``cameras[1].detect_fps``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += f".{part}" if out else str(part)
    return out


def _unknown_key(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    close = get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key ({hint}allowed: {', '.join(allowed)})"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    # Walk the model tree along the string parts of loc (list indices don't change the model).
    model: type[BaseModel] | None = Config
    keyed = False  # the field before was a dict: this part is one of its keys ([notify.cameras.porch])
    for part in loc:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        if model is None or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        keyed = typing.get_origin(annotation) is dict
        model = _find_model(annotation)
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Kept next to the loader so tests can assert it loads and mentions every field of every model.
EXAMPLE_TOML = """\
# edge-media configuration (TOML). Every key is optional except each camera's name and record_url.

[service]
data_dir = "/var/lib/edge-media"   # everything durable lives below it by default
log_level = "INFO"                 # DEBUG, INFO, WARNING or ERROR
log_format = "text"                # "text", or "json": one JSON object per line (for log shippers)
detect_threads = 1                 # onnxruntime threads for the shared detector (1..16)

[recording]
pre_roll_s = 5.0                   # seconds kept from before the trigger (0..60)
post_roll_s = 5.0                  # event ends after this long without motion; also the clip's tail (0..300)
max_clip_s = 300.0                 # longer events are split (5..3600, > pre_roll_s + post_roll_s)
spool_dir = ""                     # empty: <data_dir>/spool; relative paths are below data_dir
spool_quota_bytes = 2147483648     # spool byte quota before eviction (>= 16 MiB)
ring_max_bytes = 67108864          # per-camera pre-roll bound in bytes (>= 1 MiB)
spool_full_policy = "drop-oldest"  # over quota: "drop-oldest" unsent clips, or "stop-recording"

[events]
min_motion_frames = 2              # motion must persist this many detect frames to start an event (1..50)
merge_gap_s = 0.0                  # an event starting within this gap after one ended is merged into it (0..120)
cooldown_s = 0.0                   # no new event for this long after one ended (0..3600)

[storage]
backend = "local"                  # "local" or "s3"
local_dir = ""                     # empty: <data_dir>/store
plan = "basic"                     # the default service plan: a key of [plans]
keep_local_days = 0.0              # keep local copies of uploaded clips this long (0: delete after upload)
sweep_interval_s = 60.0            # expired clips are deleted within this many seconds of their deadline
reconcile_every = 60               # every N sweeps also list the bucket for expired objects (0: never)
lifecycle_grace_days = 1           # S3 lifecycle backstop: expire this many days after the plan

# Only used when backend = "s3"; endpoint and bucket are then required.
# [storage.s3]
# endpoint = "s3.example.net:443"  # host:port, no scheme
# region = "us-east-1"
# bucket = "edge-media-clips"
# secure = true                    # omit: TLS unless the endpoint is loopback
# access_key_env = "EDGE_MEDIA_S3_ACCESS_KEY"   # credentials come from these environment variables
# secret_key_env = "EDGE_MEDIA_S3_SECRET_KEY"
# credentials_file = "/etc/edge-media/s3.credentials"   # or from this file
# create_bucket = true
# part_size_mb = 16                # multipart part size (5..512)

[plans]                            # plan name -> retention in days (1..3650)
basic = 7
plus = 30

[audio]                            # audio events on camera audio tracks and microphones
enabled = true
# model = "/etc/edge-media/yamnet.onnx"         # a YAMNet-style ONNX instead of the shipped model
# class_map = "/etc/edge-media/yamnet_class_map.csv"
hop_s = 0.4875                     # seconds between window starts
silence_dbfs = -60.0               # quieter windows skip inference
min_duration_s = { glass_break = 0.0 }   # heard this long to start an event (s); the model's per label otherwise
hysteresis = 0.1                   # an event stays on down to threshold - hysteresis
end_after_s = 3.0                  # ended after this long not heard
thresholds = { smoke_co_alarm = 0.5 }   # per-label overrides of the model's thresholds
verify = ["smoke_co_alarm"]        # labels confirmed by their pattern (T3/T4 alarm; "siren": sweep) before an event
candidate_thresholds = { smoke_co_alarm = 0.2 }  # score at which a window of a verified label is checked

[feedback]                         # anonymised audio to the model partner, only with the owner's consent
enabled = true
daily_byte_cap = 50000000          # product improvement: most FLAC bytes queued per UTC day
send_interval_s = 30.0             # retry interval of the sender (it is also woken when a sample is queued)

[feedback.partner]                 # the partner's feedback store, separate from the clip store
backend = 'local'                  # 'local' (<data_dir>/partner) or 's3' with a [feedback.partner.s3] table
#   [feedback.partner.s3]          # exactly as [storage.s3], its own bucket and credentials
#   endpoint = "feedback.partner.example:443"
#   bucket = "audio-feedback"
#   access_key_env = "EDGE_MEDIA_PARTNER_ACCESS_KEY"
#   secret_key_env = "EDGE_MEDIA_PARTNER_SECRET_KEY"

[notify]                           # "something is not OK": MQTT / Home Assistant and webhooks
storage_down_after_s = 300.0       # the store unreachable this long is notified (quota, failed uploads: at once)
labels = { dog_bark = false }      # per label on/off: "motion" or an audio label
quiet_hours = ["22:00-07:00"]      # local time: only always_notify labels are notified (MQTT states stay accurate)
always_notify = ["smoke_co_alarm", "glass_break", "scream", "baby_cry"]   # even in quiet hours

[notify.cameras.front-door]        # per camera (or microphone) rules; the name must be a source's
enabled = true
labels = ["motion", "smoke_co_alarm", "glass_break"]   # only these labels; empty: all

[notify.mqtt]
enabled = false
host = "localhost"
port = 1883
username = ""                      # empty: anonymous
password = ""                      # never logged
client_id = ""                     # empty: edge-media-<hub id>, stable across restarts
topic_prefix = "edge-media"        # <prefix>/available, <prefix>/<camera>/motion, <prefix>/events, ...
tls = false
#   ca_file = "/etc/edge-media/mqtt-ca.pem"   # with tls: verify the broker against this CA (else the system's)
discovery = true                   # Home Assistant MQTT discovery
discovery_prefix = "homeassistant"
ha_status_topic = "homeassistant/status"   # discovery is re-announced when Home Assistant says 'online'
qos = 1
queue_size = 1000                  # notices waiting for the broker; the oldest are dropped beyond this

# [[notify.webhooks]]              # Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)
#   url = "https://example.net/hooks/edge-media"
#   secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"   # whsec_ + base64 key (24..64 bytes)
#   timeout_s = 5.0
#   max_attempts = 8               # retried with exponential backoff + jitter on errors, 5xx and 429
#   backoff_s = 1.0                # first retry delay; doubles per attempt, capped at 10 min
#   queue_size = 1000

[api]                              # the REST API and review page, served by `edge-media run`
enabled = true
host = "127.0.0.1"                 # loopback by default; "0.0.0.0" to serve the whole network
port = 8971                        # 0: any free port (logged at start)
link_ttl_s = 300                   # signed clip links expire after this many seconds (10..86400)
auth_failures_per_minute = 10      # failed logins per client address per minute before 429
public_url = ""                    # base URL clip links are built on; empty: relative links

[models]                           # signed audio-model releases: shadow run, promotion, automatic rollback
public_keys = []                   # Ed25519 public keys (base64) that may sign releases; none: nothing installs
dir = ""                           # installed releases; empty: <data_dir>/models
check_interval_s = 21600.0         # how often the service looks for a new release (0: only `edge-media models`)
auto_install = true                # a release found by a check is installed, smoke-tested and run in shadow
shadow_s = 86400.0                 # a candidate runs beside the active model this long ...
shadow_min_windows = 500           # ... and scores at least this many loud windows before promotion
max_event_ratio = 1.25             # promoted only if its events <= ratio x the active model's + event_slack
event_slack = 2                    # (and its flag-confirmed false-alarm rate is not higher)
watch_s = 259200.0                 # after promotion: errors or flags roll back within this time
rollback_min_flags = 3             # flags needed before the flag rate can roll back ...
rollback_flag_rate_factor = 2.0    # ... when it exceeds the previous model's x factor ...
rollback_flag_rate_margin = 0.05   # ... and the previous model's + margin (flags per event)
keep_versions = 3                  # installed versions kept on disk for rollback

[models.source]                    # where releases are published (see docs/model-releases.md)
backend = "none"                   # "none", "local" (a directory) or "s3" with a [models.source.s3] table
prefix = "releases"
local_dir = ""
#   [models.source.s3]             # exactly as [storage.s3]
#   endpoint = "models.example:443"
#   bucket = "edge-media-models"

[[microphones]]
name = "hall-mic"                  # unique slug (not a camera's name)
device = ""                        # sounddevice name or index; empty: default input
block_ms = 100
camera = "front-door"              # paired camera records on an audio event; empty: audio-only clips
owner = "owner"
enabled = false

[owners.owner]                     # owner id -> settings; owners not listed use storage.plan
plan = "plus"

[[cameras]]
name = "front-door"                # unique lower-case slug: a-z 0-9 _ -
owner = "owner"                    # whose recordings these are (plan, export, erasure)
record_url = "rtsp://192.0.2.10/main"   # file path, rtsp://, rtsps://, http(s):// or /dev/videoN
detect_url = "rtsp://192.0.2.10/sub"    # optional substream; empty: decode the record stream
detect_width = 320                 # detect frame width (64..1280, even)
detect_fps = 5.0                   # detect frames per second (0.5..30)
sensitivity = 0.5                  # 0..1, higher is more sensitive
# polygons to IGNORE, [x, y] normalised to 0..1, at least 3 points each (here: a tree top left)
motion_masks = [ [[0.0, 0.0], [0.3, 0.0], [0.3, 0.2], [0.0, 0.2]] ]
audio_events = true                # detect audio events on this camera's audio track
enabled = true

[[cameras]]
name = "test-clip"                 # a file source, handy for trying the pipeline without a camera
record_url = "/var/lib/edge-media/samples/driveway.mp4"
enabled = false
realtime = true                    # pace file sources at real time (files only)
loop = true                        # replay file sources forever (files only)
"""
