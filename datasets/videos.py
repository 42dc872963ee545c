"""Every video signpipe reads is opened here, with PyAV (FFmpeg, bundled with its
wheel): training's samples, predict.py's and the demo's inputs, the offline tools.

`probe_video` reads the container header (the stream's frame count and rate); when
the container does not record a frame count (some `.webm`, `.mkv`, `.avi`) the
packets are counted instead, which reads the file but decodes nothing.

`read_frames` maps frame indices (0-based, in presentation order) to packet
timestamps by demuxing the file once (no decoding; the table is kept per process),
then for each wanted frame seeks to the key frame at or before it, unless the frame
lies ahead in the group of pictures already being decoded, and decodes forward to
it. A clip of 16 frames spread over a 200-frame video thus decodes about as many
frames as its groups of pictures hold up to the sampled frames, not all 200.

`encode_h264` writes frames as an MP4 (the sample dataset and the benchmarks' videos).
`read_all_frames` decodes a run of frames in one pass (the frame cache,
`--check_data`); `VideoReader` (and `decode_video` over it) streams every frame,
optionally resampled to another frame rate by the frames' timestamps and shrunk to a
longest side (the offline tools, landmark extraction, predict.py's `all_frames`).

Every problem (an unreadable file, no video stream, corrupt data, a frame past the
end, frames over the pixel budget `datasets.video_files.MAX_FRAME_PIXELS`, by the
header and by each decoded frame) is a `DataError` naming the file.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

import av
import numpy as np

# FFmpegError is made at import time by the compiled module; pylint cannot see it.
from av.error import FFmpegError  # pylint: disable=no-name-in-module

from datasets.video_files import (
    VideoInfo,
    VideoMeta,
    check_frame_size,
    draft_size,
    fitted_size,
)
from utils.errors import DataError

#: Frame tables kept per process (a table is a few bytes per frame).
TABLE_CACHE_SIZE = 4096
_DECODE_ERRORS = (FFmpegError, OSError, ValueError, EOFError)
#: How much of a file FFmpeg reads to learn its streams on the first try (bytes).
FAST_PROBE = {"probesize": "5000"}


def _reason(error: Exception) -> str:
    """An FFmpeg error's text without the errno and file name it repeats."""
    return getattr(error, "strerror", None) or str(error)


def _rate(stream: Any) -> Fraction | None:
    """The stream's frame rate as an exact fraction, if the container knows it."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate.numerator, rate.denominator)
    return None


def _usable(stream: Any) -> bool:
    """Whether the container told the stream's size and rate."""
    context = stream.codec_context
    return bool(context.width and context.height and _rate(stream))


def _open(path: Path) -> tuple[Any, Any]:
    """The open container and its first video stream; `DataError` naming the file
    (also for frames over `MAX_FRAME_PIXELS` by the header).

    The container is first opened reading only its first bytes (`probesize`): for
    MP4, MOV, Matroska and WebM the header says everything, and FFmpeg's default
    probing would decode pictures to guess it (about 100 ms for a 720p H.264 file,
    ten times the rest). Where that leaves the size or rate unknown (streams without
    a header), it is opened again with the default probing.
    """
    for options in (FAST_PROBE, {}):
        try:
            container = av.open(str(path), options=options)
        except _DECODE_ERRORS as error:
            if options:
                continue
            raise DataError(f"{path}: cannot open video ({_reason(error)})") from None
        if not container.streams.video:
            container.close()
            if options:
                continue
            raise DataError(f"{path}: no video stream")
        stream = container.streams.video[0]
        if _usable(stream) or not options:
            context = stream.codec_context
            try:
                check_frame_size(path, context.width, context.height)
            except DataError:
                container.close()
                raise
            return container, stream
        container.close()
    raise AssertionError("unreachable: the default probing returns or raises")


def _packets(container: Any, stream: Any, path: Path) -> Iterator[Any]:
    """The stream's packets that carry data (demuxed, not decoded)."""
    try:
        for packet in container.demux(stream):
            if packet.size:
                yield packet
    except _DECODE_ERRORS as error:
        raise DataError(f"{path}: cannot read video ({_reason(error)})") from None


def probe_video(path: Path) -> VideoMeta:
    """The frame count, rate and size of a video, without decoding it.

    Raises:
        DataError: naming the file, when it is not a readable video, holds no
            frames or its frames are over `MAX_FRAME_PIXELS`.
    """
    path = Path(path)
    container, stream = _open(path)
    with container:
        rate = _rate(stream)
        context = stream.codec_context
        frames, counted = stream.frames, False
        if not frames:
            frames = sum(1 for _ in _packets(container, stream, path))
            counted = True
        if not frames:
            raise DataError(f"{path}: the video has no frames")
        if not context.width or not context.height:
            raise DataError(f"{path}: the video stream has no frame size")
        return VideoMeta(
            frames=int(frames),
            fps=float(rate) if rate else None,
            width=context.width,
            height=context.height,
            counted=counted,
        )


