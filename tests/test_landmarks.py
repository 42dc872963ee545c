"""Landmarks: reading .pose/.npz, normalising, flipping, and training on real poses."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import csv
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import train
import datasets.landmarks
from datasets.landmarks import (
    COMPONENT_SIZES,
    LandmarkMemory,
    flip_horizontally,
    mirror_permutation,
    normalise,
    read_landmarks,
)
from utils.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FINGERSPELLING = SHARED / "poses" / "fingerspelling"
AUTSL_POSE = SHARED / "video" / "autsl_sample" / "signer0_sample1000.pose"
needs_shared = pytest.mark.skipif(
    not FINGERSPELLING.is_dir(), reason="../shared/data (real poses) is not present"
)
DEFAULT = ["pose", "left_hand", "right_hand"]
K = sum(COMPONENT_SIZES[c] for c in DEFAULT)


def write_npz(path: Path, frames: int, rng: np.random.Generator, **overrides) -> None:
    """A MediaPipe-like landmark file with random points and shoulders 2 units apart."""
    parts = {
        "pose": rng.normal(size=(frames, 33, 3)).astype(np.float32),
        "face": rng.normal(size=(frames, 468, 3)).astype(np.float32),
        "left_hand": rng.normal(size=(frames, 21, 3)).astype(np.float32),
        "right_hand": rng.normal(size=(frames, 21, 3)).astype(np.float32),
    }
    parts["pose"][:, 11] = [1.0, 0.0, 0.0]
    parts["pose"][:, 12] = [-1.0, 0.0, 0.0]
    parts.update(overrides)
    np.savez(path, **parts)


@needs_shared
@pytest.mark.parametrize("layout", ["586", "543"])
def test_reads_pose_files_of_both_layouts(layout: str) -> None:
    path = (
        AUTSL_POSE if layout == "543" else next((FINGERSPELLING / "ase").glob("*.pose"))
    )
    points, shoulders, fps = read_landmarks(path, DEFAULT + ["face"])
    assert points.shape[1:] == (K + 468, 3)
    assert shoulders.shape == (points.shape[0], 2, 3)
    assert fps and fps > 0
    left = points[:, 23 : 23 + 21]
    if layout == "586":  # the left hand is absent in these files: NaN, not a crash
        assert np.isnan(left).all()
    assert np.isfinite(points[:, :23]).mean() > 0.9  # the upper body is mostly seen


def test_npz_components_and_missing_parts(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    rng = np.random.default_rng(0)
    write_npz(path, 5, rng)
    points, _, _ = read_landmarks(path, ["right_hand", "pose"])
    assert points.shape == (5, 21 + 23, 3)
    with np.load(path) as data:
        np.testing.assert_array_equal(points[:, :21], data["right_hand"])
    np.savez(tmp_path / "b.npz", pose=np.zeros((4, 33, 3), np.float32))
    points, _, _ = read_landmarks(tmp_path / "b.npz", DEFAULT)
    assert np.isnan(points[:, 23:]).all(), "absent hands are NaN"
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="c.npz: cannot read landmarks"):
        read_landmarks(tmp_path / "c.npz", DEFAULT)


def test_npz_with_none_of_the_components_gives_nan_clips_of_its_length(
    tmp_path: Path,
) -> None:
    path = tmp_path / "face_only.npz"
    np.savez(path, face=np.zeros((6, 468, 3), np.float32), fps=np.array(25.0))
    points, shoulders, fps = read_landmarks(path, ["left_hand"])
    assert points.shape == (6, 21, 3) and np.isnan(points).all()
    assert shoulders is None and fps == 25.0


def test_landmark_memory_reads_each_file_once_within_its_budget(
    tmp_path: Path, monkeypatch
) -> None:
    rng = np.random.default_rng(0)
    paths = [tmp_path / f"{name}.npz" for name in "abc"]
    for path in paths:
        write_npz(path, 10, rng)
    reads = []
    original = datasets.landmarks.read_landmarks

    def counting(path, components):
        reads.append(path)
        return original(path, components)

    monkeypatch.setattr(datasets.landmarks, "read_landmarks", counting)
    one_file = 10 * (K + 2) * 3 * 4  # points and shoulders, float32
    memory = LandmarkMemory(DEFAULT, budget_bytes=2 * one_file)
    first = memory.read(paths[0])
    for _ in range(3):
        for path in paths:
            points, shoulders, fps = memory.read(path)
            expected = original(path, DEFAULT)
            np.testing.assert_array_equal(points, expected[0])
            np.testing.assert_array_equal(shoulders, expected[1])
            assert fps == expected[2]
    assert memory.read(paths[0])[0] is first[0] and not first[0].flags.writeable
    assert reads.count(paths[0]) == reads.count(paths[1]) == 1, "kept in memory"
    assert reads.count(paths[2]) == 3, "past the budget: read every time"
    assert len(memory) == 2 and memory.used_bytes == 2 * one_file
    copied = pickle.loads(pickle.dumps(memory))  # what a loader worker receives
    assert len(copied) == 0 and copied.used_bytes == 0
    assert copied.budget_bytes == memory.budget_bytes
    nothing = LandmarkMemory(DEFAULT, budget_bytes=0)
    nothing.read(paths[0])
    assert len(nothing) == 0


def test_normalise_centres_on_shoulders_and_masks_absent_points() -> None:
    points = np.zeros((2, 3, 3), np.float32)
    points[:, 0] = [4.0, 2.0, 0.0]
    points[:, 1] = [6.0, 2.0, 0.0]
    points[1, 2] = np.nan
    shoulders = np.stack([points[:, 0], points[:, 1]], axis=1)
    normalised, present = normalise(points, shoulders)
    np.testing.assert_allclose(normalised[0, 0], [-0.5, 0.0, 0.0])
    np.testing.assert_allclose(normalised[0, 1], [0.5, 0.0, 0.0])
    assert present.tolist() == [[True, True, True], [True, True, False]]
    assert np.isfinite(normalised).all() and (normalised[1, 2] == 0).all()


def test_flip_swaps_hands_and_mirrors_x() -> None:
    rng = np.random.default_rng(1)
    points = rng.normal(size=(3, K, 3)).astype(np.float32)
    present = rng.random((3, K)) > 0.2
    order = mirror_permutation(DEFAULT)
    flipped, flipped_present = flip_horizontally(points, present, order)
    left, right = slice(23, 44), slice(44, 65)
    np.testing.assert_allclose(flipped[:, left, 0], -points[:, right, 0])
    np.testing.assert_allclose(flipped[:, right, 1], points[:, left, 1])
    np.testing.assert_allclose(flipped[:, 11], points[:, 12] * [-1, 1, 1])
    assert (flipped_present[:, left] == present[:, right]).all()
    twice, _ = flip_horizontally(flipped, flipped_present, order)
    np.testing.assert_allclose(twice, points)


def _fingerspelling_dataset(root: Path, language: str = "ase") -> int:
    """Lay out one language's letters as a dataset; val = the same poses (fit test)."""
    rows = list(csv.DictReader((FINGERSPELLING / "index.csv").open(encoding="utf-8")))
    rows = [row for row in rows if row["signed_language"] == language]
    glosses = sorted({row["glosses"] for row in rows})
    lines = ["name start end gloss split"]
    for row in rows:
        source = FINGERSPELLING / row["path"]
        frames, _, _ = read_landmarks(source, ["pose"])
        label = glosses.index(row["glosses"])
        for split in ("train", "val"):
            name = f"{Path(row['path']).stem}_{split}"
            (root / name).mkdir(parents=True)
            shutil.copy(source, root / name / f"{name}.pose")
            lines.append(f"{name} 0 {len(frames) - 1} {label} {split}")
    (root / "test_gloss.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(glosses)


@needs_shared
def test_landmark_only_training_fits_real_fingerspelling(
    tiny_config, write_config, tmp_path: Path
) -> None:
    """26 ASL letters from real MediaPipe poses: top-1 >= 0.95 within 300 steps."""
    root = tmp_path / "ase"
    letters = _fingerspelling_dataset(root)
    assert letters == 26
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["data_path"] = str(root)
    config["train_parameters"].update(
        classification_mode="gloss",
        landmarks=True,
        epochs=75,  # 4 steps per epoch: 300 optimizer steps
        batch_size=8,
        num_segments=8,
        lr=1e-3,
        warmup_steps=10,
    )
    config["feature_extractor"] = {
        "name": "landmarks_extractor",
        "representation_size": 128,
    }
    config["transformer"].update(
        output_size=128, feedforward_size=256, dropout_rate=0.0
    )
    config["heads"]["gloss"]["gloss"]["num_class"] = "auto"
    assert train.main(["--model_config_path", str(write_config(config))]) == 0
    save = Path(config["general_parameters"]["path_to_save"])
    metrics = json.loads((save / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["heads"]["gloss"]["top1"] >= 0.95, metrics
    logged = list(csv.DictReader(next((save / "logs").rglob("metrics.csv")).open()))
    train_top1 = [
        float(r["train/gloss/top1_epoch"])
        for r in logged
        if r.get("train/gloss/top1_epoch")
    ]
    assert max(train_top1) >= 0.95


@pytest.fixture
def landmark_root(sample_root: Path, tmp_path: Path) -> Path:
    """The tiny sample dataset with a landmark file beside every clip's frames."""
    root = tmp_path / "with_landmarks"
    shutil.copytree(sample_root, root)
    rng = np.random.default_rng(2)
    for folder in root.iterdir():
        if folder.is_dir():
            frames = len(list(folder.glob("*.jpg")))
            write_npz(folder / f"{folder.name}.npz", frames, rng)
    return root


def test_frames_and_landmarks_fused_train(
    tiny_config, write_config, landmark_root
) -> None:
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["data_path"] = str(landmark_root)
    config["train_parameters"].update(landmarks=True, fast_dev_run=True)
    config["landmarks_parameters"] = {"apply_flip": True, "flip_probability": 1.0}
    assert train.main(["--model_config_path", str(write_config(config))]) == 0


def test_missing_landmark_files_are_reported_together(
    tiny_config, write_config, sample_root, capsys
) -> None:
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["landmarks"] = True
    assert train.main(["--model_config_path", str(write_config(config))]) == 2
    err = capsys.readouterr().err
    assert err.count("no landmarks for") >= 3
    assert str(sample_root) in err
