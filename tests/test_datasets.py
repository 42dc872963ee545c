"""The data path: annotation files, frame folders, sampling, clips, splits, loaders."""

from __future__ import annotations

import io
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from helpers import HEARAI_TITLES

from config.hamnosys_heads import HEAD_ORDER as HAMNOSYS_HEADS
from config.loader import parse_config
from config.schema import AugmentationsParameters, SignpipeConfig
from datasets.index import (
    Sample,
    index_samples,
    list_frames,
    read_root_annotations,
    resolve_num_classes,
)
from datasets.sampling import sample_indices
from datasets.sampling import SamplingOptions
from datasets.sign_data import split_samples
from datasets.sign_dataset import SignDataset, collate_clips
from datasets.transforms import build_clip_transform
from models.heads import IGNORE_INDEX
from training.datamodule import SignDataModule
from utils.annotations import check_label_ranges, read_annotation_file
from utils.errors import DataError

# HAMNOSYS_HEADS: the HamNoSys heads in the documented column order
# (docs/data/annotations.md; test_hamnosys pins HEAD_ORDER to it), HEARAI_TITLES
# their HearAI titles.
HEARAI_HEADER = "name start end " + " ".join(f'"{t}"' for t in HEARAI_TITLES)
SHADE = 12  # frame <idx> is painted grey level idx * SHADE, so a clip shows its frames


def only(items: list):
    """The single element of a list (failing the test otherwise)."""
    assert len(items) == 1, items
    return items[0]


def write_text(path: Path, *lines: str) -> Path:
    """Write lines to a file (creating its folder) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_frames(
    root: Path, name: str, indices, *, size: int = 16, suffix: str = ".jpg"
) -> Path:
    """Write `<root>/<name>/<name>_<idx><suffix>` frames, each a uniform grey."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for index in indices:
        shade = (index * SHADE) % 256
        image = Image.new("RGB", (size, size), (shade, shade, shade))
        image.save(folder / f"{name}_{index}{suffix}")
    return folder


def frame_numbers(clip: torch.Tensor) -> list[int]:
    """Which frames a `(T, C, H, W)` clip of `write_frames` frames shows."""
    return [round(frame.float().mean().item() / SHADE) for frame in clip]


def make_config(modes, heads: dict | None = None, **general) -> SignpipeConfig:
    """A validated config for the given classification mode(s)."""
    raw: dict = {
        "train_parameters": {"classification_mode": modes},
        "general_parameters": general,
    }
    if heads is not None:
        raw["heads"] = heads
    return parse_config(raw)


def augmentations(**overrides) -> AugmentationsParameters:
    """Small resize/crop sizes for 16x16 test frames."""
    values = {"resize_size": 12, "center_crop_size": 10} | overrides
    return AugmentationsParameters(**values)


def index_frames(rows, root: Path) -> list[Sample]:
    """Samples (frames only, no landmarks) for annotation rows."""
    return index_samples(rows, root, frames=True, landmarks=False)


def root_rows(config: SignpipeConfig, root: Path):
    """The joined annotation rows of the config's first dataset root."""
    annotation_file = config.general_parameters.annotation_files()[0]
    return read_root_annotations(config, root, annotation_file)


def clip_dataset(
    samples: list[Sample],
    *,
    train: bool,
    num_segments: int = 4,
    time: float | None = None,
    default_fps: float | None = None,
    **options,
) -> SignDataset:
    """A frames dataset with the given temporal sampling."""
    sampling = SamplingOptions(num_segments, time=time, default_fps=default_fps)
    return SignDataset(samples=samples, sampling=sampling, train=train, **options)


# --- annotation files -----------------------------------------------------------------


def test_header_with_our_head_names_in_any_order(tmp_path: Path) -> None:
    shuffled = HAMNOSYS_HEADS[::-1]
    path = write_text(
        tmp_path / "ann.txt",
        "name start end " + " ".join(shuffled),
        "clip 2 9 " + " ".join(str(i) for i in range(8)),
    )
    row = only(read_annotation_file(path, HAMNOSYS_HEADS))
    assert (row.name, row.start, row.end) == ("clip", 2, 9)
    assert row.labels == {head: i for i, head in enumerate(shuffled)}
    assert row.source == f"{path}:2"


