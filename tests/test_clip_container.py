"""Cameras whose codec MP4 cannot hold (old MPEG-4 part 2 CCTV): recorded in Matroska end to end,
or, where no container holds it, said once; ``check-config --probe`` tells the user beforehand."""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import pytest

from edge_media.cli.main import main
from edge_media.config import parse_config
from edge_media.service.hub import Service
from recorder import CameraRecorder, Event, Spool

from legacy_media import make_legacy_video
from media import MovingBox, VideoSpec, demux, make_source, read_clip
from record_child import record_then_kill

FPS, GOP = 12, 24
SPEC = VideoSpec(width=640, height=360, fps=FPS, gop=GOP, duration_s=10.0, noise_sigma=2.0,
                 boxes=[MovingBox(4.0, 6.0, size=(60, 120))])

CONFIG = """
[service]
data_dir = "{data}"
[recording]
pre_roll_s = 2.0
post_roll_s = 2.0
{cameras}
"""


def config_for(tmp_path: Path, cameras: dict[str, Path | str]):
    cams = "".join(f'[[cameras]]\nname = "{n}"\nrecord_url = "{u}"\n' for n, u in cameras.items())
    text = CONFIG.format(data=tmp_path / "data", cameras=cams)
    (tmp_path / "hub.toml").write_text(text)
    return parse_config(text, source="hub.toml")


@pytest.fixture(scope="module")
def cctv(tmp_path_factory) -> Path:
    return make_legacy_video(tmp_path_factory.mktemp("cctv") / "cctv.avi", SPEC, "msmpeg4")


@pytest.fixture(scope="module")
def wmv(tmp_path_factory) -> Path:
    return make_legacy_video(tmp_path_factory.mktemp("wmv") / "old.avi", SPEC, "wmv2")


def test_msmpeg4_camera_is_recorded_in_matroska_end_to_end(tmp_path: Path, cctv: Path) -> None:
    """Issue 9 defect 3: "'mp4' format does not support 'msmpeg4' codec" was logged three times and
    nothing was recorded; the clip is now Matroska, and its key and content type follow."""
    svc = Service(config_for(tmp_path, {"cctv": cctv}))
    svc.run()
    archive = io.BytesIO()
    svc.rights.export(svc.ctx.scope("owner"), archive)
    svc.close()
    with zipfile.ZipFile(archive) as zf:
        assert any(n.endswith(".mkv") for n in zf.namelist()), "the export carries the Matroska clip"
    objects = {i.key: i for i in svc.store.list_objects("clips/")}
    clips = [k for k in objects if not k.endswith(".json")]
    assert clips and all(k.endswith(".mkv") for k in clips), objects
    info = svc.store.stat_object(clips[0])
    assert info.content_type == "video/x-matroska"
    local = tmp_path / "clip.mkv"
    local.write_bytes(svc.store.get_object(clips[0]))
    clip = read_clip(local)
    assert clip["codec"] == "msmpeg4" and (clip["width"], clip["height"]) == (640, 360)
    assert clip["frames"] == len(clip["video"]) >= 4 * FPS, "every frame of the clip decodes"


def test_codec_no_container_holds_is_said_once(tmp_path: Path, wmv: Path, caplog) -> None:
    """Issue 9 defect 3: a camera that cannot be recorded says so once, clearly, not per event."""
    spool = Spool(tmp_path / "spool")
    clips: list = []
    rec = CameraRecorder("old", spool, pre_roll_s=1.0, ring_seconds=3.0, ring_max_bytes=1 << 26,
                         model_versions={}, on_clip=lambda *c: clips.append(c))
    caplog.set_level(logging.INFO)
    with demux(wmv) as (streams, packets):
        for _ in range(2):  # a reconnection must not repeat it
            rec.set_streams(streams)
            for mp in packets:
                rec.on_packet(mp)
                if mp.time >= 2.0 and not rec.recording:
                    rec.start(mp.time - rec.pre_roll_s, [Event("motion", 0.8, mp.time, mp.time)])
            rec.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    expected = ("camera old cannot be recorded: video codec wmv2 fits neither MP4 nor Matroska "
                "('matroska' format does not support 'wmv2' codec); events are still detected")
    assert errors == [expected]
    assert not rec.plan.recordable and clips == []
    assert not list(spool.tmp_dir.iterdir()) and not list(spool.ready_dir.iterdir())


def test_killed_matroska_clip_is_recovered(tmp_path: Path, cctv: Path) -> None:
    """Defects 3 + 7: a Matroska clip cut by SIGKILL keeps its complete clusters and its events."""
    spool_dir = tmp_path / "spool"
    record_then_kill(cctv, spool_dir, keyframes=3)
    spool = Spool(spool_dir)
    [path] = spool.recover()
    [(clip, side)] = spool.ready()
    assert clip == path and path.suffix == ".mkv" and side.container == "matroska" and side.file == path.name
    assert read_clip(path)["frames"] >= 2 * GOP
    assert [e.label for e in side.events] == ["motion", "scream"]


def test_check_config_probe_reports_each_camera(tmp_path: Path, cctv: Path, wmv: Path, capsys) -> None:
    """Issue 9 defect 3: ``check-config --probe`` opens each source and says what can be recorded."""
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 1000)
    good = make_source(tmp_path)
    config_for(tmp_path, {"porch": good, "cctv": cctv, "old": wmv, "gone": tmp_path / "missing.mp4",
                          "junk": junk, "door": "rtsp://admin:hunter2@127.0.0.1:1/live"})
    assert main(["check-config", str(tmp_path / "hub.toml"), "--probe", "--timeout", "2"]) == 2
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert lines["camera porch"] == ("camera porch: ok — video h264 640x360 15 fps, audio aac 48000 Hz; "
                                     "recorded as MP4")
    assert lines["camera cctv"] == ("camera cctv: ok — video msmpeg4 640x360 12 fps, no audio; "
                                    "recorded as Matroska (.mkv): its codecs do not fit MP4")
    assert "CANNOT BE RECORDED" in lines["camera old"] and "wmv2 fits neither MP4 nor Matroska" in lines["camera old"]
    assert "UNREACHABLE" in lines["camera gone"] and "No such file or directory" in lines["camera gone"]
    assert "UNREACHABLE" in lines["camera junk"]
    assert "UNREACHABLE (rtsp://***@127.0.0.1:1/live)" in lines["camera door"], "no password printed"
    assert "hunter2" not in "".join(lines.values())

    config_for(tmp_path, {"porch": good, "cctv": cctv})
    assert main(["check-config", str(tmp_path / "hub.toml"), "--probe"]) == 0
