"""Extract MediaPipe landmarks from videos or frame folders.

INPUT is a video file, a folder of videos, a frame folder `<name>/` holding
`<name>_<idx>.jpg` frames, or a folder of such frame folders (a dataset root), or a
mix of videos and frame folders. For each item `<name>` this writes::

    OUTPUT/<name>/<name>.npz    --tracker holistic (default): pose (T, 33, 3),
                                face (T, 468, 3), left_hand (T, 21, 3),
                                right_hand (T, 21, 3); --tracker hands: hands
                                (T, 2, 21, 3) in detection order (as WLASL's files);
                                float32, NaN where nothing was found; and
                                coordinates ("normalized"), frame_size
                                ([width, height]) and fps when known

in the landmark convention (docs/landmarks.md): MediaPipe's normalised image
coordinates, the `.npz` layout `datasets.landmarks.read_landmarks` reads. Row `i` is
frame `<name>_<i>` (missing frame indices give NaN rows), so OUTPUT may be the frames'
dataset root itself. Each item gets a fresh tracker in video mode
(`data_preprocessing.trackers`, the extraction predict.py and the demo use too).
Re-running replaces the `.npz`; failed items are listed at the end and make the exit
status 1.

Needs the optional extra `requirements-landmarks.txt` (mediapipe 0.10.14, whose
wheel bundles the models so that nothing is downloaded).

Usage::

    python3 -m data_preprocessing.extract_landmarks INPUT OUTPUT
        [--tracker holistic|hands] [--model_complexity 0|1|2] [--workers N]
        [--fps N]
"""

from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from data_preprocessing.trackers import (
    DEFAULT_COMPLEXITY,
    POSE_MODELS,
    TRACKERS,
    check_model,
    empty_parts,
    follow,
    load_mediapipe,
    store,
    track,
)
from data_preprocessing.video_io import (
    add_workers_argument,
    ItemResult,
    VideoReader,
    check_unique_names,
    find_videos,
    prepare_output,
    report_failures,
    written,
    run_batch,
)
from datasets.index import list_frames, read_fps
from datasets.landmarks import landmark_arrays
from datasets.videos import probe_video
from utils.cli import positive_float, run_cli
from utils.errors import DataError, UserError
from utils.files import write_atomically

__all__ = [
    "DEFAULT_COMPLEXITY",
    "check_model",
    "extract_item",
    "extract_landmarks",
    "extract_video",
    "load_mediapipe",
]

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
        tracker: "holistic" or "hands" (see `data_preprocessing.trackers`).

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


def list_inputs(source: Path) -> list[tuple[str, Path]]:
    """The `(name, video or frame folder)` items under `source`.

    Raises:
        UserError: `source` does not exist, holds neither videos nor frame folders,
            or two items share a name.
    """
    if source.is_file():
        return [(source.stem, source)]
    if not source.is_dir():
        raise UserError(f"input {source} does not exist")
    if list_frames(source, source.name):
        return [(source.name, source)]
    items = [(video.stem, video) for video in find_videos(source)]
    items += [
        (folder.name, folder)
        for folder in sorted(source.iterdir())
        if folder.is_dir() and list_frames(folder, folder.name)
    ]
    if not items:
        raise UserError(
            f"no videos and no frame folders (<name>/<name>_<idx>.jpg) in {source}"
        )
    check_unique_names([path for _, path in items], [name for name, _ in items])
    return items


def extract_landmarks(
    source: Path,
    output: Path,
    *,
    model_complexity: int = DEFAULT_COMPLEXITY,
    workers: int = 1,
    fps: float | None = None,
    tracker: str = "holistic",
) -> list[ItemResult]:
    """Extract landmarks of a video, frame folder, or a folder of either.

    Args:
        source: a video, a frame folder, or a folder of videos and/or frame folders.
        output: the output root; `<output>/<name>/<name>.npz` is written per item.
        model_complexity: Holistic's pose model (0, 1, 2; only 1 ships offline).
        workers: parallel processes.
        fps: resample videos to this frame rate first; None keeps every frame.
        tracker: "holistic" (every part) or "hands" (hands only, much faster).

    Returns:
        One result per item, in input order; failed ones carry an `error`.

    Raises:
        UserError: mediapipe or the model is missing, no inputs, or the output
            folder cannot be created.
    """
    if model_complexity not in POSE_MODELS:
        raise UserError(f"--model_complexity must be 0, 1 or 2, got {model_complexity}")
    check_model(load_mediapipe(), tracker, model_complexity)
    items = list_inputs(Path(source))
    output = Path(output)
    prepare_output(output)
    return run_batch(
        extract_item,
        items,
        (output, model_complexity, fps, tracker),
        workers=workers,
        unit="item",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.extract_landmarks",
        description=(
            "Write MediaPipe landmarks OUTPUT/<name>/<name>.npz for videos or "
            "<name>/<name>_<idx>.jpg frame folders (normalised image coordinates; "
            "see docs/landmarks.md)."
        ),
    )
    parser.add_argument(
        "input",
        type=Path,
        metavar="INPUT",
        help="a video, a frame folder, or a folder of videos and/or frame folders",
    )
    parser.add_argument("output", type=Path, metavar="OUTPUT", help="output root")
    parser.add_argument(
        "--model_complexity",
        type=int,
        choices=sorted(POSE_MODELS),
        default=DEFAULT_COMPLEXITY,
        help="Holistic pose model (default: %(default)s, the one bundled offline)",
    )
    parser.add_argument(
        "--tracker",
        choices=TRACKERS,
        default="holistic",
        help="holistic: pose, face and both hands; hands: MediaPipe Hands alone "
        "(as WLASL's landmarks were made; what hands-only models read; much "
        "faster) (default: %(default)s)",
    )
    add_workers_argument(parser)
    parser.add_argument(
        "--fps",
        type=positive_float,
        metavar="N",
        help="resample videos to N frames per second first, as videos_to_frames "
        "--fps does (default: every frame; frame folders are used as they are)",
    )
    return parser.parse_args(argv)


def _run(args: argparse.Namespace) -> int:
    results = extract_landmarks(
        args.input,
        args.output,
        model_complexity=args.model_complexity,
        workers=args.workers,
        fps=args.fps,
        tracker=args.tracker,
    )
    done, frames = written(results)
    print(
        f"wrote landmarks of {len(done)} of {len(results)} items ({frames} frames) "
        f"to {args.output}"
    )
    if done:
        found = ", ".join(
            f"{part} {sum((result.details or {}).get(part, 0) for result in done)}"
            for part in (done[0].details or {})
        )
        print(f"frames with each part detected: {found}")
    return report_failures(results, "items")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: arguments without the program name; `sys.argv[1:]` if None.

    Returns:
        0 when every item was written, 1 when some failed (listed on stderr),
        2 on a user error (mediapipe missing, no input, unusable output folder).
    """
    return run_cli(lambda: _run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
