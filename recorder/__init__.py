"""recorder: pre-roll packet ring, clip writer (remux to fragmented MP4), spool layout, clip sidecar.

Knows nothing of S3 or of the application: ``edge_media`` drives it and hands sidecars to ``uploader``.
"""

from recorder.audio_clip import AudioClipRecorder
from recorder.camera import CameraRecorder
from recorder.errors import RecorderError
from recorder.events import Event
from recorder.packets import MediaPacket
from recorder.ring import PreRollRing
from recorder.sidecar import ClipSidecar, new_clip_id
from recorder.spool import ClipMeta, Spool
from recorder.writer import ClipWriteError, ClipWriter, WrittenClip, remux_file

__all__ = [
    "AudioClipRecorder",
    "CameraRecorder",
    "ClipMeta",
    "ClipSidecar",
    "ClipWriteError",
    "ClipWriter",
    "Event",
    "MediaPacket",
    "PreRollRing",
    "RecorderError",
    "Spool",
    "WrittenClip",
    "new_clip_id",
    "remux_file",
]
