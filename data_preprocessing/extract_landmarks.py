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
(`datasets.clip_landmarks.extract_item`, the extraction predict.py and the demo use
too).
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
from pathlib import Path

from data_preprocessing.batch import add_workers_argument, run_batch
from datasets.clip_landmarks import extract_item
from datasets.index import list_frames
from datasets.tracking import (
    DEFAULT_COMPLEXITY,
    POSE_MODELS,
    TRACKERS,
    check_model,
    load_mediapipe,
)
from datasets.video_files import find_videos
from utils.cli import positive_float, run_cli
from utils.errors import UserError
from utils.files import check_unique_names, prepare_output
from utils.item_results import ItemResult, report_failures, written


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
