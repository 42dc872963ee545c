"""The WLASL importer: official split files -> a dataset root that trains."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from helpers import SHARED_DATA

import train
from data_preprocessing.wlasl import (
    UNKNOWN_SIGNER,
    WHOLE_CLIP_TOLERANCE,
    Clip,
    main,
    read_split_file,
    row_range,
)
from datasets.landmarks import read_landmarks
from utils.annotations import read_annotation_file

WLASL = SHARED_DATA / "wlasl_hands"
needs_wlasl = pytest.mark.skipif(
    not (WLASL / "wlasl300_hands_trainval.npz").is_file(),
    reason="../shared/data/wlasl_hands (real WLASL hand landmarks) is absent",
)
HEADER = "name start end gloss split"


def hands(frames: int, seed: int) -> np.ndarray:
    """`(frames, 2, 21, 3)` float16 hands as in the shared npz (NaN = no hand)."""
    rng = np.random.default_rng(seed)
    out = rng.random((frames, 2, 21, 3)).astype(np.float16)
    out[::3, 1] = np.nan  # one hand only in every third frame
    return out


def write_json(path: Path, data) -> Path:
    """`data` as a JSON file."""
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_class_list(path: Path, glosses: list[str]) -> Path:
    """A `wlasl_class_list.txt` (`class_id<TAB>gloss`)."""
    lines = [f"{i}\t{gloss}" for i, gloss in enumerate(glosses)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def annotation_rows(root: Path) -> list[list[str]]:
    """The rows of the root's `test_gloss.txt` after its header."""
    lines = (root / "test_gloss.txt").read_text(encoding="utf-8").splitlines()
    return [line.split() for line in lines[1:]]


@pytest.fixture
def nslt_files(tmp_path: Path) -> dict:
    """An nslt json (8 videos: 5 train, 2 val, 1 test; 2 without landmarks), a class
    list and an npz of the hand arrays of 6 of them."""
    split = {
        "00001": ("train", 0, 1, 20),
        "00002": ("train", 0, 1, -1),
        "00003": ("train", 1, 1, 25),
        "00004": ("train", 2, 1, 18),
        "00005": ("train", 2, 1, 30),  # no landmarks
        "00006": ("val", 1, 1, 22),
        "00007": ("val", 3, 1, 19),  # no landmarks
        "00008": ("test", 2, 1, 12),
    }
    data = {
        video: {"subset": subset, "action": [label, start, end]}
        for video, (subset, label, start, end) in split.items()
    }
    arrays = {
        video: hands(20, seed)
        for seed, video in enumerate(split)
        if video not in ("00005", "00007")
    }
    np.savez(tmp_path / "hands.npz", **arrays)
    return {
        "split": write_json(tmp_path / "nslt_4.json", data),
        "classes": write_class_list(
            tmp_path / "classes.txt", ["book", "drink", "computer", "before", "chair"]
        ),
        "landmarks": tmp_path / "hands.npz",
        "arrays": arrays,
    }


def run(split: Path, landmarks: Path, output: Path, *extra: str) -> int:
    """The importer's command line."""
    args = ["--split_file", str(split), "--landmarks", str(landmarks)]
    return main([*args, "--output", str(output), *extra])


