"""Training-time augmentations of landmark clips: time, geometry and dropout.

Each is drawn once per clip. The temporal ones run on the file's rows before frames
are sampled (`resample_speed`, `random_crop`); the others on the normalised clip
(`random_affine` about the body centre, then `frame_dropout` and `point_dropout`).
The horizontal mirror is `datasets.landmarks.flip_horizontally`.
"""

from __future__ import annotations

import math
import random

import numpy as np

from config.landmarks import LandmarksParameters


def resample_speed(
    length: int, low: float, high: float, rng: random.Random
) -> np.ndarray:
    """Row positions that play a clip of `length` rows at a random speed.

    Returns:
        Ascending row indices (repeats when slowed down, skips when sped up); at
        least 2 rows (1 for a 1-row clip).
    """
    speed = rng.uniform(low, high)
    count = max(min(2, length), round(length / speed))
    return np.round(np.linspace(0, length - 1, count)).astype(np.int64)


def random_crop(length: int, low: float, rng: random.Random) -> slice:
    """A random window of between `low` and all of `length` rows."""
    keep = max(1, round(length * rng.uniform(low, 1.0)))
    start = rng.randint(0, length - keep)
    return slice(start, start + keep)


def affine_matrix(options: LandmarksParameters, rng: random.Random) -> np.ndarray:
    """A random 2x2 map of (x, y): rotation, scale, shear and aspect, in that order."""
    angle = math.radians(rng.uniform(-options.affine_rotation, options.affine_rotation))
    scale = rng.uniform(1.0 - options.affine_scale, 1.0 + options.affine_scale)
    shear = rng.uniform(-options.affine_shear, options.affine_shear)
    rotation = np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    matrix = rotation @ np.array([[1.0, shear], [0.0, 1.0]]) * scale
    matrix[1] *= rng.uniform(1.0 - options.affine_aspect, 1.0 + options.affine_aspect)
    return matrix


def random_affine(
    landmarks: np.ndarray,
    present: np.ndarray,
    options: LandmarksParameters,
    rng: random.Random,
    relative: np.ndarray | None = None,
) -> np.ndarray:
    """Map normalised `(T, K, 3)` landmarks (centred on the body) by a random affine
    of x, y and a random shift; z is scaled with the clip. Absent points stay 0.

    Points marked in `relative` `(K,)` bool (finger points relative to their wrist,
    in palm lengths) are only rotated, sheared and stretched: no shift, and no
    overall scale, which they do not have."""
    matrix = affine_matrix(options, rng)
    scale = math.sqrt(abs(np.linalg.det(matrix)))
    shift = [rng.uniform(-options.affine_shift, options.affine_shift) for _ in range(2)]
    out = landmarks.copy()
    out[..., :2] = landmarks[..., :2] @ matrix.T.astype(np.float32)
    out[..., :2] += np.array(shift, dtype=np.float32)
    out[..., 2] *= scale
    if relative is not None and relative.any():
        shape = matrix / max(scale, 1e-6)
        out[:, relative, :2] = landmarks[:, relative, :2] @ shape.T.astype(np.float32)
        out[:, relative, 2] = landmarks[:, relative, 2]
    return np.where(present[..., None], out, 0.0).astype(np.float32)


def frame_dropout(
    length: int, probability: float, rng: random.Random
) -> np.ndarray | None:
    """Frame positions to keep after dropping each with `probability` (at least
    half the clip is kept), or None to keep all."""
    if probability <= 0.0 or length < 4:
        return None
    keep = np.array([rng.random() >= probability for _ in range(length)])
    if keep.sum() < length / 2:
        return None
    return np.flatnonzero(keep)


def point_dropout(
    present: np.ndarray,
    groups: list[slice],
    probability: float,
    rng: random.Random,
) -> np.ndarray:
    """`present` with each point group (a hand, the pose, ...) of each frame marked
    absent with `probability`, as a detector that misses it would."""
    if probability <= 0.0:
        return present
    present = present.copy()
    for group in groups:
        drop = np.array([rng.random() < probability for _ in range(len(present))])
        present[drop, group] = False
    return present
