"""A recorder in a child process, for power-cut tests: records one clip from a media file, says
``ready <keyframes>`` once it has written the given number of keyframes into the clip (and the
first packet after the last one), then waits on stdin to be killed.

    python record_child.py SOURCE SPOOL KEYFRAMES
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from recorder import CameraRecorder, Event, Spool

from media import demux

EVENT = Event(label="motion", score=0.7, start=0.5, last_seen=0.5)
UPDATED = Event(label="motion", score=0.9, start=0.5, last_seen=1.0)
SECOND = Event(label="scream", score=0.8, start=1.5, last_seen=1.5)


def record_then_kill(source: Path, spool_dir: Path, keyframes: int) -> None:
    """Run this script in a child process and SIGKILL it once it says it is ready."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, __file__, str(source), str(spool_dir), str(keyframes)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.strip() == f"ready {keyframes}", line
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL


def main(source: str, spool_dir: str, keyframes: int) -> None:
    rec = CameraRecorder("porch", Spool(spool_dir), pre_roll_s=1.0, ring_seconds=4.0, ring_max_bytes=1 << 26,
                         model_versions={"motion": "m1"}, on_clip=lambda *_: None)
    with demux(Path(source)) as (streams, packets):
        rec.set_streams(streams)
        seen, updated = 0, False
        for mp in packets:
            if mp.is_video and seen == keyframes:
                rec.on_packet(mp)  # the packet after the last keyframe: that keyframe's fragment is cut
                print(f"ready {seen}", flush=True)
                sys.stdin.read()  # killed here, mid-clip
                return
            rec.on_packet(mp)
            seen += mp.is_keyframe
            if mp.time >= EVENT.start and not rec.recording:
                rec.start(EVENT.start - rec.pre_roll_s, [EVENT])
            elif mp.time >= SECOND.start and not updated:  # events known while the clip is open
                rec.update(UPDATED)
                rec.start(SECOND.start - rec.pre_roll_s, [SECOND])
                updated = True
    print("source ended before the kill point", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
