"""Landmark augmentations: the functions, their config fields, and what a training
clip of `SignDataset` gets from them."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from config.landmarks import LandmarksParameters
from config.loader import parse_config
from datasets.index import Sample
from datasets.landmark_augment import (
    affine_matrix,
    frame_dropout,
    point_dropout,
    random_affine,
    random_crop,
    resample_speed,
)
from datasets.sampling import SamplingOptions
from datasets.sign_dataset import SignDataset
from utils.errors import ConfigError

FRAMES = 20
POSE, LEFT, RIGHT = slice(0, 23), slice(23, 44), slice(44, 65)
#: Only the rotation: no scale, shear, aspect or shift.
ROTATION_ONLY = {
    "affine_rotation": 40.0,
    "affine_scale": 0.0,
    "affine_shear": 0.0,
    "affine_aspect": 0.0,
    "affine_shift": 0.0,
}


def options(**fields) -> LandmarksParameters:
    """Landmark options with `fields` set."""
    return LandmarksParameters(**fields)


@pytest.mark.parametrize(("speed", "count"), [(2.0, 10), (0.5, 40), (1.0, 20)])
def test_resample_speed_changes_the_length(speed: float, count: int) -> None:
    rows = resample_speed(FRAMES, speed, speed, random.Random(0))
    assert len(rows) == count
    assert rows[0] == 0 and rows[-1] == FRAMES - 1
    assert (np.diff(rows) >= 0).all()
    if speed < 1:
        assert len(set(rows.tolist())) == FRAMES, "slowed down: every row, repeated"
    assert len(resample_speed(1, 2.0, 2.0, random.Random(0))) == 1
    assert len(resample_speed(3, 10.0, 10.0, random.Random(0))) == 2


def test_random_crop_keeps_at_least_the_min_ratio() -> None:
    rng = random.Random(1)
    windows = [random_crop(FRAMES, 0.6, rng) for _ in range(200)]
    lengths = {window.stop - window.start for window in windows}
    assert min(lengths) >= 12 and max(lengths) <= FRAMES
    assert len(lengths) > 3, "the window length varies"
    assert all(0 <= w.start and w.stop <= FRAMES for w in windows)
    assert {w.start for w in windows} != {0}, "the window moves"
    assert random_crop(5, 1.0, rng) == slice(0, 5)


def clip_and_mask(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A `(6, 65, 3)` normalised clip with some absent (0) points."""
    rng = np.random.default_rng(seed)
    present = rng.random((6, 65)) > 0.3
    points = rng.normal(size=(6, 65, 3)).astype(np.float32)
    return np.where(present[..., None], points, 0.0).astype(np.float32), present


def test_affine_keeps_absent_points_at_zero() -> None:
    clip, present = clip_and_mask()
    out = random_affine(clip, present, options(apply_affine=True), random.Random(2))
    assert (out[~present] == 0).all()
    assert not np.allclose(out[present], clip[present]), "present points move"
    assert out.dtype == np.float32


def pairwise(points: np.ndarray) -> np.ndarray:
    """`(T, K, K)` distances between the points of each frame."""
    return np.linalg.norm(points[:, :, None] - points[:, None, :], axis=-1)


def test_affine_rotation_alone_preserves_distances() -> None:
    clip = np.random.default_rng(3).normal(size=(4, 10, 3)).astype(np.float32)
    present = np.ones((4, 10), bool)
    out = random_affine(clip, present, options(**ROTATION_ONLY), random.Random(4))
    np.testing.assert_allclose(
        pairwise(out[..., :2]), pairwise(clip[..., :2]), atol=1e-5
    )
    np.testing.assert_allclose(out[..., 2], clip[..., 2], atol=1e-6)
    assert not np.allclose(out, clip)


def test_affine_scale_and_shift() -> None:
    clip = np.random.default_rng(5).normal(size=(3, 8, 3)).astype(np.float32)
    present = np.ones((3, 8), bool)
    fields = {**ROTATION_ONLY, "affine_rotation": 0.0, "affine_scale": 0.5}
    matrix = affine_matrix(options(**fields), random.Random(6))
    scale = matrix[0, 0]
    assert 0.5 <= scale <= 1.5 and scale != 1.0
    np.testing.assert_allclose(matrix, np.eye(2) * scale)
    out = random_affine(clip, present, options(**fields), random.Random(6))
    np.testing.assert_allclose(out, clip * scale, rtol=1e-5, atol=1e-6)
    fields = {**ROTATION_ONLY, "affine_rotation": 0.0, "affine_shift": 0.3}
    out = random_affine(clip, present, options(**fields), random.Random(7))
    shift = out - clip
    assert np.allclose(shift[..., 2], 0.0)
    np.testing.assert_allclose(
        shift[..., :2], shift[:1, :1, :2].repeat(3, 0).repeat(8, 1), atol=1e-6
    )
    assert 0 < np.abs(shift[0, 0, :2]).max() <= 0.3


