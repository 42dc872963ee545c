"""Tests for data_preprocessing.make_sample_dataset."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_preprocessing.make_sample_dataset import (
    GLOSS_SPECS,
    HAMNOSYS_CLASS_COUNTS,
    LOCATIONS_X,
    LOCATIONS_Y,
    PALM_COLOURS,
    main,
    make_sample_dataset,
)
from utils.errors import UserError

HAMNOSYS_HEADER = (
    "name start end symmetry_operator hand_shape_base_form hand_shape_thumb_position "
    "hand_shape_bending hand_position_finger_direction hand_position_palm_orientation "
    "hand_location_x hand_location_y"
)


def _rows(path: Path) -> tuple[str, list[list[str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0], [line.split() for line in lines[1:]]


def _frames(root: Path, name: str) -> list[np.ndarray]:
    properties = json.loads((root / name / f"{name}_properties.json").read_text())
    return [
        np.asarray(Image.open(root / name / f"{name}_{i}.jpg"), dtype=np.float32)
        for i in range(properties["Frames"])
    ]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module", name="small")
def fixture_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset with the default glosses, fewer clips and smaller frames."""
    root = tmp_path_factory.mktemp("small")
    summary = make_sample_dataset(root, clips_per_gloss=6, size=48)
    assert summary["glosses"] == 8 and summary["clips"] == 48
    return root


def test_default_layout_and_headers(tmp_path: Path) -> None:
    """The default run writes the HearAI layout, headers and frame ranges."""
    summary = make_sample_dataset(tmp_path)
    assert summary["glosses"] == 8
    assert summary["clips"] == 8 * 12

    header, gloss_rows = _rows(tmp_path / "test_gloss.txt")
    assert header == "name start end gloss"
    assert len(gloss_rows) == summary["clips"]
    ham_header, ham_rows = _rows(tmp_path / "test_hamnosys.txt")
    assert ham_header == HAMNOSYS_HEADER
    assert " ".join(HAMNOSYS_CLASS_COUNTS) == HAMNOSYS_HEADER.split(" ", 3)[3]
    assert [row[:3] for row in ham_rows] == [row[:3] for row in gloss_rows]
    names_header, names = _rows(tmp_path / "glosses.txt")
    assert names_header == "id gloss"
    assert names == [[str(i), spec.word] for i, spec in enumerate(GLOSS_SPECS[:8])]

    total_frames = 0
    starts, ends = [], []
    for name, start, end, gloss in gloss_rows:
        gloss_id = int(gloss)
        assert name.startswith(f"{GLOSS_SPECS[gloss_id].word}_")
        assert len(name.rsplit("_", 1)[1]) == 3
        properties = json.loads(
            (tmp_path / name / f"{name}_properties.json").read_text(encoding="utf-8")
        )
        n_frames = properties["Frames"]
        assert properties == {
            "File": name,
            "Frames": n_frames,
            "FPS": 25.0,
            "Width": 80,
            "Height": 80,
        }
        assert 10 <= n_frames <= 20
        frames = sorted(path.name for path in (tmp_path / name).glob("*.jpg"))
        assert frames == sorted(f"{name}_{i}.jpg" for i in range(n_frames))
        assert 0 <= int(start) <= int(end) <= n_frames - 1
        starts.append(int(start))
        ends.append(n_frames - 1 - int(end))
        total_frames += n_frames
    assert summary["frames"] == total_frames
    assert any(starts) and not all(starts)  # some clips have leading unused frames
    assert any(ends) and not all(ends)  # ... and some have trailing ones

    with Image.open(tmp_path / "HOUSE_000" / "HOUSE_000_0.jpg") as image:
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        assert image.size == (80, 80)


def test_labels_within_class_counts(small: Path) -> None:
    """Gloss ids and HamNoSys labels are in range and match the gloss specs."""
    _, gloss_rows = _rows(small / "test_gloss.txt")
    _, ham_rows = _rows(small / "test_hamnosys.txt")
    counts = list(HAMNOSYS_CLASS_COUNTS.values())
    for gloss_row, ham_row in zip(gloss_rows, ham_rows):
        gloss_id = int(gloss_row[3])
        assert 0 <= gloss_id < 8
        labels = [int(value) for value in ham_row[3:]]
        assert len(labels) == len(counts)
        assert all(0 <= label < count for label, count in zip(labels, counts))
        assert tuple(labels) == GLOSS_SPECS[gloss_id].labels()


def test_gloss_specs_are_distinct_and_every_head_varies() -> None:
    """Glosses differ in several heads and every head is a real classification."""
    words = [spec.word for spec in GLOSS_SPECS]
    assert len(set(words)) == len(words)
    for first, second in itertools.combinations(GLOSS_SPECS, 2):
        differing = sum(a != b for a, b in zip(first.labels(), second.labels()))
        assert differing >= 3, (first.word, second.word)
    counts = list(HAMNOSYS_CLASS_COUNTS.values())
    for spec in GLOSS_SPECS:
        assert all(0 <= v < c for v, c in zip(spec.labels(), counts))
        if spec.symmetry_operator:  # the mirrored hand must not cover the other
            assert LOCATIONS_X[spec.hand_location_x] != 0.5
    for head in range(len(counts)):
        assert len({spec.labels()[head] for spec in GLOSS_SPECS[:2]}) >= 2
        assert len({spec.labels()[head] for spec in GLOSS_SPECS[:8]}) >= 3


