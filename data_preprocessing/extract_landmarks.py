"""Extract MediaPipe Holistic landmarks from videos or frame folders.

INPUT is a video file, a folder of videos, a frame folder `<name>/` holding
`<name>_<idx>.jpg` frames, or a folder of such frame folders (a dataset root), or a
mix of videos and frame folders. For each item `<name>` this writes::

    OUTPUT/<name>/<name>.npz    pose (T, 33, 3), face (T, 468, 3), left_hand (T, 21, 3),
                                right_hand (T, 21, 3) float32, and fps when known

in pixel coordinates of the frame (x * width, y * height, z * width), NaN where a part
was not detected: the `.npz` layout `datasets.landmarks.read_landmarks` reads. Row `i`
is frame `<name>_<i>` (missing frame indices give NaN rows), so OUTPUT may be the
frames' dataset root itself. Each item gets a fresh Holistic tracker
(`static_image_mode=False`). Re-running replaces the `.npz`; failed items are
listed at the end and make the exit status 1.

Needs the optional extra `requirements-landmarks.txt` (mediapipe 0.10.14, whose
wheel bundles the Holistic models so that nothing is downloaded).

Usage::

    python3 -m data_preprocessing.extract_landmarks INPUT OUTPUT
        [--model_complexity 0|1|2] [--workers N] [--fps N]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import numpy as np
from PIL import Image

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
from utils.cli import positive_float, run_cli
from utils.errors import DataError, UserError
from utils.file_io import write_atomically

#: Points per part as written (MediaPipe Holistic without iris refinement).
PART_POINTS = {"pose": 33, "face": 468, "left_hand": 21, "right_hand": 21}
#: Holistic result attribute of each part.
RESULT_FIELDS = {
    "pose": "pose_landmarks",
    "face": "face_landmarks",
    "left_hand": "left_hand_landmarks",
    "right_hand": "right_hand_landmarks",
}
#: The pose model each model_complexity needs (in mediapipe/modules/pose_landmark).
POSE_MODELS = {
    0: "pose_landmark_lite.tflite",
    1: "pose_landmark_full.tflite",
    2: "pose_landmark_heavy.tflite",
}
DEFAULT_COMPLEXITY = 1
INSTALL_HINT = (
    "run `.venv/bin/pip install -r requirements-landmarks.txt` (or `make venv`)"
)


def load_mediapipe() -> ModuleType:
    """Import mediapipe and check that it offers `mp.solutions.holistic`.

    Raises:
        UserError: mediapipe is missing, does not import, or is a version without
            the Holistic solution; the message says what to install.
    """
    # mediapipe 0.10.14 with protobuf 4.25 warns once per process; not the user's issue.
    warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype")
    try:
        # Imported here: an optional extra, needed by this tool only.
        # pylint: disable-next=import-outside-toplevel
        import mediapipe
    except ImportError:
        raise UserError(
            f"extract_landmarks needs mediapipe, which is not installed: {INSTALL_HINT}"
        ) from None
    except Exception as error:  # pylint: disable=broad-exception-caught
        # e.g. protobuf >= 5 makes mediapipe 0.10.14 fail with a TypeError.
        raise UserError(
            f"mediapipe does not import ({type(error).__name__}: {error}); "
            f"{INSTALL_HINT}"
        ) from None
    if getattr(getattr(mediapipe, "solutions", None), "holistic", None) is None:
        version = getattr(mediapipe, "__version__", "?")
        raise UserError(
            f"mediapipe {version} has no mp.solutions.holistic (the offline Holistic "
            f"models); {INSTALL_HINT}"
        )
    return mediapipe


def check_model(mediapipe: ModuleType, model_complexity: int) -> None:
    """Raise `UserError` when the pose model of `model_complexity` is not installed.

    mediapipe 0.10.14 bundles only the full pose model (complexity 1); it would try
    to download the lite (0) and heavy (2) ones at run time.
    """
    folder = Path(mediapipe.__file__).parent / "modules" / "pose_landmark"
    model = folder / POSE_MODELS[model_complexity]
    if not model.is_file():
        raise UserError(
            f"--model_complexity {model_complexity} needs {model}, which this "
            "mediapipe does not bundle (it would download it, and nothing is "
            f"downloaded here); use --model_complexity {DEFAULT_COMPLEXITY} or "
            "place the file there"
        )


def _frame_folder_frames(folder: Path, name: str) -> tuple[int, Iterator, float | None]:
    """A frame folder's length (highest index + 1), `(idx, RGB)` frames, and FPS."""
    frames = list_frames(folder, name)
    if not frames:
        raise DataError(f"{folder}: no {name}_<idx>.jpg frames")
    fps = read_fps(folder, name)

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

    return max(frames) + 1, read(), fps