def test_affine_with_no_ranges_is_the_identity() -> None:
    fields = {**ROTATION_ONLY, "affine_rotation": 0.0}
    np.testing.assert_allclose(
        affine_matrix(options(**fields), random.Random(0)), np.eye(2)
    )


def test_frame_dropout_keeps_at_least_half() -> None:
    rng = random.Random(8)
    assert frame_dropout(10, 0.0, rng) is None
    assert frame_dropout(3, 0.4, rng) is None, "too short to drop from"
    kept = [frame_dropout(10, 0.45, rng) for _ in range(200)]
    dropped = [k for k in kept if k is not None]
    assert dropped and all(len(k) >= 5 for k in dropped)
    assert any(len(k) < 10 for k in dropped)
    assert all((np.diff(k) > 0).all() and k[-1] < 10 for k in dropped)


def test_point_dropout_drops_whole_parts() -> None:
    present = np.ones((50, 65), bool)
    groups = [POSE, LEFT, RIGHT]
    out = point_dropout(present, groups, 0.3, random.Random(9))
    assert present.all(), "the input is not changed"
    for group in groups:
        part = out[:, group]
        assert (part.all(1) | ~part.any(1)).all(), "a part is dropped as a whole"
        assert 0 < (~part.any(1)).sum() < 50
    assert point_dropout(present, groups, 0.0, random.Random(9)) is present


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"speed_range": [1.5, 1.0]}, "speed_range"),
        ({"speed_range": [0.05, 1.0]}, "speed_range"),
        ({"crop_min_ratio": 0.0}, "crop_min_ratio"),
        ({"crop_probability": 1.5}, "crop_probability"),
        ({"frame_dropout": 0.5}, "frame_dropout"),
        ({"point_dropout": 1.0}, "point_dropout"),
        ({"affine_scale": 1.0}, "affine_scale"),
        ({"affine_rotation": -1.0}, "affine_rotation"),
        ({"apply_affine": True, "normalize": False}, "apply_affine"),
        ({"velocity": True}, "velocity"),
    ],
)
def test_config_rejects_bad_values(fields: dict, key: str) -> None:
    with pytest.raises(ValidationError):
        LandmarksParameters(**fields)
    raw = {"train_parameters": {"landmarks": True}, "landmarks_parameters": fields}
    with pytest.raises(ConfigError, match=f"landmarks_parameters.{key}"):
        parse_config(raw)


def test_augments_lists_every_augmentation() -> None:
    assert not options().augments()
    for fields in (
        {"apply_flip": True},
        {"apply_affine": True},
        {"apply_speed": True},
        {"apply_crop": True},
        {"frame_dropout": 0.1},
        {"point_dropout": 0.1},
    ):
        assert options(**fields).augments(), fields


@pytest.fixture
def clip_file(tmp_path: Path) -> Path:
    """A landmark file whose every point has z = its row number (x, y random),
    shoulders 2 apart, both hands seen."""
    rng = np.random.default_rng(10)
    parts = {
        key: rng.random((FRAMES, size, 3)).astype(np.float32)
        for key, size in (("pose", 33), ("left_hand", 21), ("right_hand", 21))
    }
    for part in parts.values():
        part[..., 2] = np.arange(FRAMES)[:, None]
    parts["pose"][:, 11, :2] = [1.0, 0.0]
    parts["pose"][:, 12, :2] = [-1.0, 0.0]
    parts["left_hand"][:, :, 0] += 3.0  # the left hand far on the image's right
    path = tmp_path / "clip.npz"
    np.savez(path, **parts)
    return path


def dataset(path: Path, train: bool = True, seed: int = 0, **fields) -> SignDataset:
    """A one-clip dataset over `path` with landmark options `fields`."""
    sample = Sample(
        name="clip",
        start=0,
        length=FRAMES,
        labels={"gloss": 0},
        frame_paths=[],
        landmark_path=path,
    )
    return SignDataset(
        samples=[sample],
        sampling=SamplingOptions(num_segments=64),
        train=train,
        landmarks=options(**fields),
        seed=seed,
    )


def rows(item: dict) -> list[int]:
    """The file rows a raw (not normalised) item was taken from (z = row)."""
    return item["landmarks"][:, 30, 2].round().int().tolist()