def test_same_seed_is_identical_and_other_seed_differs(tmp_path: Path) -> None:
    """The seed alone decides the files."""
    options = {"glosses": 3, "clips_per_gloss": 2, "size": 40}
    make_sample_dataset(tmp_path / "a", seed=5, **options)
    make_sample_dataset(tmp_path / "b", seed=5, **options)
    make_sample_dataset(tmp_path / "c", seed=6, **options)
    first, second, other = (_tree(tmp_path / d) for d in "abc")
    assert first == second
    assert first != other
    differing = [path for path in first if first[path] != other.get(path)]
    assert any(path.endswith(".jpg") for path in differing)


def test_rerun_overwrites_stale_frames(tmp_path: Path) -> None:
    """Re-running over old output leaves exactly a fresh run's files."""
    options = {"glosses": 2, "clips_per_gloss": 2, "size": 32}
    make_sample_dataset(tmp_path / "ref", **options)
    stale = tmp_path / "out" / "HOUSE_000" / "HOUSE_000_99.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    make_sample_dataset(tmp_path / "out", seed=3, **options)
    make_sample_dataset(tmp_path / "out", **options)
    assert not stale.exists()
    assert _tree(tmp_path / "out") == _tree(tmp_path / "ref")


def test_argument_validation(tmp_path: Path) -> None:
    """Out-of-range arguments raise a UserError before anything is written."""
    for bad in (
        {"glosses": 1},
        {"glosses": len(GLOSS_SPECS) + 1},
        {"clips_per_gloss": 1},
        {"size": 31},
        {"seed": -1},
    ):
        with pytest.raises(UserError):
            make_sample_dataset(tmp_path / "x", **bad)
    assert not (tmp_path / "x").exists()


def test_cli_writes_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The CLI writes the dataset, prints a summary and returns 0."""
    out = tmp_path / "data"
    argv = [str(out), "--glosses", "2", "--clips_per_gloss", "2", "--size", "32"]
    assert main(argv + ["--seed", "1"]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("wrote 4 clips (")
    assert stdout.rstrip().endswith(f"of 2 glosses to {out}")
    assert (out / "test_gloss.txt").is_file()
    with Image.open(out / "TREE_001" / "TREE_001_0.jpg") as image:
        assert image.size == (32, 32)


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Unusable output dirs and bad arguments give one error line and 2."""
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    assert main([str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert main([str(a_file / "below")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main([str(tmp_path / "x"), "--glosses", "99"]) == 2
    assert "glosses" in capsys.readouterr().err


def test_hand_colour_and_mirror_are_visible(small: Path) -> None:
    """The palm colour, location and mirrored hand can be read off a frame."""
    _, gloss_rows = _rows(small / "test_gloss.txt")
    for name, start, end, gloss in gloss_rows[::6]:
        spec = GLOSS_SPECS[int(gloss)]
        frames = _frames(small, name)
        middle = frames[(int(start) + int(end)) // 2]
        colour = np.array(PALM_COLOURS[spec.hand_position_palm_orientation])
        near = np.abs(middle - colour).max(axis=2) < 40
        assert near.sum() >= 8, name  # the hand is drawn in its palm colour
        cols = np.nonzero(near)[1] / middle.shape[1]
        rows = np.nonzero(near)[0] / middle.shape[0]
        assert abs(np.median(cols) - LOCATIONS_X[spec.hand_location_x]) < 0.15
        assert abs(np.median(rows) - LOCATIONS_Y[spec.hand_location_y]) < 0.15
        shade = 0.6 * colour
        mirrored = (np.abs(middle - shade).max(axis=2) < 30).sum() >= 8
        assert mirrored == bool(spec.symmetry_operator), name


def _features(root: Path, name: str, start: int, end: int) -> np.ndarray:
    """Downsampled mean frames of the two halves of the sign, background removed.

    The background colour (each clip's median colour) is subtracted so that the
    per-clip background jitter does not swamp the small hands.
    """
    frames = _frames(root, name)[start : end + 1]
    half = len(frames) // 2
    parts = []
    for chunk in (frames[:half], frames[half:]):
        mean = np.mean(chunk, axis=0)
        side = mean.shape[0] // 4
        pooled = mean[: side * 4, : side * 4].reshape(side, 4, side, 4, 3).mean((1, 3))
        parts.append(pooled - np.median(pooled.reshape(-1, 3), axis=0))
    return np.concatenate(parts).ravel()


def test_glosses_are_learnable_by_nearest_centroid(small: Path) -> None:
    """Mean frames separate the glosses well enough for a nearest centroid."""
    _, gloss_rows = _rows(small / "test_gloss.txt")
    features = np.stack(
        [_features(small, name, int(s), int(e)) for name, s, e, _ in gloss_rows]
    )
    labels = np.array([int(row[3]) for row in gloss_rows])
    clip_index = np.array([int(row[0].rsplit("_", 1)[1]) for row in gloss_rows])
    train, test = clip_index % 2 == 0, clip_index % 2 == 1
    centroids = np.stack([features[train & (labels == g)].mean(0) for g in range(8)])

    # Every two glosses' mean images differ clearly somewhere (in grey levels),
    # and by more than clips of one gloss differ from their own mean.
    within = np.mean(
        [np.linalg.norm(f - centroids[g]) for f, g in zip(features, labels)]
    )
    for first, second in itertools.combinations(range(8), 2):
        difference = centroids[first] - centroids[second]
        assert np.abs(difference).max() > 40, (first, second)
        assert np.linalg.norm(difference) > 1.2 * within, (first, second)

    distances = np.linalg.norm(features[test][:, None] - centroids[None], axis=2)
    accuracy = np.mean(distances.argmin(1) == labels[test])
    assert accuracy > 0.8
