"""Real encoded test media: re-exports the package's sample generator (shared with the demo)."""

from edge_media.samples import MovingBox, VideoSpec, background, luma_frames, make_video

__all__ = ["MovingBox", "VideoSpec", "background", "luma_frames", "make_video"]
