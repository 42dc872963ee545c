"""What a video file is before it is decoded: its suffix, the pixel budget its frames
must fit, and the sizes frames are converted to.

Nothing here decodes: `datasets/videos.py` is the one module that opens videos (with
PyAV), and it checks every frame against `check_frame_size`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from utils.constants import VIDEO_SUFFIXES
from utils.errors import DataError

#: The draft-mode scales tried, as for JPEG frames: decode at 1/1, 1/2, 1/4, 1/8.
DRAFT_SCALES = (8, 4, 2)
#: The most pixels a video frame may have: 4096 x 4096 (16.8 megapixels, 50 MB as
#: RGB; 4K UHD fits). A few megabytes of video can declare far larger frames (eight
#: 8192 x 8192 MJPEG frames in 8.4 MB took the demo from 1.2 to 4.3 GB of memory), so
#: every reader refuses them: by the container's header before decoding, and by each
#: decoded frame's own size (a stream can change size after its header).
MAX_FRAME_PIXELS = 4096 * 4096


def is_video(path: Path) -> bool:
    """Whether `path` names a video file by its suffix (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def find_videos(folder: Path) -> list[Path]:
    """The video files directly in `folder` (by suffix), sorted by name."""
    return sorted(
        path for path in Path(folder).iterdir() if path.is_file() and is_video(path)
    )


def check_frame_size(path: Path, width: int, height: int) -> None:
    """Refuse frames of more than `MAX_FRAME_PIXELS` pixels.

    Raises:
        DataError: naming the file, its frame size and the budget.
    """
    if width * height > MAX_FRAME_PIXELS:
        side = math.isqrt(MAX_FRAME_PIXELS)
        raise DataError(
            f"{path}: its frames are {width}x{height} pixels, over the limit of "
            f"{MAX_FRAME_PIXELS / 1e6:.1f} megapixels a frame ({side}x{side}); scale "
            "the video down first, e.g. ffmpeg -i IN -vf scale=1920:-2 OUT"
        )


@dataclass(frozen=True)
class VideoMeta:
    """What the container says about a video's first video stream.

    Attributes:
        frames: the number of frames.
        fps: the average frame rate, or None when the container has none.
        width: the frame width in pixels.
        height: the frame height in pixels.
        counted: whether `frames` was counted from the packets (the container does
            not record it).
    """

    frames: int
    fps: float | None
    width: int
    height: int
    counted: bool = False


@dataclass(frozen=True)
class VideoInfo:
    """What a `datasets.videos.VideoReader` yields: the codec, and the rate and size
    of its frames.

    Attributes:
        codec: the video stream's codec name (e.g. `mpeg4`, `h264`).
        fps: frame rate of the yielded frames (the target rate when resampling).
        width: width of the yielded frames in pixels.
        height: height of the yielded frames in pixels.
        source_fps: the stream's own (average) frame rate.
        source_width: the stream's frame width.
        source_height: the stream's frame height.
    """

    codec: str
    fps: float
    width: int
    height: int
    source_fps: float
    source_width: int
    source_height: int


def draft_size(width: int, height: int, size_hint: int | None) -> tuple[int, int]:
    """The frame size to convert to: shrunk by 2, 4 or 8 while the shorter side stays
    at least `size_hint` (as JPEG draft mode decodes frames); None keeps the size."""
    if size_hint is not None:
        for scale in DRAFT_SCALES:
            if min(width, height) // scale >= size_hint:
                return max(1, width // scale), max(1, height // scale)
    return width, height


def fitted_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size with the longest side at most `max_side`, keeping the aspect ratio.

    Frames are only shrunk, never enlarged; `None` keeps the size.
    """
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))
