"""Landmarks of one clip, written as a `.npz`: the extraction service that
`extract_landmarks` and `labels_csv --landmarks` run per item, and `predict.py` and
the demo run per input.

`extract_item` follows every frame of a video or a frame folder `<name>/` and writes
`<output>/<name>/<name>.npz`; `extract_video` follows only the frames a model reads
of a video, on two trackers while it decodes. Both write the landmark convention
(docs/landmarks.md): MediaPipe's normalised image coordinates, the `.npz` layout
`datasets.landmarks.read_landmarks` reads, NaN rows where nothing was found or no
frame was followed. The trackers are `datasets.tracking`'s (mediapipe is imported
only when one runs); the frames come from `datasets.videos.VideoReader`.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from datasets.index import list_frames, read_fps
from datasets.landmarks import landmark_arrays
from datasets.tracking import empty_parts, follow, store, track
from datasets.videos import VideoReader, probe_video
from utils.errors import DataError
from utils.files import write_atomically
from utils.item_results import ItemResult

#: Longest side frames are shrunk to before tracking clips for predict.py and the
#: demo: larger frames only cost memory (MediaPipe looks at 192-256 pixel crops),
#: and converting a frame at its own size is faster than scaling it.
TRACKING_MAX_SIDE = 1920


def _frame_folder_frames(
    folder: Path, name: str
) -> tuple[int, Iterator, float | None, tuple[int, int] | None]:
    """A frame folder's length (highest index + 1), `(idx, RGB)` frames, FPS, and
    frame size (of the first frame)."""
    frames = list_frames(folder, name)
    if not frames:
        raise DataError(f"{folder}: no {name}_<idx>.jpg frames")
    fps = read_fps(folder, name)
    try:
        with Image.open(frames[min(frames)]) as first:
            size = first.size
    except OSError:
        size = None  # reported when the frame is read

    def read() -> Iterator[tuple[int, np.ndarray]]:
        for index in sorted(frames):
            try:
                with Image.open(frames[index]) as image:
                    rgb = np.asarray(image.convert("RGB"))
            except OSError as error:
                raise DataError(
                    f"{frames[index]}: cannot read image ({error})"
                ) from None
            yield index, rgb

    return max(frames) + 1, read(), fps, size


def _grow(parts: dict[str, np.ndarray], length: int) -> None:
    """Extend every part with NaN rows to at least `length` frames (videos)."""
    for part, array in parts.items():
        if len(array) < length:
            extra = np.full(
                (max(length, 2 * len(array)) - len(array),) + array.shape[1:],
                np.nan,
                np.float32,
            )
            parts[part] = np.concatenate([array, extra])


def _write(
    target: Path,
    parts: dict[str, np.ndarray],
    frame_size: tuple[int, int] | None,
    fps: float | None,
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    arrays = landmark_arrays(parts, frame_size=frame_size, fps=fps)
    write_atomically(target, lambda file: np.savez_compressed(file, **arrays))


def extract_item(
    name: str,
    source: Path,
    output: Path,
    model_complexity: int,
    fps: float | None,
    tracker: str = "holistic",
) -> ItemResult:
    """Follow one video or frame folder and write `output/<name>/<name>.npz`.

    Args:
        name: the output name.
        source: a video file or a frame folder `<name>/`.
        output: the output root.
        model_complexity: Holistic's pose model, 0, 1 or 2.
        fps: resample videos to this rate first (as videos_to_frames --fps does);
            None keeps every frame. Frame folders are used as they are.
        tracker: "holistic" or "hands" (see `datasets.tracking`).

    Returns:
        The frame count and, in `details`, how many frames had each part detected.

    Raises:
        DataError: the video or a frame cannot be read.
        OSError: writing failed.
    """
    with ExitStack() as stack:
        if source.is_dir():
            length, frames, file_fps, size = _frame_folder_frames(source, name)
        else:
            reader = stack.enter_context(VideoReader(source, fps=fps))
            length, frames, file_fps = 0, enumerate(reader), reader.info.fps
            size = (reader.info.width, reader.info.height)
        parts = empty_parts(tracker, length)
        seen = 0
        for index, found in follow(
            frames, tracker=tracker, model_complexity=model_complexity
        ):
            seen = max(seen, index + 1)
            _grow(parts, seen)
            store(parts, index, found)
    length = max(length, seen)
    parts = {part: array[:length] for part, array in parts.items()}
    _write(output / name / f"{name}.npz", parts, size, file_fps)
    details = {
        part: (
            int(np.isfinite(array[..., 0]).any(axis=-1).sum())
            if part == "hands"
            else int(np.isfinite(array).all(axis=(1, 2)).sum())
        )
        for part, array in parts.items()
    }
    return ItemResult(name, str(source), frames=seen, details=details)


def extract_video(
    source: Path,
    target: Path,
    *,
    tracker: str,
    rows: list[int] | None = None,
    length: int | None = None,
    threads: int = 2,
    keep: set[int] | frozenset[int] = frozenset(),
) -> dict[int, np.ndarray]:
    """Landmarks of the frames of one video that a model uses, into `target` (.npz).

    The frames are decoded (at most `TRACKING_MAX_SIDE` pixels long) and followed
    by `threads` trackers while decoding goes on, each over one run of consecutive
    frames (the first half, the second half): what `predict.py` and the demo run on a
    clip.

    Args:
        source: the video.
        target: the `.npz` to write (one row per frame; rows not followed are NaN).
        tracker: "hands" or "holistic".
        rows: the frames to follow (0-based, any order, repeats allowed); None: all.
            Decoding stops after the last one.
        length: the video's frame count as the rows were chosen from (the file gets
            exactly this many rows); None: the frames decoded.
        threads: trackers working at the same time.
        keep: frames whose decoded image to return (e.g. to draw them).

    Returns:
        The decoded images of the `keep` frames that exist, by frame index.

    Raises:
        DataError: the video cannot be decoded.
        UserError: mediapipe or its model is missing.
    """
    wanted = None if rows is None else set(rows)
    last = None if wanted is None else max(wanted | set(keep), default=-1)
    kept: dict[int, np.ndarray] = {}
    decoded = 0
    with VideoReader(source, max_side=TRACKING_MAX_SIDE) as reader:
        info = reader.info
        # Without a given length, room for more frames than the header says (a
        # wrong header); the arrays are cut to the frames decoded below.
        header = reader_length(source) if length is None else length
        count = header if length is not None else 2 * header + 16

        def frames() -> Iterator[tuple[int, np.ndarray]]:
            nonlocal decoded
            images = reader.images(None if wanted is None else wanted | set(keep))
            for index, image in enumerate(images):
                decoded = index + 1
                if image is not None and index in keep:
                    kept[index] = image
                if (
                    image is not None
                    and index < count
                    and (wanted is None or index in wanted)
                ):
                    yield index, image
                if last is not None and index >= last:
                    break

        # Each tracker follows one run of consecutive frames (halves of the clip).
        order = sorted(wanted) if wanted is not None else range(header)
        runs = {
            row: turn * threads // max(1, len(order)) for turn, row in enumerate(order)
        }
        parts = track(
            frames(), count, tracker=tracker, threads=threads, run_of=runs.get
        )
    if length is None:
        parts = {part: _fit(array, decoded) for part, array in parts.items()}
    _write(target, parts, (info.source_width, info.source_height), info.fps)
    return kept


def reader_length(source: Path) -> int:
    """A video's frame count from its container (counted from packets if absent)."""
    return probe_video(source).frames


def _fit(array: np.ndarray, length: int) -> np.ndarray:
    """`array` cut or NaN-padded to `length` rows."""
    if len(array) >= length:
        return array[:length]
    pad = np.full((length - len(array),) + array.shape[1:], np.nan, np.float32)
    return np.concatenate([array, pad])
