"""Video decoding with PyAV, and the batch runner the offline video tools share.

`decode_video` (and the streaming `VideoReader` under it) turn a video file into RGB
uint8 frames, optionally resampled to another frame rate by the frames' timestamps
and shrunk so that their longest side fits a limit. `run_batch` runs one function
per item over a process pool with a progress bar and collects every item's
outcome, so that one broken video does not stop the others.

This module needs only PyAV, numpy and tqdm (no torch), so that the tools start fast.
Frames over the pixel budget (`datasets.videos.MAX_FRAME_PIXELS`) are refused, by the
container's header when the video is opened and by each decoded frame's size.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import av
import numpy as np

# FFmpegError is made at import time by the compiled module; pylint cannot see it.
from av.error import FFmpegError  # pylint: disable=no-name-in-module
from tqdm import tqdm

from datasets.videos import check_frame_size
from utils.cli import positive_int
from utils.constants import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from utils.errors import DataError, UserError

DEFAULT_MAX_WORKERS = 4


@dataclass(frozen=True)
class VideoInfo:
    """What a `VideoReader` yields: the codec, and the rate and size of its frames.

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


def fitted_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size with the longest side at most `max_side`, keeping the aspect ratio.

    Frames are only shrunk, never enlarged; `None` keeps the size.
    """
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _reason(error: Exception) -> str:
    """An FFmpeg error's text without the errno and file name it repeats."""
    return getattr(error, "strerror", None) or str(error)


