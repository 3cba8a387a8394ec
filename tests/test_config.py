"""edge_media.config: the example loads, defaults are sane, and every bad input names its field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from edge_media.config import (
    ApiConfig,
    AudioConfig,
    CameraConfig,
    Config,
    ConfigError,
    EventsConfig,
    MicrophoneConfig,
    RecordingConfig,
    S3Config,
    ServiceConfig,
    StorageConfig,
    dump_example,
    load_config,
    parse_config,
)
from edge_media.config.models import ModelsConfig, ReleaseSourceConfig

CAM = '[[cameras]]\nname = "{name}"\nrecord_url = "{url}"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge-media.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"config error in {path}: ")
    assert "Traceback" not in message and "pydantic" not in message
    return message


def test_example_loads_and_resolves_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, dump_example()))
    assert [c.name for c in config.cameras] == ["front-door", "test-clip"]
    assert config.plans == {"basic": 7, "plus": 30}
    assert config.retention_days == 7
    assert config.spool_path == Path("/var/lib/edge-media/spool")
    assert config.store_path == Path("/var/lib/edge-media/store")
    front = config.camera("front-door")
    assert front.source_kind == "rtsp" and front.has_substream
    assert front.motion_masks[0][2] == [0.3, 0.2]
    assert config.camera("test-clip").source_kind == "file"


@pytest.mark.parametrize(
    "model", [ServiceConfig, RecordingConfig, EventsConfig, StorageConfig, S3Config, CameraConfig, AudioConfig,
              MicrophoneConfig, ApiConfig, ModelsConfig, ReleaseSourceConfig, Config]
)
def test_example_mentions_every_field(model: type[BaseModel]) -> None:
    # Keeps the documented example in step with the models.
    example = dump_example()
    for name in model.model_fields:
        pattern = rf"^#? ?{name} = |^\[{name}[\].]|^\[\[{name}\]\]|^#? ?\[[a-z]+\.{name}[\].]"
        assert re.search(pattern, example, re.M), name


def test_every_field_is_described() -> None:
    for model in (ServiceConfig, RecordingConfig, EventsConfig, StorageConfig, S3Config, CameraConfig, AudioConfig,
                  MicrophoneConfig, ApiConfig, ModelsConfig, ReleaseSourceConfig, Config):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"


def test_example_s3_block_loads_when_uncommented() -> None:
    text = re.sub(r"^# (\[storage\.s3\]|[a-z_]+ = )", r"\1", dump_example(), flags=re.M)
    text = text.replace('backend = "local"', 'backend = "s3"')
    s3 = parse_config(text).storage.s3
    assert s3 is not None and s3.bucket == "edge-media-clips" and s3.use_tls
    assert s3.credentials_file == Path("/etc/edge-media/s3.credentials")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.cameras == []
    assert config.service.log_level == "INFO" and config.service.detect_threads == 1
    assert (config.recording.pre_roll_s, config.recording.post_roll_s, config.recording.max_clip_s) == (5, 5, 300)
    assert config.recording.spool_quota_bytes == 2 * 1024**3
    assert config.recording.ring_max_bytes == 64 * 1024**2
    assert (config.events.min_motion_frames, config.events.merge_gap_s, config.events.cooldown_s) == (2, 0, 0)
    assert config.storage.backend == "local" and config.storage.plan == "basic" and config.storage.s3 is None
    assert config.plans == {"basic": 7}


def test_camera_defaults() -> None:
    config = parse_config(CAM.format(name="cam_1", url="/dev/video0"))
    cam = config.cameras[0]
    assert cam.source_kind == "v4l2" and not cam.has_substream
    assert (cam.detect_width, cam.detect_fps, cam.sensitivity) == (320, 5.0, 0.5)
    assert cam.motion_masks == [] and cam.enabled and not cam.realtime and not cam.loop


def test_paths_relative_and_absolute() -> None:
    config = parse_config('[service]\ndata_dir = "/d"\n[recording]\nspool_dir = "sp"\n[storage]\nlocal_dir = "/x/st"')
    assert config.spool_path == Path("/d/sp")
    assert config.store_path == Path("/x/st")


def test_s3_backend_and_tls_default() -> None:
    text = '[storage]\nbackend = "s3"\n[storage.s3]\nendpoint = "127.0.0.1:9000"\nbucket = "clips"\n'
    s3 = parse_config(text).storage.s3
    assert s3 is not None and not s3.use_tls and s3.part_size_mb == 16 and s3.create_bucket
    assert s3.access_key_env == "EDGE_MEDIA_S3_ACCESS_KEY" and s3.region == "us-east-1"
    remote = parse_config(text.replace("127.0.0.1", "s3.example.net")).storage.s3
    assert remote is not None and remote.use_tls
    forced = parse_config(text + "secure = false\n").storage.s3
    assert forced is not None and not forced.use_tls


def test_config_is_frozen() -> None:
    config = parse_config("")
    with pytest.raises(ValidationError):
        config.service.detect_threads = 4  # type: ignore[misc]


def test_out_of_range_names_field_and_value(tmp_path: Path) -> None:
    text = CAM.format(name="a", url="a.mp4") + CAM.format(name="b", url="b.mp4") + "detect_fps = -1\n"
    message = error_of(tmp_path, text)
    assert message.endswith("cameras[1].detect_fps: Input should be greater than or equal to 0.5 (got -1)")


def test_bad_type(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[recording]\npre_roll_s = "five"\n')
    assert "recording.pre_roll_s: Input should be a valid number (got 'five')" in message


def test_api_defaults_and_bad_values_name_the_field(tmp_path: Path) -> None:
    api = parse_config("").api
    assert (api.enabled, api.host, api.port, api.link_ttl_s, api.auth_failures_per_minute, api.public_url) == (
        True, "127.0.0.1", 8971, 300, 10, "")
    message = error_of(tmp_path, "[api]\nport = 70000\n")
    assert "api.port: Input should be less than or equal to 65535 (got 70000)" in message
    assert "api.link_ttl_s" in error_of(tmp_path, "[api]\nlink_ttl_s = 0\n")
    assert "api.public_url: must start with http://" in error_of(tmp_path, '[api]\npublic_url = "hub.local"\n')
    assert parse_config('[api]\npublic_url = "https://hub.local:8971/"\n').api.public_url == "https://hub.local:8971"


def test_unknown_key_is_named_with_suggestion(tmp_path: Path) -> None:
    message = error_of(tmp_path, CAM.format(name="a", url="a.mp4") + "detect_fsp = 5\n")
    assert "cameras[0].detect_fsp: unknown key" in message
    assert "did you mean 'detect_fps'" in message
    assert "unknown key" in error_of(tmp_path, "[servce]\n")


def test_duplicate_camera_name(tmp_path: Path) -> None:
    text = CAM.format(name="a", url="a.mp4") + CAM.format(name="a", url="b.mp4")
    assert "cameras[1].name: duplicate camera name 'a' (also cameras[0])" in error_of(tmp_path, text)


def test_unknown_plan(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[storage]\nplan = "gold"\n[plans]\nbasic = 7\nplus = 30\n')
    assert "storage.plan: unknown plan 'gold' (plans defined: basic, plus)" in message


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[service]\nlog_level = "INFO"\ndetect_threads = \n')
    assert "invalid TOML" in message and "line 3" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=rf"config error in {re.escape(str(path))}: file not found"):
        load_config(path)


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_missing_required_camera_field(tmp_path: Path) -> None:
    message = error_of(tmp_path, '[[cameras]]\nname = "a"\n')
    assert "cameras[0].record_url: required field is missing" in message


def test_max_clip_must_exceed_rolls(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[recording]\nmax_clip_s = 10\n")
    assert "recording.max_clip_s: must be greater than pre_roll_s + post_roll_s = 10" in message


def test_s3_backend_requires_endpoint_and_bucket(tmp_path: Path) -> None:
    assert "storage.s3: backend = 's3' needs" in error_of(tmp_path, '[storage]\nbackend = "s3"\n')
    message = error_of(tmp_path, '[storage]\nbackend = "s3"\n[storage.s3]\nendpoint = "h:9000"\n')
    assert "storage.s3.bucket: required when backend = 's3'" in message
    message = error_of(tmp_path, '[storage.s3]\nendpoint = "http://h:9000"\n')
    assert "storage.s3.endpoint: give host:port without a scheme" in message


def test_parked_s3_table_is_fine_with_local_backend() -> None:
    assert parse_config('[storage.s3]\nregion = "eu-west-1"\n').storage.backend == "local"


def test_several_problems_are_all_listed(tmp_path: Path) -> None:
    text = CAM.format(name="Front Door", url="ftp://x/y") + "detect_width = 321\nenabled = \"yes\"\n"
    text += "motion_masks = [[[0, 0], [1, 2], [0.5, 0.5]]]\n"
    message = error_of(tmp_path, text)
    assert "5 problems" in message
    for where in ("name", "record_url", "detect_width", "enabled", "motion_masks[0][1][1]"):
        assert f"cameras[0].{where}: " in message


def test_file_only_options_rejected_for_streams(tmp_path: Path) -> None:
    message = error_of(tmp_path, CAM.format(name="a", url="rtsp://h/s") + "loop = true\n")
    assert "cameras[0].loop: only applies to file sources, not rtsp" in message


def test_mask_needs_three_points(tmp_path: Path) -> None:
    message = error_of(tmp_path, CAM.format(name="a", url="a.mp4") + "motion_masks = [[[0, 0], [1, 1]]]\n")
    assert "cameras[0].motion_masks[0]: " in message and "at least 3" in message


def test_plan_days_bounds(tmp_path: Path) -> None:
    assert "plans.basic: Input should be greater than or equal to 1 (got 0)" in error_of(
        tmp_path, "[plans]\nbasic = 0\n"
    )


def test_log_level_case_insensitive() -> None:
    assert parse_config('[service]\nlog_level = "debug"\n').service.log_level == "DEBUG"


def test_owner_plans() -> None:
    text = '[plans]\nbasic = 7\nplus = 30\n[owners.alice]\nplan = "plus"\n[owners.bob]\n'
    config = parse_config(text)
    assert config.plan_for("alice") == "plus"
    assert config.plan_for("bob") == "basic" and config.plan_for("nobody") == "basic"


def test_owner_with_unknown_plan_is_named() -> None:
    with pytest.raises(ConfigError, match=r"owners\.alice\.plan: unknown plan 'gold'"):
        parse_config('[owners.alice]\nplan = "gold"\n', source="x.toml")


def test_microphone_pairing_names_the_field() -> None:
    cams = '[[cameras]]\nname = "door"\nrecord_url = "a.mp4"\n'
    with pytest.raises(ConfigError, match=r"microphones\[0\]\.camera: no camera named 'gate'"):
        parse_config(cams + '[[microphones]]\nname = "mic"\ncamera = "gate"\n')
    with pytest.raises(ConfigError, match=r"microphones\[0\]\.name: duplicate source name 'door'"):
        parse_config(cams + '[[microphones]]\nname = "door"\n')
    config = parse_config(cams + '[[microphones]]\nname = "mic"\ncamera = "door"\n')
    assert config.microphones[0].camera == "door" and config.audio.end_after_s == 3.0