def test_dataset_speed_changes_the_clip_length(clip_file: Path) -> None:
    fast = dataset(clip_file, normalize=False, apply_speed=True, speed_range=(2, 2))
    assert rows(fast[0]) == np.round(np.linspace(0, 19, 10)).astype(int).tolist()
    slow = dataset(clip_file, normalize=False, apply_speed=True, speed_range=(0.5, 0.5))
    assert len(slow[0]["landmarks"]) == 40 and set(rows(slow[0])) == set(range(20))
    evaluation = dataset(
        clip_file, train=False, normalize=False, apply_speed=True, speed_range=(2, 2)
    )
    assert rows(evaluation[0]) == list(range(FRAMES)), "no augmentation for eval"


def test_dataset_crop_keeps_a_window_of_at_least_the_min_ratio(clip_file: Path) -> None:
    data = dataset(
        clip_file,
        normalize=False,
        apply_crop=True,
        crop_min_ratio=0.5,
        crop_probability=1.0,
    )
    seen = [rows(data[0]) for _ in range(30)]
    assert all(len(r) >= 10 and r == list(range(r[0], r[0] + len(r))) for r in seen)
    assert len({len(r) for r in seen}) > 1
    never = dataset(clip_file, normalize=False, apply_crop=True, crop_probability=0.0)
    assert rows(never[0]) == list(range(FRAMES))


def test_dataset_frame_dropout(clip_file: Path) -> None:
    data = dataset(clip_file, normalize=False, frame_dropout=0.4)
    seen = [rows(data[0]) for _ in range(20)]
    assert all(len(r) >= FRAMES / 2 and r == sorted(set(r)) for r in seen)
    assert any(len(r) < FRAMES for r in seen)


def test_dataset_mirror_swaps_the_hands(clip_file: Path) -> None:
    plain = dataset(clip_file, train=False, apply_flip=True)[0]
    mirrored = dataset(clip_file, apply_flip=True, flip_probability=1.0)[0]
    for a, b in ((LEFT, RIGHT), (RIGHT, LEFT)):
        np.testing.assert_allclose(
            mirrored["landmarks"][:, a, 0], -plain["landmarks"][:, b, 0], atol=1e-6
        )
        np.testing.assert_allclose(
            mirrored["landmarks"][:, a, 1:], plain["landmarks"][:, b, 1:], atol=1e-6
        )
    # The left hand is on the image's right (x > 0 about the body), mirrored: < 0.
    assert (plain["landmarks"][:, 23, 0] > 0).all()
    assert (mirrored["landmarks"][:, 44, 0] < 0).all()


def test_dataset_affine_moves_present_points_only(clip_file: Path) -> None:
    plain = dataset(clip_file, train=False)[0]
    moved = dataset(clip_file, apply_affine=True, **ROTATION_ONLY)[0]
    assert (moved["landmark_mask"] == plain["landmark_mask"]).all()
    assert (moved["landmarks"][~moved["landmark_mask"]] == 0).all()
    assert not np.allclose(moved["landmarks"], plain["landmarks"])
    pose = slice(11, 17)  # shoulders, elbows, wrists: absolute positions
    np.testing.assert_allclose(
        pairwise(moved["landmarks"][:, pose, :2].numpy()),
        pairwise(plain["landmarks"][:, pose, :2].numpy()),
        atol=1e-5,
    )


def test_dataset_point_dropout_marks_parts_absent(clip_file: Path) -> None:
    item = dataset(clip_file, point_dropout=0.5)[0]
    mask, points = item["landmark_mask"], item["landmarks"]
    for part in (POSE, LEFT, RIGHT):
        dropped = ~mask[:, part].any(1)
        assert 0 < int(dropped.sum()) < FRAMES
        assert (points[dropped][:, part] == 0).all()


def test_dataset_hand_shapes_make_fingers_wrist_relative(clip_file: Path) -> None:
    with_shapes = dataset(clip_file, train=False, hand_shapes=True)[0]["landmarks"]
    without = dataset(clip_file, train=False, hand_shapes=False)[0]["landmarks"]
    np.testing.assert_allclose(with_shapes[:, 23], without[:, 23], atol=1e-6)
    middle = with_shapes[:, 23 + 9, :2].norm(dim=-1)
    np.testing.assert_allclose(middle.numpy(), 1.0, rtol=1e-4)
    assert not np.allclose(with_shapes[:, 24:44], without[:, 24:44])


def test_dataset_augmentations_are_random_per_clip(clip_file: Path) -> None:
    data = dataset(
        clip_file,
        apply_affine=True,
        apply_speed=True,
        apply_crop=True,
        crop_probability=1.0,
        point_dropout=0.2,
    )
    first, second = data[0], data[0]
    assert first["landmarks"].shape != second["landmarks"].shape or not np.allclose(
        first["landmarks"], second["landmarks"]
    )
    assert math.isfinite(float(first["landmarks"].abs().max()))