def _rate(stream: Any) -> Fraction | None:
    """The stream's frame rate as an exact fraction, if the container knows it."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate.numerator, rate.denominator)
    return None


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
    """Stream a video's frames as RGB uint8 arrays `(H, W, 3)`.

    Use as a context manager; `info` is known once it is open. Decoding problems
    (an unreadable file, no video stream, corrupt data, no frames, frames over
    `datasets.videos.MAX_FRAME_PIXELS`) raise `DataError` naming the file.

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
        try:
            self._container = av.open(str(self.path))
        except (FFmpegError, OSError, ValueError) as error:
            raise DataError(
                f"{self.path}: cannot open video ({_reason(error)})"
            ) from None
        try:
            if not self._container.streams.video:
                raise DataError(f"{self.path}: no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO"
            context = self._stream.codec_context
            rate = _rate(self._stream)
            if rate is None:
                raise DataError(f"{self.path}: the video stream has no frame rate")
            if not context.width or not context.height:
                raise DataError(f"{self.path}: the video stream has no frame size")
            check_frame_size(self.path, context.width, context.height)
        except DataError:
            self._container.close()
            raise
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
        except (FFmpegError, OSError, ValueError) as error:
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


def find_videos(folder: Path) -> list[Path]:
    """The video files directly in `folder` (by suffix), sorted by name."""
    return sorted(
        path
        for path in Path(folder).iterdir()
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES
    )


def check_unique_names(paths: Sequence[Path], names: Sequence[str]) -> None:
    """Raise `UserError` when two inputs would write the same output folder."""
    seen: dict[str, Path] = {}
    clashes = []
    for path, name in zip(paths, names):
        if name in seen:
            clashes.append(f"{seen[name]} and {path} both give {name}")
        seen.setdefault(name, path)
    if clashes:
        raise UserError("inputs share an output name: " + "; ".join(clashes))


def remove_frames(folder: Path, name: str) -> None:
    """Delete the `<name>_<idx>.<image>` frames and `<name>_properties.json`."""
    pattern = re.compile(re.escape(name) + r"_\d+$")
    for path in folder.iterdir():
        if pattern.match(path.stem) and path.suffix.lower() in IMAGE_SUFFIXES:
            path.unlink()
    (folder / f"{name}_properties.json").unlink(missing_ok=True)


def prepare_output(output: Path) -> None:
    """Create the output folder; `UserError` if that is impossible."""
    if output.exists() and not output.is_dir():
        raise UserError(f"output {output} exists and is not a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {output}: {error}") from None


def default_workers() -> int:
    """min(4, number of CPUs)."""
    return max(1, min(DEFAULT_MAX_WORKERS, os.cpu_count() or 1))


@dataclass
class ItemResult:
    """The outcome of one item of a batch.

    Attributes:
        name: the item's output name.
        source: the input it came from.
        frames: frames written (0 on failure).
        error: None on success, else a one-line reason.
        details: per-item numbers for the summary (e.g. detections per part).
    """

    name: str
    source: str
    frames: int = 0
    error: str | None = None
    details: dict[str, int] | None = None


def _importable(function: Callable) -> tuple[str, str]:
    """Module and qualified name of a function, as a worker process can import them.

    A tool run as `python3 -m package.tool` has its functions in `__main__`; they
    are looked up under the module's real name instead.
    """
    module = function.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return module, function.__qualname__


def guarded(
    function: Callable[..., ItemResult] | tuple[str, str],
    name: str,
    source: Path,
    *args: Any,
) -> ItemResult:
    """Run `function(name, source, *args)`; any exception becomes a failed result.

    One bad input must not stop a batch, so every exception is caught and reported
    with its type in the end-of-run summary.

    Args:
        function: the function, or its `(module, qualified name)` to import.
        name: the item's output name.
        source: the item's input.
        *args: further arguments.
    """
    try:
        if isinstance(function, tuple):
            function = getattr(importlib.import_module(function[0]), function[1])
        return function(name, source, *args)
    except Exception as error:  # pylint: disable=broad-exception-caught
        message = (
            str(error)
            if isinstance(error, UserError)
            else f"{type(error).__name__}: {error}"
        )
        return ItemResult(name, str(source), error=message)


def _progress(total: int, unit: str) -> tqdm:
    """The progress bar over a batch's items, on stderr."""
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def run_batch(
    function: Callable[..., ItemResult],
    jobs: Sequence[tuple[str, Path]],
    args: tuple,
    *,
    workers: int,
    unit: str,
) -> list[ItemResult]:
    """Run `function(name, source, *args)` for every job, with a progress bar.

    Args:
        function: a module-level function (picklable) returning an `ItemResult`.
        jobs: `(name, source)` pairs.
        args: further arguments, the same for every job.
        workers: processes; 1 (or a single job) runs in this process.
        unit: what an item is called on the progress bar.

    Returns:
        The results in the order of `jobs`.
    """
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        results = []
        with _progress(len(jobs), unit) as progress:
            for name, source in jobs:
                progress.set_postfix_str(name)
                results.append(guarded(function, name, source, *args))
                progress.update()
        return results
    target = _importable(function)
    # Fresh interpreters, not forks: a fork of a process that already runs
    # MediaPipe, torch threads or a DataLoader can crash in native code.
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    )
    try:
        # Submitted (and the workers forked) before the progress bar starts its thread.
        futures = {
            pool.submit(guarded, target, name, source, *args): index
            for index, (name, source) in enumerate(jobs)
        }
        by_index: dict[int, ItemResult] = {}
        with _progress(len(jobs), unit) as progress:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    by_index[index] = future.result()
                except Exception as error:  # pylint: disable=broad-exception-caught
                    # e.g. a worker killed by the system (BrokenProcessPool)
                    name, source = jobs[index]
                    by_index[index] = ItemResult(
                        name, str(source), error=f"{type(error).__name__}: {error}"
                    )
                progress.set_postfix_str(by_index[index].name)
                progress.update()
    except BaseException:  # Ctrl-C: do not wait for the queued items
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [by_index[index] for index in range(len(jobs))]


def written(results: Sequence[ItemResult]) -> tuple[list[ItemResult], int]:
    """The items that succeeded, and the frames they wrote in all."""
    done = [result for result in results if result.error is None]
    return done, sum(result.frames for result in done)


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """The `--workers N` option of the batch tools."""
    parser.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        default=default_workers(),
        help="parallel processes (default: min(4, CPUs) = %(default)s)",
    )


def report_failures(results: Sequence[ItemResult], kind: str) -> int:
    """Print the failed items on stderr; the exit status: 1 if any failed, else 0."""
    failed = [result for result in results if result.error is not None]
    if not failed:
        return 0
    print(f"failed: {len(failed)} of {len(results)} {kind}:", file=sys.stderr)
    for result in failed:
        error = result.error or ""
        line = error if error.startswith(result.source) else f"{result.source}: {error}"
        print(f"  {line}", file=sys.stderr)
    return 1