@dataclass(frozen=True)
class FrameTable:
    """Where each frame of a video is, from its packets (no decoding).

    Attributes:
        pts: each frame's presentation timestamp, in frame (presentation) order;
            None when some packets have none (then frames are found by counting).
        keys: the timestamps of the key frames, ascending.
        frames: the number of frames.
    """

    pts: tuple[int, ...] | None
    keys: tuple[int, ...]
    frames: int

    def seek_point(self, index: int) -> int | None:
        """The timestamp of the last key frame at or before frame `index`."""
        if self.pts is None:
            return None
        at = bisect.bisect_right(self.keys, self.pts[index]) - 1
        return self.keys[at] if at >= 0 else None


def _build_table(path: Path) -> FrameTable:
    container, stream = _open(path)
    with container:
        times, keys, timed = [], [], True
        for packet in _packets(container, stream, path):
            if packet.pts is None:
                timed = False
            elif packet.is_keyframe:
                keys.append(packet.pts)
            times.append(packet.pts)
    if not times:
        raise DataError(f"{path}: the video has no frames")
    return FrameTable(
        pts=tuple(sorted(times)) if timed else None,
        keys=tuple(sorted(keys)),
        frames=len(times),
    )


_TABLES: OrderedDict[tuple, FrameTable] = OrderedDict()


def frame_table(path: Path) -> FrameTable:
    """The video's frame table, kept per process (a changed file is read again)."""
    path = Path(path)
    try:
        stat = os.stat(path)
    except OSError as error:
        raise DataError(f"{path}: cannot read video ({error.strerror})") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    table = _TABLES.get(key)
    if table is None:
        table = _TABLES[key] = _build_table(path)
        if len(_TABLES) > TABLE_CACHE_SIZE:
            _TABLES.popitem(last=False)
    else:
        _TABLES.move_to_end(key)
    return table


def _to_rgb(frame: Any, size_hint: int | None, path: Path) -> np.ndarray:
    """A decoded frame as a `(H, W, 3)` uint8 array, drafted to about `size_hint`;
    `DataError` for a frame over `MAX_FRAME_PIXELS` (whatever the header said)."""
    check_frame_size(path, frame.width, frame.height)
    width, height = draft_size(frame.width, frame.height, size_hint)
    if (width, height) == (frame.width, frame.height):
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(
        format="rgb24", width=width, height=height, interpolation="AREA"
    )


@dataclass
class DecodedFrames:
    """What `read_frames` returns.

    Attributes:
        images: the RGB uint8 `(H, W, 3)` frames, in the order asked for.
        decoded: how many frames were decoded to get them (seeking skips the rest).
        seeks: how many times the decoder was moved to a key frame.
    """

    images: list[np.ndarray]
    decoded: int
    seeks: int


def _decode_sequentially(
    container: Any, stream: Any, wanted: list[int], size_hint: int | None, path: Path
) -> tuple[dict[int, np.ndarray], int]:
    """Frames by counting from the start (for videos whose packets lack timestamps)."""
    found: dict[int, np.ndarray] = {}
    decoded = 0
    for decoded, frame in enumerate(container.decode(stream), start=1):
        if decoded - 1 in wanted:
            found[decoded - 1] = _to_rgb(frame, size_hint, path)
        if decoded > wanted[-1]:
            break
    return found, decoded


def _skips_ahead(table: FrameTable, position: int, key: int | None) -> bool:
    """Whether the key frame `key` lies beyond the frame the decoder gives after the
    one at `position` (then seeking skips frames; else decoding on reaches it)."""
    if key is None:
        return False
    after = bisect.bisect_right(table.pts, position)
    return after < len(table.pts) and key > table.pts[after]


