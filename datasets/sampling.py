"""Temporal sampling: which frames of a clip go into the model."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from utils.errors import DataError


def check_fps(value: object, where: str) -> float | None:
    """A frame rate read from a file (`*_properties.json`, a landmark file).

    Args:
        value: the value read; None, 0 or empty mean "unknown".
        where: the file (and key) it was read from, for the error message.

    Returns:
        The frame rate, or None when unknown.

    Raises:
        DataError: when it is not a finite number >= 0.
    """
    if value is None or value == "" or value == 0:
        return None
    try:
        fps = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        fps = math.nan
    if isinstance(value, bool) or not math.isfinite(fps) or fps < 0:
        raise DataError(
            f"{where}: the FPS {repr(value)[:40]} is not a frame rate (a finite "
            "number > 0, or 0 for unknown)"
        )
    return fps


def sample_indices(
    length: int,
    num_segments: int,
    *,
    train: bool,
    rng: random.Random,
    step: int | None = None,
) -> list[int]:
    """Positions (0-based, ascending) of the frames to load from a clip.

    Without `step`, the clip is cut into `num_segments` equal segments and one frame is
    taken from each: the centre for evaluation (deterministic), a random position inside
    the segment for training. With `step` (frames between samples, from `time` x FPS),
    `num_segments` frames `step` apart are taken from a window centred in the clip
    (randomly placed for training). A clip shorter than needed gives fewer frames; the
    collate function pads and masks them, nothing is repeated.

    Args:
        length: number of frames in the clip (>= 1).
        num_segments: number of frames wanted.
        train: random offsets when True, deterministic otherwise.
        rng: the random source for training offsets.
        step: frames between sampled frames, or None to spread evenly.

    Returns:
        At most `num_segments` distinct, ascending positions in `[0, length)`.
    """
    if step is not None:
        span = (num_segments - 1) * step + 1
        if span > length:
            return list(range(0, length, step))[:num_segments]
        slack = length - span
        offset = rng.randint(0, slack) if train else slack // 2
        return [offset + i * step for i in range(num_segments)]
    if length <= num_segments:
        return list(range(length))
    bounds = [round(i * length / num_segments) for i in range(num_segments + 1)]
    if train:
        return [rng.randrange(lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    return [(lo + hi - 1) // 2 for lo, hi in zip(bounds, bounds[1:])]


@dataclass(frozen=True)
class SamplingOptions:
    """How clips are sampled in time (`train_parameters`).

    Attributes:
        num_segments: frames per clip.
        time: seconds between sampled frames, or None to spread them evenly.
        default_fps: the FPS assumed where a clip has none (for `time`).
    """

    num_segments: int
    time: float | None = None
    default_fps: float | None = None

    def step(self, fps: float | None, where: object) -> int | None:
        """Frames between sampled frames for `time` sampling (None: spread evenly).

        Raises:
            DataError: `time` is set but neither the clip (`where`) nor
                `default_fps` gives an FPS.
        """
        if self.time is None:
            return None
        fps = fps or self.default_fps
        if fps is None:
            raise DataError(
                f"{where}: train_parameters.time needs the clip's FPS (a video's own "
                "rate, a landmark file's fps, or <name>_properties.json in a frame "
                "folder); set train_parameters.default_fps"
            )
        return max(1, round(self.time * fps))

    def evaluation_positions(
        self, length: int, fps: float | None, where: object
    ) -> list[int]:
        """The deterministic positions of an evaluation clip of `length` frames."""
        return sample_indices(
            length,
            self.num_segments,
            train=False,
            rng=random.Random(0),
            step=self.step(fps, where),
        )