def test_npz_source_writes_the_official_split_and_gloss_names(
    nslt_files: dict, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "root"
    code = run(
        nslt_files["split"],
        nslt_files["landmarks"],
        root,
        "--class_list",
        str(nslt_files["classes"]),
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "train: 4 clips, 3 classes" in out
    assert "val: 1 clips, 1 classes" in out
    assert "test: 1 clips, 1 classes" in out
    assert "skipped 2 videos without landmarks" in out
    assert (root / "test_gloss.txt").read_text().splitlines()[0] == HEADER
    rows = {row[0]: row[1:] for row in annotation_rows(root)}
    assert rows == {
        "00001": ["0", "19", "0", "train"],
        "00002": ["0", "19", "0", "train"],
        "00003": ["0", "19", "1", "train"],  # 25 of 20 rows: the whole clip
        "00004": ["0", "19", "2", "train"],
        "00006": ["0", "19", "1", "val"],
        "00008": ["0", "11", "2", "test"],  # 12 of 20 rows: rows 0..11
    }
    glosses = (root / "glosses.txt").read_text().splitlines()
    assert glosses == ["id gloss", "0 book", "1 drink", "2 computer"]
    for video, array in nslt_files["arrays"].items():
        with np.load(root / video / f"{video}.npz") as data:
            np.testing.assert_array_equal(data["hands"], array)
    points, _, _ = read_landmarks(root / "00001" / "00001.npz", ["right_hand"])
    assert points.shape == (20, 21, 3) and np.isfinite(points).any()
    table = read_annotation_file(root / "test_gloss.txt", ["gloss"])
    assert [row.split for row in table].count("train") == 4


def test_num_classes_keeps_the_first_classes(nslt_files: dict, tmp_path: Path) -> None:
    root = tmp_path / "root"
    extra = ["--class_list", str(nslt_files["classes"]), "--num_classes", "2"]
    assert run(nslt_files["split"], nslt_files["landmarks"], root, *extra) == 0
    assert sorted(row[0] for row in annotation_rows(root)) == [
        "00001",
        "00002",
        "00003",
        "00006",
    ]


@pytest.mark.parametrize(
    ("start", "end", "rows", "expected"),
    [
        (1, -1, 40, (0, 39)),  # the whole video
        (1, 40, 40, (0, 39)),
        (1, 48, 40, (0, 39)),  # within the tolerance: another frame rate
        (1, 32, 40, (0, 39)),
        (1, 20, 40, (0, 19)),  # a range: rows start - 1 .. end - 1
        (11, 20, 40, (10, 19)),
        (11, -1, 40, (10, 39)),
        (31, 60, 40, (30, 39)),  # cut to the file
        (50, 60, 40, (39, 39)),  # past the file: its last row
    ],
)
def test_row_range(start: int, end: int, rows: int, expected: tuple) -> None:
    assert row_range(Clip("v", 0, "train", start, end), rows) == expected


def test_whole_clip_tolerance_is_the_boundary() -> None:
    rows = 100
    inside = round(rows * (1 - WHOLE_CLIP_TOLERANCE))
    assert row_range(Clip("v", 0, "val", 1, inside), rows) == (0, rows - 1)
    assert row_range(Clip("v", 0, "val", 1, inside - 1), rows) == (0, inside - 2)


def v03_entries() -> list[dict]:
    """A WLASL_v0.3.json-style list: 3 glosses, signer ids and frame ranges."""

    def instance(video, split, signer, start=1, end=-1):
        return {
            "video_id": video,
            "split": split,
            "signer_id": signer,
            "frame_start": start,
            "frame_end": end,
            "fps": 25,
            "url": "https://example.invalid/" + video,
        }

    return [
        {
            "gloss": "book",
            "instances": [
                instance("10001", "train", 11),
                instance("10002", "val", 12, 5, 12),
            ],
        },
        {
            "gloss": "drink",
            "instances": [
                instance("10003", "train", 11, 3, -1),
                instance("10004", "test", 13),
            ],
        },
        {"gloss": "computer", "instances": [instance("10005", "train", 12)]},
    ]


def test_v03_list_gives_signers_frame_ranges_and_gloss_names(tmp_path: Path) -> None:
    split = write_json(tmp_path / "WLASL_v0.3.json", v03_entries())
    arrays = {f"1000{i}": hands(30, i) for i in range(1, 6)}
    np.savez(tmp_path / "hands.npz", **arrays)
    root = tmp_path / "root"
    assert run(split, tmp_path / "hands.npz", root, "--num_classes", "2") == 0
    header = (root / "test_gloss.txt").read_text().splitlines()[0]
    assert header == HEADER + " signer"
    assert annotation_rows(root) == [
        ["10001", "0", "29", "0", "train", "11"],
        ["10002", "4", "11", "0", "val", "12"],
        ["10003", "2", "29", "1", "train", "11"],
        ["10004", "0", "29", "1", "test", "13"],
    ]
    glosses = (root / "glosses.txt").read_text().splitlines()
    assert glosses == ["id gloss", "0 book", "1 drink"]
    table = read_annotation_file(root / "test_gloss.txt", ["gloss"])
    assert [row.signer for row in table] == ["11", "12", "11", "13"]
    clips, names = read_split_file(split)
    assert len(clips) == 5 and names == {0: "book", 1: "drink", 2: "computer"}


def test_clips_without_signer_keep_the_signer_column(tmp_path: Path) -> None:
    entries = v03_entries()
    del entries[0]["instances"][1]["signer_id"]
    split = write_json(tmp_path / "WLASL_v0.3.json", entries)
    np.savez(tmp_path / "hands.npz", **{f"1000{i}": hands(9, i) for i in (1, 2)})
    root = tmp_path / "root"
    assert run(split, tmp_path / "hands.npz", root) == 0
    table = read_annotation_file(root / "test_gloss.txt", ["gloss"])
    assert [row.name for row in table] == ["10001", "10002"]
    assert table[0].signer == "11" and table[1].signer == UNKNOWN_SIGNER


def extract_landmarks_file(path: Path, frames: int, seed: int) -> None:
    """A per-video `.npz` as `extract_landmarks` writes it."""
    rng = np.random.default_rng(seed)
    parts = {
        "pose": (33, 3),
        "face": (468, 3),
        "left_hand": (21, 3),
        "right_hand": (21, 3),
    }
    arrays = {
        key: rng.random((frames, *shape)).astype(np.float32)
        for key, shape in parts.items()
    }
    arrays["left_hand"][:2] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays, fps=np.asarray(25.0))


def test_folder_source_copies_extract_landmarks_files(tmp_path: Path, capsys) -> None:
    source = tmp_path / "landmarks"
    extract_landmarks_file(source / "00001" / "00001.npz", 12, 1)
    extract_landmarks_file(source / "00002.npz", 9, 2)  # flat layout
    (source / "00004").mkdir()  # a folder without a landmark file
    data = {
        "00001": {"subset": "train", "action": [0, 1, 12]},
        "00002": {"subset": "val", "action": [1, 3, 7]},
        "00003": {"subset": "train", "action": [1, 1, 10]},
        "00004": {"subset": "train", "action": [0, 1, 10]},
    }
    split = write_json(tmp_path / "nslt_2.json", data)
    classes = write_class_list(tmp_path / "classes.txt", ["a", "b"])
    root = tmp_path / "root"
    assert run(split, source, root, "--class_list", str(classes)) == 0
    assert "skipped 2 videos without landmarks" in capsys.readouterr().out
    for video, original in (
        ("00001", source / "00001" / "00001.npz"),
        ("00002", source / "00002.npz"),
    ):
        assert (root / video / f"{video}.npz").read_bytes() == original.read_bytes()
    assert annotation_rows(root) == [
        ["00001", "0", "11", "0", "train"],
        ["00002", "2", "6", "1", "val"],
    ]


def test_folder_of_published_npy_hand_arrays_reads_as_the_shared_npz(
    tmp_path: Path, nslt_files: dict
) -> None:
    """The public WLASL hand landmarks (`ID.npy`, float64, -1.0 where a hand slot is
    empty) import to the same arrays as the shared `.npz` made from them."""
    shared = np.load(tmp_path / "hands.npz")
    source = tmp_path / "npy"
    source.mkdir()
    for video in shared.files:
        published = shared[video].astype(np.float64)
        published[np.isnan(published)] = -1.0
        np.save(source / f"{video}.npy", published)
    from_npz, from_npy = tmp_path / "from_npz", tmp_path / "from_npy"
    for landmarks, root in ((tmp_path / "hands.npz", from_npz), (source, from_npy)):
        assert (
            run(
                nslt_files["split"],
                landmarks,
                root,
                "--class_list",
                str(nslt_files["classes"]),
            )
            == 0
        )
    assert annotation_rows(from_npy) == annotation_rows(from_npz)
    for video in shared.files:
        one = np.load(from_npz / video / f"{video}.npz")["hands"]
        other = np.load(from_npy / video / f"{video}.npz")["hands"]
        assert np.array_equal(one, other, equal_nan=True)
        assert np.isnan(other[::3, 1]).all()  # the -1.0 slots are missing hands


def bad_input_cases(tmp_path: Path, nslt_files: dict) -> dict:
    """Each case: (split file, landmarks, extra args, words the error must name)."""
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"00001": {"subset": "train",', encoding="utf-8")
    unknown_split = write_json(
        tmp_path / "dev.json", {"00001": {"subset": "dev", "action": [0, 1, 20]}}
    )
    text = tmp_path / "hands.txt"
    text.write_text("not landmarks\n", encoding="utf-8")
    np.savez(tmp_path / "other.npz", **{"99999": hands(5, 0)})
    np.savez(tmp_path / "flat.npz", **{"00001": hands(5, 0)[:, 0]})
    np.savez(tmp_path / "objects.npz", **{"00001": np.array([{}], dtype=object)})
    classes = ["--class_list", str(nslt_files["classes"])]
    split, landmarks = nslt_files["split"], nslt_files["landmarks"]
    return {
        "bad_json": (bad_json, landmarks, classes, ["bad.json", "not valid JSON"]),
        "unknown_split": (unknown_split, landmarks, classes, ["'dev'", "00001"]),
        "no_gloss_names": (split, landmarks, [], ["--class_list"]),
        "not_npz_or_folder": (split, text, classes, ["hands.txt", "folder"]),
        "missing_landmarks": (split, tmp_path / "absent", classes, ["absent"]),
        "nothing_matched": (split, tmp_path / "other.npz", classes, ["none of the 8"]),
        "class_without_gloss": (
            split,
            landmarks,
            ["--class_list", str(write_class_list(tmp_path / "c.txt", ["a", "b"]))],
            ["c.txt", "no gloss for class(es) 2, 3"],
        ),
        "bad_class_list": (
            split,
            landmarks,
            ["--class_list", str(write_json(tmp_path / "c.json", ["a"]))],
            ["c.json:1", "class_id<TAB>gloss"],
        ),
        "num_classes": (split, landmarks, [*classes, "--num_classes", "0"], ["0"]),
        "bad_array_shape": (
            split,
            tmp_path / "flat.npz",
            classes,
            ["flat.npz", "array 00001", "(5, 21, 3)"],
        ),
        "unreadable_array": (
            split,
            tmp_path / "objects.npz",
            classes,
            ["objects.npz", "cannot read array 00001"],
        ),
    }


CASES = [
    "bad_json",
    "unknown_split",
    "no_gloss_names",
    "not_npz_or_folder",
    "missing_landmarks",
    "nothing_matched",
    "class_without_gloss",
    "bad_class_list",
    "num_classes",
    "bad_array_shape",
    "unreadable_array",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_and_exit_2(
    case: str, nslt_files: dict, tmp_path: Path, capsys
) -> None:
    split, landmarks, extra, words = bad_input_cases(tmp_path, nslt_files)[case]
    root = tmp_path / "root"
    assert run(split, landmarks, root, *extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    for word in words:
        assert word in err[0]
    assert not (root / "test_gloss.txt").exists(), "no annotation for a failed run"


def test_v03_entry_without_instances_is_an_error(tmp_path: Path, capsys) -> None:
    split = write_json(tmp_path / "WLASL_v0.3.json", [{"gloss": "book"}])
    np.savez(tmp_path / "hands.npz", **{"1": hands(3, 0)})
    assert run(split, tmp_path / "hands.npz", tmp_path / "root") == 2
    assert "WLASL_v0.3.json: entry 0" in capsys.readouterr().err


def landmark_config(tiny_config: dict, root: Path) -> dict:
    """The tiny config on `root`, hands only, a small landmarks_conv, one fast step."""
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["data_path"] = str(root)
    config["train_parameters"].update(
        classification_mode="gloss", landmarks=True, fast_dev_run=True
    )
    config["feature_extractor"] = {
        "name": "landmarks_conv",
        "representation_size": 16,
        "num_blocks": 1,
        "kernel_size": 3,
    }
    config["landmarks_parameters"] = {
        "components": ["left_hand", "right_hand"],
        "velocities": True,
        "apply_flip": True,
        "apply_speed": True,
        "apply_crop": True,
    }
    config["heads"]["gloss"]["gloss"]["num_class"] = "auto"
    return config


def test_imported_root_trains(
    nslt_files: dict, tiny_config, write_config, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    extra = ["--class_list", str(nslt_files["classes"])]
    assert run(nslt_files["split"], nslt_files["landmarks"], root, *extra) == 0
    config = landmark_config(tiny_config, root)
    assert train.main(["--model_config_path", str(write_config(config))]) == 0


@pytest.fixture
def wlasl_slice(tmp_path: Path) -> dict:
    """The first 12 present and 3 absent videos of the real nslt_100.json, with an
    npz of only those arrays."""
    split = json.loads((WLASL / "nslt_100.json").read_text(encoding="utf-8"))
    with np.load(WLASL / "wlasl300_hands_trainval.npz") as archive:
        available = set(archive.files)
        present = [video for video in split if video in available]
        subset = {v: split[v] for v in present if split[v]["subset"] == "train"}
        subset = dict(list(subset.items())[:9])
        subset.update(
            (v, split[v]) for v in present[:40] if split[v]["subset"] == "val"
        )
        subset = dict(list(subset.items())[:12])
        absent = [video for video in split if video not in available][:3]
        arrays = {video: archive[video] for video in subset}
    subset.update((video, split[video]) for video in absent)
    np.savez(tmp_path / "slice.npz", **arrays)
    return {
        "split": write_json(tmp_path / "nslt_slice.json", subset),
        "landmarks": tmp_path / "slice.npz",
        "arrays": arrays,
        "entries": subset,
    }


@needs_wlasl
def test_real_wlasl_slice_imports_and_trains(
    wlasl_slice: dict, tiny_config, write_config, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "root"
    extra = ["--class_list", str(WLASL / "wlasl_class_list.txt")]
    assert run(wlasl_slice["split"], wlasl_slice["landmarks"], root, *extra) == 0
    out = capsys.readouterr().out
    entries, arrays = wlasl_slice["entries"], wlasl_slice["arrays"]
    counts = {
        split: sum(entries[v]["subset"] == split for v in arrays)
        for split in ("train", "val")
    }
    assert counts["train"] and counts["val"], counts
    assert f"train: {counts['train']} clips" in out
    assert f"val: {counts['val']} clips" in out
    assert "skipped 3 videos without landmarks" in out
    rows = annotation_rows(root)
    assert {row[0] for row in rows} == set(arrays)
    names = dict(
        line.split("\t", 1)
        for line in (WLASL / "wlasl_class_list.txt").read_text().splitlines()
    )
    glosses = (root / "glosses.txt").read_text().splitlines()[1:]
    for line in glosses:
        label, gloss = line.split(" ", 1)
        assert names[label] == gloss
    for name, start, end, label, split in rows:
        array = arrays[name]
        assert 0 <= int(start) <= int(end) < len(array)
        assert int(label) == entries[name]["action"][0]
        assert split == entries[name]["subset"]
        points, _, _ = read_landmarks(root / name / f"{name}.npz", ["right_hand"])
        assert len(points) == len(array)
        assert np.isfinite(points).any(), "the hands are canonicalised"
    config = landmark_config(tiny_config, root)
    assert train.main(["--model_config_path", str(write_config(config))]) == 0


@pytest.mark.parametrize("video_id", ["../../../escape", "a/b", "..", "."])
def test_video_ids_that_are_not_plain_names_write_nothing(
    video_id: str, tmp_path: Path, capsys
) -> None:
    """A split file cannot make the importer write outside its output root."""
    split = write_json(
        tmp_path / "nslt_2.json",
        {video_id: {"subset": "train", "action": [0, 1, -1]}},
    )
    write_class_list(tmp_path / "classes.txt", ["book"])
    np.savez(tmp_path / "hands.npz", **{video_id: hands(3, 0)})
    root = tmp_path / "deep" / "er" / "root"
    before = set(tmp_path.rglob("*"))
    assert (
        run(
            split,
            tmp_path / "hands.npz",
            root,
            "--class_list",
            str(tmp_path / "classes.txt"),
        )
        == 2
    )
    assert "is not a plain file name" in capsys.readouterr().err
    assert set(tmp_path.rglob("*")) == before