def _decode_seeking(
    container: Any,
    stream: Any,
    table: FrameTable,
    wanted: list[int],
    size_hint: int | None,
    path: Path,
) -> tuple[dict[int, np.ndarray], int, int]:
    """Frames by seeking to the key frame before each wanted frame (when it is not
    reached by decoding on from the current position)."""
    found: dict[int, np.ndarray] = {}
    decoded = seeks = 0
    frames: Iterator[Any] | None = None
    position: int | None = None  # pts of the last frame decoded
    for index in wanted:
        target = table.pts[index]
        key = table.seek_point(index)
        if frames is None and (key is None or key == table.keys[0]):
            frames = container.decode(stream)  # from the start: no seek needed
        elif (
            frames is None
            or position is None
            or position >= target
            or _skips_ahead(table, position, key)
        ):
            container.seek(key if key is not None else 0, stream=stream)
            frames = container.decode(stream)
            seeks += 1
        for frame in frames:
            decoded += 1
            position = frame.pts
            if frame.pts is not None and frame.pts >= target:
                found[index] = _to_rgb(frame, size_hint, path)
                break
        else:
            break  # the stream ended before the frame: reported by the caller
    return found, decoded, seeks


def read_frames(
    path: Path, indices: list[int], *, size_hint: int | None = None
) -> DecodedFrames:
    """The video's frames at `indices` (0-based, presentation order, any order).

    Args:
        path: the video file.
        indices: the frames wanted (repeats allowed).
        size_hint: convert frames at about this size (halved while the shorter side
            stays at least this, as JPEG draft mode); None keeps the full size.

    Raises:
        DataError: naming the file, when it cannot be read or decoded, a frame
            past its end is asked for or its frames are over `MAX_FRAME_PIXELS`.
    """
    path = Path(path)
    wanted = sorted(set(indices))
    if not wanted:
        return DecodedFrames([], 0, 0)
    table = frame_table(path)
    if wanted[0] < 0 or wanted[-1] >= table.frames:
        raise DataError(
            f"{path}: frame {wanted[-1] if wanted[-1] >= 0 else wanted[0]} asked for, "
            f"but the video has {table.frames} frames (0..{table.frames - 1})"
        )
    container, stream = _open(path)
    seeks = 0
    try:
        with container:
            if table.pts is None:
                found, decoded = _decode_sequentially(
                    container, stream, wanted, size_hint, path
                )
            else:
                found, decoded, seeks = _decode_seeking(
                    container, stream, table, wanted, size_hint, path
                )
    except _DECODE_ERRORS as error:
        raise DataError(f"{path}: cannot decode video ({_reason(error)})") from None
    missing = [index for index in wanted if index not in found]
    if missing:
        raise DataError(
            f"{path}: cannot decode frame {missing[0]} (the stream ends or is "
            f"corrupt before it; the container lists {table.frames} frames)"
        )
    return DecodedFrames([found[index] for index in indices], decoded, seeks)


def read_all_frames(
    path: Path, start: int = 0, count: int | None = None, size_hint: int | None = None
) -> Iterator[np.ndarray]:
    """Frames `start .. start + count - 1` (all to the end when `count` is None),
    decoded in one pass; for the frame cache and `--check_data`.

    Raises:
        DataError: naming the file, when it cannot be decoded, ends early or its
            frames are over `MAX_FRAME_PIXELS`.
    """
    path = Path(path)
    container, stream = _open(path)
    index = -1
    try:
        with container:
            for index, frame in enumerate(container.decode(stream)):
                if count is not None and index >= start + count:
                    return
                if index >= start:
                    yield _to_rgb(frame, size_hint, path)
    except _DECODE_ERRORS as error:
        raise DataError(
            f"{path}: cannot decode frame {index + 1} ({_reason(error)})"
        ) from None
    if index < 0:
        raise DataError(f"{path}: no frames could be decoded")
    if count is not None and index + 1 < start + count:
        raise DataError(
            f"{path}: has {index + 1} decodable frames, but frames {start}.."
            f"{start + count - 1} are needed"
        )


def _resample(
    timed: Iterator[tuple[Fraction, Any]], rate: Fraction, frame_duration: Fraction
) -> Iterator[Any]:
    """Pick frames at `rate`: slot k (at time k/rate) gets the frame shown then.

    A frame is on screen from its timestamp until the next frame's (the last one for
    `frame_duration`), so lowering the rate drops frames and raising it repeats them.
    Timestamps are exact fractions, so equal rates keep every frame.
    """
    slot, pending, last_time = 0, None, Fraction(0)
    for time, frame in timed:
        if pending is not None:
            while slot / rate < time:
                yield pending
                slot += 1
        pending, last_time = frame, time
    if pending is not None:
        while slot / rate < last_time + frame_duration:
            yield pending
            slot += 1


