"""Split videos into JPEG frames in the dataset layout signpipe reads.

For each video `<name>.<ext>` (a single file, or every video directly in a folder)::

    OUTPUT/<name>/<name>_<idx>.jpg         frames, idx = 0..n-1
    OUTPUT/<name>/<name>_properties.json   {"File", "Codec", "Frames", "FPS",
                                            "Width", "Height"}

`FPS`, `Width` and `Height` describe the written frames. `--fps` resamples by the
frames' timestamps (frames dropped or repeated), `--max_side` shrinks the frames so
that their longest side fits (aspect ratio kept). Videos are decoded with PyAV, in
parallel processes. Re-running replaces a video's frames and properties (other files
in its folder, such as landmarks, are kept); a video that fails leaves its folder as
it was. Broken videos are listed at the end and make the exit status 1.

Usage::

    python3 -m data_preprocessing.videos_to_frames INPUT OUTPUT [--fps N]
        [--max_side N] [--workers N] [--quality Q]
"""

from __future__ import annotations

import argparse
import json
import glob
import os
import re
import shutil
import sys
from pathlib import Path

from PIL import Image

from data_preprocessing.batch import add_workers_argument, run_batch
from datasets.video_files import find_videos
from datasets.videos import VideoReader
from utils.cli import positive_float, positive_int, run_cli
from utils.constants import IMAGE_SUFFIXES
from utils.errors import UserError
from utils.files import (
    TEMPORARY_MARK,
    check_unique_names,
    prepare_output,
    temporary_path,
)
from utils.item_results import ItemResult, report_failures, written

DEFAULT_QUALITY = 95


def remove_frames(folder: Path, name: str) -> None:
    """Delete the `<name>_<idx>.<image>` frames and `<name>_properties.json`."""
    pattern = re.compile(re.escape(name) + r"_\d+$")
    for path in folder.iterdir():
        if pattern.match(path.stem) and path.suffix.lower() in IMAGE_SUFFIXES:
            path.unlink()
    (folder / f"{name}_properties.json").unlink(missing_ok=True)


def _staging_dir(output: Path, name: str) -> Path:
    """A hidden folder beside the result, removing leftovers of interrupted runs."""
    for stale in output.glob(f".{glob.escape(name)}{TEMPORARY_MARK}*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = temporary_path(output / name)
    staging.mkdir()
    return staging


def convert_video(
    name: str,
    source: Path,
    output: Path,
    fps: float | None,
    max_side: int | None,
    quality: int,
) -> ItemResult:
    """Write one video's frames and properties to `output/<name>/`.

    The frames are written to a staging folder first and moved in only when the
    whole video decoded, so a failure leaves an earlier result untouched.

    Args:
        name: the output name (the video's file stem).
        source: the video file.
        output: the output root.
        fps: target frame rate, or None to keep every frame.
        max_side: longest side of the written frames, or None to keep the size.
        quality: JPEG quality, 1-100.

    Returns:
        The number of frames written.

    Raises:
        DataError: the video cannot be decoded.
        OSError: writing failed.
    """
    staging = _staging_dir(output, name)
    try:
        with VideoReader(source, fps=fps, max_side=max_side) as reader:
            count = 0
            for count, frame in enumerate(reader, start=1):
                Image.fromarray(frame).save(
                    staging / f"{name}_{count - 1}.jpg", format="JPEG", quality=quality
                )
            info = reader.info
        properties = {
            "File": source.name,
            "Codec": info.codec,
            "Frames": count,
            "FPS": info.fps,
            "Width": info.width,
            "Height": info.height,
        }
        (staging / f"{name}_properties.json").write_text(
            json.dumps(properties, indent=2) + "\n", encoding="utf-8"
        )
        target = output / name
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            target.unlink()
        target.mkdir(exist_ok=True)
        remove_frames(target, name)
        for path in staging.iterdir():
            os.replace(path, target / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ItemResult(name, str(source), frames=count)


def list_inputs(source: Path) -> list[Path]:
    """The videos to convert: `source` itself, or the videos directly in it.

    Raises:
        UserError: `source` does not exist, holds no videos, or two videos share a
            name (they would write the same folder).
    """
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise UserError(f"input {source} does not exist")
    videos = find_videos(source)
    if not videos:
        raise UserError(f"no video files (.mp4, .avi, .mov, ...) in {source}")
    check_unique_names(videos, [video.stem for video in videos])
    return videos


def videos_to_frames(
    source: Path,
    output: Path,
    *,
    fps: float | None = None,
    max_side: int | None = None,
    workers: int = 1,
    quality: int = DEFAULT_QUALITY,
) -> list[ItemResult]:
    """Convert a video, or every video in a folder, to frame folders.

    Args:
        source: a video file or a folder of videos.
        output: the output root; `<output>/<name>/` is written per video.
        fps: resample to this frame rate; None keeps every frame.
        max_side: shrink frames to this longest side; None keeps the size.
        workers: parallel processes.
        quality: JPEG quality, 1-100.

    Returns:
        One result per video, in input order; failed ones carry an `error`.

    Raises:
        UserError: no input videos, or the output folder cannot be created.
    """
    if not 1 <= quality <= 100:
        raise UserError(f"--quality must be between 1 and 100, got {quality}")
    videos = list_inputs(Path(source))
    output = Path(output)
    prepare_output(output)
    jobs = [(video.stem, video) for video in videos]
    return run_batch(
        convert_video,
        jobs,
        (output, fps, max_side, quality),
        workers=workers,
        unit="video",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.videos_to_frames",
        description=(
            "Split videos into OUTPUT/<name>/<name>_<idx>.jpg frames plus "
            "<name>_properties.json."
        ),
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="video or folder")
    parser.add_argument("output", type=Path, metavar="OUTPUT", help="output root")
    parser.add_argument(
        "--fps",
        type=positive_float,
        metavar="N",
        help="resample to N frames per second by timestamps (default: keep all)",
    )
    parser.add_argument(
        "--max_side",
        type=positive_int,
        metavar="N",
        help="shrink frames so the longest side is at most N pixels",
    )
    add_workers_argument(parser)
    parser.add_argument(
        "--quality",
        type=int,
        metavar="Q",
        default=DEFAULT_QUALITY,
        help="JPEG quality 1-100 (default: %(default)s)",
    )
    return parser.parse_args(argv)


def _run(args: argparse.Namespace) -> int:
    results = videos_to_frames(
        args.input,
        args.output,
        fps=args.fps,
        max_side=args.max_side,
        workers=args.workers,
        quality=args.quality,
    )
    done, frames = written(results)
    print(
        f"wrote {len(done)} of {len(results)} videos ({frames} frames) to "
        f"{args.output}"
    )
    return report_failures(results, "videos")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: arguments without the program name; `sys.argv[1:]` if None.

    Returns:
        0 when every video was written, 1 when some failed (listed on stderr),
        2 on a user error (no input, unusable output folder).
    """
    return run_cli(lambda: _run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