def test_hearai_header_with_quoted_long_names(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ann.txt", HEARAI_HEADER, "10 7 17 0 5 1 0 0 6 0 4")
    row = only(read_annotation_file(path, HAMNOSYS_HEADS))
    assert (row.name, row.start, row.end) == ("10", 7, 17)
    assert row.labels == dict(zip(HAMNOSYS_HEADS, [0, 5, 1, 0, 0, 6, 0, 4]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hearai_header_in_shuffled_column_order(tmp_path: Path, seed: int) -> None:
    order = list(range(8))
    random.Random(seed).shuffle(order)
    header = "name start end " + " ".join(f'"{HEARAI_TITLES[i]}"' for i in order)
    # Head i carries label 10 + i, so a head read from the wrong column shows.
    row_text = "s1 0 4 " + " ".join(str(10 + i) for i in order)
    path = write_text(tmp_path / "ann.txt", header, row_text)
    row = only(read_annotation_file(path, HAMNOSYS_HEADS))
    assert row.labels == {head: 10 + i for i, head in enumerate(HAMNOSYS_HEADS)}


def test_header_naming_only_some_heads_is_an_error(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "ann.txt",
        "name start end symmetry_operator hand_shape_base_form",
        "a 0 3 1 2",
    )
    with pytest.raises(
        DataError, match=rf"{re.escape(str(path))}:1:.*hand_shape_bending"
    ):
        read_annotation_file(path, HAMNOSYS_HEADS)


def test_headerless_files_use_the_documented_order(tmp_path: Path) -> None:
    hamnosys = write_text(
        tmp_path / "test_hamnosys.txt",
        "1 0 7 0 1 1 1 1 1 1 1",
        "2 3 9 0 1 2 3 4 5 6 7",
    )
    rows = read_annotation_file(hamnosys, HAMNOSYS_HEADS)
    assert len(rows) == 2
    first, second = rows[0], rows[1]
    assert (first.name, first.start, first.end) == ("1", 0, 7)
    assert first.labels == dict(zip(HAMNOSYS_HEADS, [0, 1, 1, 1, 1, 1, 1, 1]))
    assert second.labels == dict(zip(HAMNOSYS_HEADS, range(8)))
    gloss = write_text(tmp_path / "test_gloss.txt", "1 0 7 8")
    row = only(read_annotation_file(gloss, ["gloss"]))
    assert (row.name, row.start, row.end, row.labels) == ("1", 0, 7, {"gloss": 8})


def test_float_and_missing_labels(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "ann.txt",
        "a 0 3 5.0",
        "b 0 3 -1",
        "c 0 3 nan",
        "d 0 3 NaN",
        "e 0 3 0",
    )
    labels = [row.labels["gloss"] for row in read_annotation_file(path, ["gloss"])]
    assert labels == [5, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX, 0]
    assert IGNORE_INDEX == -100


def test_float_minus_one_is_missing(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ann.txt", "a 0 3 2.0", "b 0 3 -1.0")
    rows = read_annotation_file(path, ["gloss"])
    assert [row.labels["gloss"] for row in rows] == [2, IGNORE_INDEX]


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [
        ("b 0 3", "expected at least 4 columns"),
        ("b 0 3 abc", "head gloss: label 'abc' is not a number"),
        ("b 5 3 1", "start 5 must be >= 0 and <= end 3"),
        ("b 0 3 2.5", "head gloss: label '2.5' is not a class index"),
        ("b 0 x 1", "start and end must be frame numbers"),
    ],
)
def test_bad_line_names_file_and_line(
    tmp_path: Path, bad_line: str, fragment: str
) -> None:
    path = write_text(tmp_path / "ann.txt", "a 0 3 1", bad_line, "c 0 3 1")
    with pytest.raises(DataError) as caught:
        read_annotation_file(path, ["gloss"])
    message = str(caught.value)
    assert message.startswith(f"{path}:2: ")
    assert fragment in message
    assert f"{path}:1" not in message and f"{path}:3" not in message


def test_all_bad_lines_are_reported_together(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "ann.txt",
        "name start end " + " ".join(HAMNOSYS_HEADS),
        "ok 0 3 0 0 0 0 0 0 0 0",
        "short 0 3 0 0",
        "word 0 3 0 0 0 0 0 0 0 big",
        "ok2 0 3 0 0 0 0 0 0 0 0",
        "backwards 9 3 0 0 0 0 0 0 0 0",
    )
    with pytest.raises(DataError) as caught:
        read_annotation_file(path, HAMNOSYS_HEADS)
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        f"{path}:3",
        f"{path}:4",
        f"{path}:6",
    ]
    assert "head hand_location_y" in lines[1]


def test_a_name_listed_twice_is_an_error(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ann.txt", "a 0 3 1", "b 0 3 1", "a 0 3 2")
    with pytest.raises(DataError) as caught:
        read_annotation_file(path, ["gloss"])
    message = str(caught.value)
    assert message.startswith(f"{path}:3: ")
    assert "sample a" in message and f"{path}:1" in message


def test_comments_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "ann.txt",
        "# exported from the corpus",
        "",
        "name start end gloss",
        "   ",
        "a 0 3 1",
        "  # a note",
        "b 1 4 2",
    )
    rows = read_annotation_file(path, ["gloss"])
    assert [(row.name, row.labels["gloss"]) for row in rows] == [("a", 1), ("b", 2)]
    assert [row.source for row in rows] == [f"{path}:5", f"{path}:7"]


def test_label_out_of_range_names_file_line_and_head(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "ann.txt",
        "name start end " + " ".join(HAMNOSYS_HEADS),
        "a 0 3 0 0 0 0 0 0 0 0",
        "b 0 3 0 0 0 0 0 0 5 -1",
    )
    rows = read_annotation_file(path, HAMNOSYS_HEADS)
    counts = dict.fromkeys(HAMNOSYS_HEADS, 5)
    with pytest.raises(DataError) as caught:
        check_label_ranges(rows, counts)
    (line,) = str(caught.value).splitlines()
    assert line.startswith(f"{path}:3: head hand_location_x: label 5 ")
    assert "[0, 5)" in line
    check_label_ranges(rows, counts | {"hand_location_x": 6})


def test_missing_and_empty_annotation_files(tmp_path: Path) -> None:
    missing = tmp_path / "test_gloss.txt"
    with pytest.raises(DataError, match="annotation file not found") as caught:
        read_annotation_file(missing, ["gloss"])
    assert str(missing) in str(caught.value)
    for lines in ([""], ["name start end gloss"], ["# only a comment", ""]):
        empty = write_text(tmp_path / "empty.txt", *lines)
        with pytest.raises(DataError, match="no samples") as caught:
            read_annotation_file(empty, ["gloss"])
        assert str(empty) in str(caught.value)


def test_first_line_with_float_frames_is_not_silently_dropped(
    tmp_path: Path,
) -> None:
    path = write_text(tmp_path / "ann.txt", "a 0.0 7.0 1", "b 0 7 1")
    try:
        rows = read_annotation_file(path, ["gloss"])
    except DataError as error:
        assert f"{path}:1" in str(error)
    else:
        assert [row.name for row in rows] == ["a", "b"]


# --- frame folders --------------------------------------------------------------------


def test_list_frames_numeric_any_image_type_ignores_other_files(
    tmp_path: Path,
) -> None:
    folder = write_frames(tmp_path, "x", [2, 10])
    write_frames(tmp_path, "x", [1], suffix=".png")
    write_frames(tmp_path, "x", [3], suffix=".JPG")
    for other in [
        "x_properties.json",
        "x.npz",
        "x_4.txt",
        "y_5.jpg",
        "x_6_b.jpg",
        "xx_7.jpg",
        "notes.jpg",
    ]:
        (folder / other).write_bytes(b"")
    frames = list_frames(folder, "x")
    assert sorted(frames) == [1, 2, 3, 10]
    assert [frames[i].name for i in sorted(frames)] == [
        "x_1.png",
        "x_2.jpg",
        "x_3.JPG",
        "x_10.jpg",
    ]


def test_index_samples_takes_start_to_end_inclusive(tmp_path: Path) -> None:
    write_frames(tmp_path, "x", range(13))
    annotations = write_text(tmp_path / "ann.txt", "x 2 10 1")
    sample = only(index_frames(read_annotation_file(annotations, ["gloss"]), tmp_path))
    assert [path.name for path in sample.frame_paths] == [
        f"x_{i}.jpg" for i in range(2, 11)
    ]
    assert sample.labels == {"gloss": 1}
    assert sample.fps is None
    write_text(tmp_path / "x" / "x_properties.json", json.dumps({"FPS": 25.0}))
    sample = only(index_frames(read_annotation_file(annotations, ["gloss"]), tmp_path))
    assert sample.fps == 25.0


def test_index_samples_reports_missing_folders_and_frames_together(
    tmp_path: Path,
) -> None:
    write_frames(tmp_path, "gappy", [0, 1, 3, 4])
    write_frames(tmp_path, "short", range(5))
    write_frames(tmp_path, "fine", range(5))
    annotations = write_text(
        tmp_path / "ann.txt",
        "fine 0 4 0",
        "ghost 0 4 1",
        "gappy 0 4 2",
        "short 0 5 0",
    )
    with pytest.raises(DataError) as caught:
        index_frames(read_annotation_file(annotations, ["gloss"]), tmp_path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{annotations}:2: ")
    assert str(tmp_path / "ghost") in lines[0] and "not found" in lines[0]
    assert lines[1].startswith(f"{annotations}:3: ")
    assert "lacks frames 2 " in lines[1]
    assert lines[2].startswith(f"{annotations}:4: ")
    assert "lacks frames 5 " in lines[2]


# --- several annotation files ---------------------------------------------------------


def test_joint_mode_joins_gloss_and_hamnosys_on_name(tmp_path: Path) -> None:
    write_text(
        tmp_path / "test_gloss.txt", "name start end gloss", "a 0 3 1", "b 0 5 2"
    )
    write_text(
        tmp_path / "test_hamnosys.txt",
        HEARAI_HEADER,
        "c 1 4 1 1 1 1 1 1 1 1",
        "b 0 5 0 1 2 3 4 5 6 7",
    )
    config = make_config(["gloss", "hamnosys"])
    rows = {row.name: row for row in root_rows(config, tmp_path)}
    assert set(rows) == {"a", "b", "c"}
    heads = ["gloss", *HAMNOSYS_HEADS]
    assert list(rows["b"].labels) == heads
    assert rows["b"].labels == dict(zip(heads, [2, 0, 1, 2, 3, 4, 5, 6, 7]))
    assert rows["a"].labels == {"gloss": 1} | dict.fromkeys(HAMNOSYS_HEADS, -100)
    assert rows["c"].labels == {"gloss": -100} | dict.fromkeys(HAMNOSYS_HEADS, 1)
    assert (rows["c"].start, rows["c"].end) == (1, 4)


def test_joint_mode_needs_both_files(tmp_path: Path) -> None:
    write_text(tmp_path / "test_gloss.txt", "a 0 3 1")
    config = make_config(["gloss", "hamnosys"])
    with pytest.raises(DataError, match="test_hamnosys.txt: annotation file not"):
        root_rows(config, tmp_path)


def test_joint_mode_frame_mismatch_names_both_places(tmp_path: Path) -> None:
    gloss = write_text(tmp_path / "test_gloss.txt", "a 0 3 1", "b 0 5 2")
    hamnosys = write_text(
        tmp_path / "test_hamnosys.txt",
        "a 0 3 0 0 0 0 0 0 0 0",
        "b 1 5 0 0 0 0 0 0 0 0",
    )
    config = make_config(["gloss", "hamnosys"])
    with pytest.raises(DataError) as caught:
        root_rows(config, tmp_path)
    message = str(caught.value)
    assert f"{hamnosys}:2" in message and f"{gloss}:2" in message
    assert "sample b" in message and "1-5" in message and "0-5" in message


def test_single_annotation_file_holds_every_head(tmp_path: Path) -> None:
    titles = ['"Dom hand - Handlocation - Frontal plane t/b"', "gloss"] + [
        f'"{title}"' for title in HEARAI_TITLES[:-1]
    ]
    write_text(
        tmp_path / "labels" / "all.txt",
        "name start end " + " ".join(titles),
        "a 0 3 37 9 0 1 2 3 4 5 6",
    )
    expected = {"gloss": 9} | dict(zip(HAMNOSYS_HEADS, [0, 1, 2, 3, 4, 5, 6, 37]))
    relative = make_config(["gloss", "hamnosys"], annotation_file="labels/all.txt")
    row = only(root_rows(relative, tmp_path))
    assert row.labels == expected
    absolute = make_config(
        ["gloss", "hamnosys"], annotation_file=str(tmp_path / "labels" / "all.txt")
    )
    row = only(root_rows(absolute, tmp_path / "elsewhere"))
    assert row.labels == expected


def test_joint_mode_range_error_names_the_file_holding_the_label(
    tmp_path: Path,
) -> None:
    write_text(tmp_path / "test_gloss.txt", "a 0 3 1", "b 0 3 0")
    hamnosys = write_text(
        tmp_path / "test_hamnosys.txt",
        "b 0 3 0 0 0 0 0 0 0 0",
        "a 0 3 0 0 0 0 0 0 0 99",
    )
    config = make_config(["gloss", "hamnosys"])
    rows = root_rows(config, tmp_path)
    with pytest.raises(DataError) as caught:
        resolve_num_classes(config, rows)
    assert str(caught.value).startswith(f"{hamnosys}:2: head hand_location_y")


# --- class counts ---------------------------------------------------------------------


def test_resolve_num_classes_auto_and_configured(tmp_path: Path) -> None:
    write_text(tmp_path / "test_gloss.txt", "a 0 3 4", "b 0 3 -1", "c 0 3 1")
    write_text(tmp_path / "test_hamnosys.txt", "a 0 3 8 11 3 5 17 7 4 36")
    heads = {
        "gloss": {"gloss": {"num_class": "auto"}},
        "hamnosys": {head: {} for head in HAMNOSYS_HEADS}
        | {"hand_location_y": {"num_class": 40}},
    }
    config = make_config(["gloss", "hamnosys"], heads=heads)
    counts = resolve_num_classes(config, root_rows(config, tmp_path))
    default = SignpipeConfig().heads.hamnosys
    assert counts == {"gloss": 5} | {
        head: default[head].num_class for head in HAMNOSYS_HEADS
    } | {"hand_location_y": 40}


def test_resolve_num_classes_rejects_labels_beyond_the_count(tmp_path: Path) -> None:
    path = write_text(tmp_path / "test_gloss.txt", "a 0 3 1", "b 0 3 3")
    config = make_config("gloss", heads={"gloss": {"gloss": {"num_class": 3}}})
    with pytest.raises(
        DataError, match=rf"{re.escape(str(path))}:2: head gloss: label 3 is outside"
    ):
        resolve_num_classes(config, root_rows(config, tmp_path))
    config = make_config("gloss", heads={"gloss": {"gloss": {"num_class": 4}}})
    assert resolve_num_classes(config, root_rows(config, tmp_path)) == {"gloss": 4}


def test_resolve_num_classes_auto_without_any_label(tmp_path: Path) -> None:
    write_text(tmp_path / "test_gloss.txt", "a 0 3 -1", "b 0 3 nan")
    config = make_config("gloss", heads={"gloss": {"gloss": {"num_class": "auto"}}})
    with pytest.raises(DataError, match="head gloss: num_class is 'auto'"):
        resolve_num_classes(config, root_rows(config, tmp_path))


# --- temporal sampling ----------------------------------------------------------------


def test_eval_sampling_takes_segment_centres() -> None:
    assert sample_indices(16, 4, train=False, rng=random.Random(0)) == [1, 5, 9, 13]
    assert sample_indices(10, 2, train=False, rng=random.Random(0)) == [2, 7]
    for seed in range(5):
        assert sample_indices(
            37, 8, train=False, rng=random.Random(seed)
        ) == sample_indices(37, 8, train=False, rng=random.Random(99))


def test_train_sampling_is_random_within_each_segment() -> None:
    seen = set()
    for seed in range(30):
        positions = sample_indices(16, 4, train=True, rng=random.Random(seed))
        assert positions == sample_indices(16, 4, train=True, rng=random.Random(seed))
        for segment, position in enumerate(positions):
            assert 4 * segment <= position < 4 * segment + 4
        seen.add(tuple(positions))
    assert len(seen) > 10


@pytest.mark.parametrize("train", [False, True])
def test_sampling_is_ascending_distinct_and_never_repeats(train: bool) -> None:
    rng = random.Random(3)
    for length in range(1, 41):
        for num_segments in range(1, 10):
            positions = sample_indices(length, num_segments, train=train, rng=rng)
            assert len(positions) == min(length, num_segments)
            assert positions == sorted(set(positions))
            assert 0 <= positions[0] and positions[-1] < length
            if length <= num_segments:
                assert positions == list(range(length))


def test_step_sampling_spacing() -> None:
    rng = random.Random(0)
    assert sample_indices(20, 4, train=False, rng=rng, step=3) == [5, 8, 11, 14]
    assert sample_indices(10, 4, train=False, rng=rng, step=3) == [0, 3, 6, 9]
    assert sample_indices(7, 4, train=False, rng=rng, step=3) == [0, 3, 6]
    assert sample_indices(5, 4, train=True, rng=rng, step=3) == [0, 3]
    starts = set()
    for seed in range(40):
        positions = sample_indices(20, 4, train=True, rng=random.Random(seed), step=3)
        assert [b - a for a, b in zip(positions, positions[1:])] == [3, 3, 3]
        assert 0 <= positions[0] and positions[-1] < 20
        starts.add(positions[0])
    assert starts == set(range(11))


# --- clips and batches ----------------------------------------------------------------


def _samples(root: Path, lines: list[str], heads: list[str]) -> list[Sample]:
    annotations = write_text(root / "ann.txt", *lines)
    return index_frames(read_annotation_file(annotations, heads), root)


def test_dataset_items_are_uint8_clips_at_the_crop_size(tmp_path: Path) -> None:
    write_frames(tmp_path, "long", range(20))
    write_frames(tmp_path, "short", range(2))
    samples = _samples(tmp_path, ["long 2 17 1", "short 0 1 -1"], ["gloss"])
    dataset = clip_dataset(
        samples,
        train=False,
        transform=build_clip_transform(augmentations(), train=False),
        size_hint=12,
    )
    assert len(dataset) == 2
    item = dataset[0]
    assert item["frames"].dtype == torch.uint8
    assert item["frames"].shape == (4, 3, 10, 10)
    assert item["labels"] == {"gloss": 1} and item["name"] == "long"
    assert dataset[1]["frames"].shape == (2, 3, 10, 10)


def test_dataset_loads_the_sampled_frames_of_the_segment(tmp_path: Path) -> None:
    write_frames(tmp_path, "x", range(20))
    samples = _samples(tmp_path, ["x 2 17 0"], ["gloss"])
    item = clip_dataset(samples, train=False)[0]
    assert item["frames"].shape == (4, 3, 16, 16)
    assert frame_numbers(item["frames"]) == [2 + i for i in (1, 5, 9, 13)]
    train = clip_dataset(samples, train=True, seed=5)
    for _ in range(5):
        shown = frame_numbers(train[0]["frames"])
        assert all(2 + 4 * k <= n < 6 + 4 * k for k, n in enumerate(shown))


def test_collate_pads_masks_and_stacks_labels(tmp_path: Path) -> None:
    write_frames(tmp_path, "a", range(8))
    write_frames(tmp_path, "b", range(2))
    samples = _samples(
        tmp_path,
        ["name start end gloss symmetry_operator", "a 0 7 3 -1", "b 0 1 nan 2"],
        ["gloss", "symmetry_operator"],
    )
    dataset = clip_dataset(
        samples,
        train=False,
        transform=build_clip_transform(augmentations(), train=False),
    )
    items = [dataset[0], dataset[1]]
    batch = collate_clips(items)
    assert set(batch) == {"frames", "mask", "labels", "name"}
    assert batch["frames"].shape == (2, 4, 3, 10, 10)
    assert batch["frames"].dtype == torch.uint8
    assert batch["mask"].dtype == torch.bool
    assert batch["mask"].tolist() == [[True] * 4, [True, True, False, False]]
    assert torch.equal(batch["frames"][0], items[0]["frames"])
    assert torch.equal(batch["frames"][1, :2], items[1]["frames"])
    assert not batch["frames"][1, 2:].any()
    assert batch["frames"][1, :2].any()
    assert batch["labels"]["gloss"].dtype == torch.long
    assert batch["labels"]["gloss"].tolist() == [3, -100]
    assert batch["labels"]["symmetry_operator"].tolist() == [-100, 2]
    assert batch["name"] == ["a", "b"]


def _jpeg_bytes() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("damage", ["empty", "truncated"])
@pytest.mark.parametrize("size_hint", [None, 8])
def test_corrupt_jpeg_is_a_data_error_naming_the_file(
    tmp_path: Path, damage: str, size_hint: int | None
) -> None:
    folder = write_frames(tmp_path, "x", range(4))
    broken = folder / "x_2.jpg"
    data = _jpeg_bytes()
    broken.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    if damage == "empty":  # found when the dataset is indexed, before any decoding
        with pytest.raises(DataError, match="empty \\(0-byte\\) frame files") as caught:
            _samples(tmp_path, ["x 0 3 0"], ["gloss"])
        assert str(broken) in str(caught.value)
        return
    samples = _samples(tmp_path, ["x 0 3 0"], ["gloss"])
    dataset = clip_dataset(samples, train=False, size_hint=size_hint)
    with pytest.raises(DataError, match="cannot read image") as caught:
        dataset[0]  # pylint: disable=pointless-statement
    assert str(broken) in str(caught.value)


def test_time_sampling_needs_fps_and_uses_it(tmp_path: Path) -> None:
    write_frames(tmp_path, "x", range(16))
    samples = _samples(tmp_path, ["x 0 15 0"], ["gloss"])
    with pytest.raises(DataError, match="FPS"):
        clip_dataset(samples, train=False, time=0.2)
    write_text(tmp_path / "x" / "x_properties.json", json.dumps({"FPS": 10}))
    samples = _samples(tmp_path, ["x 0 15 0"], ["gloss"])
    dataset = clip_dataset(samples, train=False, time=0.2)
    # step = 0.2 s x 10 fps = 2 frames; the 7-frame window is centred in 16 frames.
    assert frame_numbers(dataset[0]["frames"]) == [4, 6, 8, 10]
    # A sample's own FPS wins over the default one.
    dataset = clip_dataset(samples, train=False, time=0.2, default_fps=5.0)
    assert frame_numbers(dataset[0]["frames"]) == [4, 6, 8, 10]


def test_time_sampling_falls_back_to_the_default_fps(tmp_path: Path) -> None:
    write_frames(tmp_path, "x", range(16))
    samples = _samples(tmp_path, ["x 0 15 0"], ["gloss"])
    dataset = clip_dataset(samples, train=False, time=0.2, default_fps=15.0)
    # step = 0.2 s x 15 fps = 3 frames; the 10-frame window is centred in 16 frames.
    assert frame_numbers(dataset[0]["frames"]) == [3, 6, 9, 12]


def test_non_numeric_fps_is_a_data_error(tmp_path: Path) -> None:
    write_frames(tmp_path, "x", range(4))
    properties = write_text(tmp_path / "x" / "x_properties.json", '{"FPS": "n/a"}')
    with pytest.raises(DataError, match=re.escape(str(properties))):
        _samples(tmp_path, ["x 0 3 0"], ["gloss"])


# --- transforms -----------------------------------------------------------------------


def _identical_frames_clip(frames: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=generator)
    return frame.expand(frames, 3, 16, 16).clone()


def test_train_transform_draws_once_per_clip() -> None:
    config = augmentations(
        apply_random_rotation=True,
        random_rotation_degree=40,
        apply_color_jitter=True,
        color_jitter_hue=0.2,
        apply_random_erasing=True,
        random_erasing_probability=1.0,
    )
    train = build_clip_transform(config, train=True)
    evaluate = build_clip_transform(config, train=False)
    clip = _identical_frames_clip()
    plain = evaluate(clip)
    outputs = []
    for seed in range(6):
        torch.manual_seed(seed)
        out = train(clip)
        assert out.shape == (5, 3, 10, 10) and out.dtype == torch.uint8
        for frame in out[1:]:
            assert torch.equal(frame, out[0])
        outputs.append(out[0])
    assert all(not torch.equal(out, plain[0]) for out in outputs)
    assert any(not torch.equal(out, outputs[0]) for out in outputs[1:])


def test_dataset_applies_one_train_draw_to_the_whole_clip(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    folder = tmp_path / "same"
    folder.mkdir()
    for index in range(6):
        Image.fromarray(pixels).save(folder / f"same_{index}.png")
    samples = _samples(tmp_path, ["same 0 5 0"], ["gloss"])
    config = augmentations(
        apply_random_rotation=True,
        random_rotation_degree=40,
        apply_random_erasing=True,
        random_erasing_probability=1.0,
    )
    plain = clip_dataset(
        samples,
        train=False,
        transform=build_clip_transform(config, train=False),
    )[0]["frames"]
    dataset = clip_dataset(
        samples,
        train=True,
        transform=build_clip_transform(config, train=True),
    )
    torch.manual_seed(0)
    for _ in range(3):
        clip = dataset[0]["frames"]
        assert clip.shape == (4, 3, 10, 10)
        assert not torch.equal(clip, plain)
        for frame in clip[1:]:
            assert torch.equal(frame, clip[0])


def test_eval_transform_only_resizes_and_crops() -> None:
    config = augmentations(
        resize_size=14,
        center_crop_size=9,
        apply_random_rotation=True,
        apply_color_jitter=True,
        apply_random_erasing=True,
        random_erasing_probability=1.0,
    )
    transform = build_clip_transform(config, train=False)
    generator = torch.Generator().manual_seed(1)
    clip = torch.randint(0, 256, (3, 3, 16, 20), dtype=torch.uint8, generator=generator)
    expected = v2.functional.center_crop(
        v2.functional.resize(clip, [14], antialias=True), [9, 9]
    )
    for seed in range(3):
        torch.manual_seed(seed)
        assert torch.equal(transform(clip), expected)
    assert expected.shape == (3, 3, 9, 9)


@pytest.mark.parametrize("train", [False, True])
def test_transform_without_any_step_leaves_the_clip_alone(train: bool) -> None:
    config = augmentations(apply_resize=False, apply_center_crop=False)
    clip = _identical_frames_clip(2)
    assert torch.equal(build_clip_transform(config, train=train)(clip), clip)


# --- train/val split ------------------------------------------------------------------


def _labelled(counts: dict[int, int]) -> list[Sample]:
    return [
        Sample(
            name=f"s{label}_{i}",
            start=0,
            length=1,
            labels={"gloss": label},
            frame_paths=[],
        )
        for label, count in counts.items()
        for i in range(count)
    ]


def _split(samples: list[Sample], ratio: float, seed: int) -> tuple[list, list]:
    splits = split_samples(list(samples), ratio, seed, "gloss")
    assert not splits["test"]
    return splits["train"], splits["val"]


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [(0.7, {0: 4, 1: 1, 2: 2, 3: 7}), (0.3, {0: 2, 1: 1, 2: 1, 3: 3})],
)
def test_split_is_seeded_stratified_disjoint_and_complete(
    ratio: float, expected: dict[int, int]
) -> None:
    samples = _labelled({0: 6, 1: 1, 2: 3, 3: 10})
    train, val = _split(samples, ratio, 7)
    again = _split(samples, ratio, 7)
    assert ([s.name for s in train], [s.name for s in val]) == (
        [s.name for s in again[0]],
        [s.name for s in again[1]],
    )
    names = [s.name for s in train + val]
    assert sorted(names) == sorted(s.name for s in samples)
    assert len(set(names)) == len(names)
    per_label = {
        label: sum(s.labels["gloss"] == label for s in train) for label in range(4)
    }
    assert per_label == expected
    other_seeds = {
        tuple(sorted(s.name for s in _split(samples, ratio, seed)[0]))
        for seed in range(8)
    }
    assert len(other_seeds) > 1


def test_too_few_samples_for_a_validation_split() -> None:
    with pytest.raises(DataError, match="3 training and 0 validation samples"):
        split_samples(_labelled({0: 1, 1: 1, 2: 1}), 0.8, 0, "gloss")


# --- the DataModule -------------------------------------------------------------------


def test_datamodule_on_the_sample_data(tiny_config: dict) -> None:
    module = SignDataModule(parse_config(tiny_config))
    heads = ["gloss", *HAMNOSYS_HEADS]
    assert list(module.data.num_classes) == heads
    assert module.data.num_classes["gloss"] == 3
    assert (len(module.data.train_samples), len(module.data.val_samples)) == (9, 3)
    train_names = {s.name for s in module.data.train_samples}
    assert not train_names & {s.name for s in module.data.val_samples}
    for loader, size in [
        (module.train_dataloader(), 4),
        (module.val_dataloader(), 3),
    ]:
        batch = next(iter(loader))
        assert set(batch) == {"frames", "mask", "labels", "name"}
        assert batch["frames"].shape == (size, 4, 3, 32, 32)
        assert batch["frames"].dtype == torch.uint8
        assert batch["mask"].shape == (size, 4) and batch["mask"].all()
        assert list(batch["labels"]) == heads
        for head, labels in batch["labels"].items():
            assert labels.shape == (size,) and labels.dtype == torch.long
            assert ((labels >= 0) & (labels < module.data.num_classes[head])).all()
        assert len(batch["name"]) == size
    assert "9 train / 3 val" in module.describe()