class VideoReader:
    """Stream a video's frames as RGB uint8 arrays `(H, W, 3)`, from the first.

    Use as a context manager; `info` is known once it is open. Decoding problems
    (an unreadable file, no video stream, corrupt data, no frames, frames over
    `MAX_FRAME_PIXELS`) raise `DataError` naming the file.

    Args:
        path: the video file.
        fps: resample to this frame rate by the frames' timestamps; None keeps all.
        max_side: shrink frames so that their longest side is at most this many
            pixels (aspect ratio kept); None keeps the size.

    Raises:
        ValueError: `fps` or `max_side` is not positive.
        DataError: the file cannot be opened as a video, or its header gives
            frames over the pixel budget.
    """

    def __init__(
        self, path: Path, *, fps: float | None = None, max_side: int | None = None
    ) -> None:
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if max_side is not None and max_side < 1:
            raise ValueError(f"max_side must be at least 1, got {max_side}")
        self.path = Path(path)
        self._container, self._stream = _open(self.path)
        self._stream.thread_type = "AUTO"
        context = self._stream.codec_context
        rate = _rate(self._stream)
        if rate is None or not context.width or not context.height:
            self._container.close()
            missing = "frame rate" if rate is None else "frame size"
            raise DataError(f"{self.path}: the video stream has no {missing}")
        self._source_rate = rate
        self._target_rate = (
            Fraction(fps).limit_denominator(1_000_000) if fps is not None else None
        )
        width, height = fitted_size(context.width, context.height, max_side)
        self._resize = (width, height) != (context.width, context.height)
        self.info = VideoInfo(
            codec=context.name,
            fps=float(self._target_rate or rate),
            width=width,
            height=height,
            source_fps=float(rate),
            source_width=context.width,
            source_height=context.height,
        )

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (also done by leaving the `with` block)."""
        self._container.close()

    def _timed_frames(self) -> Iterator[tuple[Fraction, Any]]:
        """Decoded frames with their time in seconds since the first frame."""
        first = None
        for index, frame in enumerate(self._container.decode(self._stream)):
            if frame.pts is not None and frame.time_base is not None:
                time = Fraction(frame.pts) * Fraction(
                    frame.time_base.numerator, frame.time_base.denominator
                )
            else:
                time = index / self._source_rate
            first = time if first is None else first
            yield time - first, frame

    def _to_array(self, frame: Any) -> np.ndarray:
        if self._resize:
            return frame.to_ndarray(
                format="rgb24",
                width=self.info.width,
                height=self.info.height,
                interpolation="AREA",
            )
        return frame.to_ndarray(format="rgb24")

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.images(None)  # type: ignore[return-value]

    def images(self, wanted: set[int] | None) -> Iterator[np.ndarray | None]:
        """Every frame, converted to an array only where its index is in `wanted`
        (None elsewhere: decoding cannot skip a frame, converting can); None: all."""
        count = 0
        try:
            if self._target_rate is None:
                frames = (frame for _, frame in self._timed_frames())
            else:
                frames = _resample(
                    self._timed_frames(), self._target_rate, 1 / self._source_rate
                )
            previous, array = None, None
            for frame in frames:
                # Checked on every frame, converted or not: the header may lie.
                check_frame_size(self.path, frame.width, frame.height)
                if wanted is not None and count not in wanted:
                    previous, array = None, None
                elif frame is previous:  # repeated when raising the rate
                    array = array.copy()
                else:
                    previous, array = frame, self._to_array(frame)
                count += 1
                yield array
        except _DECODE_ERRORS as error:
            raise DataError(
                f"{self.path}: cannot decode frame {count} ({_reason(error)})"
            ) from None
        if count == 0:
            raise DataError(f"{self.path}: no frames could be decoded")


def decode_video(
    path: Path, *, fps: float | None = None, max_side: int | None = None
) -> tuple[list[np.ndarray], float]:
    """Decode a whole video into memory.

    Args:
        path: the video file.
        fps: resample to this frame rate by the frames' timestamps (frames are
            dropped or repeated); None keeps every frame at the video's own rate.
        max_side: shrink frames so that their longest side is at most this many
            pixels, keeping the aspect ratio; None keeps the size.

    Returns:
        The RGB uint8 `(H, W, 3)` frames and their frame rate.

    Raises:
        ValueError: `fps` or `max_side` is not positive.
        DataError: the file cannot be opened or decoded, or has no frames.
    """
    with VideoReader(path, fps=fps, max_side=max_side) as reader:
        return list(reader), reader.info.fps


def encode_h264(
    file: BinaryIO, frames: Sequence[Any], *, fps: int, options: dict[str, str]
) -> None:
    """Encode frames as an H.264 MP4 (yuv420p) into an open binary file.

    Args:
        file: the open binary file (seekable).
        frames: the RGB frames (PIL images), all of one even size.
        fps: frames per second.
        options: libx264's options, e.g. `{"crf": "18", "g": "8"}`.
    """
    with av.open(file, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_image(frame)))
        container.mux(stream.encode())