def _points(landmarks: Any, count: int, width: int, height: int) -> np.ndarray:
    """MediaPipe normalised landmarks -> `(count, 3)` pixel coordinates."""
    points = np.array(
        [(point.x, point.y, point.z) for point in landmarks.landmark[:count]],
        dtype=np.float32,
    )
    return points * np.array([width, height, width], dtype=np.float32)


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


def extract_item(
    name: str,
    source: Path,
    output: Path,
    model_complexity: int,
    fps: float | None,
) -> ItemResult:
    """Run Holistic over one video or frame folder and write `output/<name>/<name>.npz`.

    Args:
        name: the output name.
        source: a video file or a frame folder `<name>/`.
        output: the output root.
        model_complexity: Holistic's pose model, 0, 1 or 2.
        fps: resample videos to this rate first (as videos_to_frames --fps does);
            None keeps every frame. Frame folders are used as they are.

    Returns:
        The frame count and, in `details`, how many frames had each part detected.

    Raises:
        DataError: the video or a frame cannot be read.
        OSError: writing failed.
    """
    holistic_module = load_mediapipe().solutions.holistic
    with ExitStack() as stack:
        if source.is_dir():
            length, frames, file_fps = _frame_folder_frames(source, name)
        else:
            reader = stack.enter_context(VideoReader(source, fps=fps))
            length, frames, file_fps = 0, enumerate(reader), reader.info.fps
        parts = {
            part: np.full((length, points, 3), np.nan, np.float32)
            for part, points in PART_POINTS.items()
        }
        holistic = stack.enter_context(
            holistic_module.Holistic(
                static_image_mode=False, model_complexity=model_complexity
            )
        )
        seen = 0
        for index, image in frames:
            seen = max(seen, index + 1)
            _grow(parts, seen)
            height, width = image.shape[:2]
            results = holistic.process(np.ascontiguousarray(image))
            for part, field in RESULT_FIELDS.items():
                landmarks = getattr(results, field)
                if landmarks is not None:
                    parts[part][index] = _points(
                        landmarks, PART_POINTS[part], width, height
                    )
    length = max(length, seen)
    parts = {part: array[:length] for part, array in parts.items()}
    arrays: dict[str, np.ndarray] = dict(parts)
    if file_fps:
        arrays["fps"] = np.asarray(file_fps, dtype=np.float64)
    target = output / name
    target.mkdir(parents=True, exist_ok=True)
    write_atomically(
        target / f"{name}.npz", lambda file: np.savez_compressed(file, **arrays)
    )
    details = {
        part: int(np.isfinite(array).all(axis=(1, 2)).sum())
        for part, array in parts.items()
    }
    return ItemResult(name, str(source), frames=seen, details=details)


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
) -> list[ItemResult]:
    """Extract landmarks of a video, frame folder, or a folder of either.

    Args:
        source: a video, a frame folder, or a folder of videos and/or frame folders.
        output: the output root; `<output>/<name>/<name>.npz` is written per item.
        model_complexity: Holistic's pose model (0, 1, 2; only 1 ships offline).
        workers: parallel processes.
        fps: resample videos to this frame rate first; None keeps every frame.

    Returns:
        One result per item, in input order; failed ones carry an `error`.

    Raises:
        UserError: mediapipe or the model is missing, no inputs, or the output
            folder cannot be created.
    """
    if model_complexity not in POSE_MODELS:
        raise UserError(f"--model_complexity must be 0, 1 or 2, got {model_complexity}")
    check_model(load_mediapipe(), model_complexity)
    items = list_inputs(Path(source))
    output = Path(output)
    prepare_output(output)
    return run_batch(
        extract_item,
        items,
        (output, model_complexity, fps),
        workers=workers,
        unit="item",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.extract_landmarks",
        description=(
            "Write MediaPipe Holistic landmarks OUTPUT/<name>/<name>.npz for videos "
            "or <name>/<name>_<idx>.jpg frame folders."
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
    )
    done, frames = written(results)
    print(
        f"wrote landmarks of {len(done)} of {len(results)} items ({frames} frames) "
        f"to {args.output}"
    )
    if done:
        found = ", ".join(
            f"{part} {sum((result.details or {}).get(part, 0) for result in done)}"
            for part in PART_POINTS
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
