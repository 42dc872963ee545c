"""Importers given input that must not be trusted (issue 26): ids and names that would
write outside the output root, cells too long for the csv module, FIFOs and devices
as input files, non-finite numbers, damaged archives, unwritable outputs, labels with
line breaks or spreadsheet formulas."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import numpy as np
import pytest

# The helpers (and the FIFO fixture) of the importers' own tests.
from test_labels_csv import write_video
from test_trust_data import unblock_fifos  # pylint: disable=unused-import
from test_wlasl import hands, run, write_class_list, write_json

from data_preprocessing import labels_csv
from utils.annotations import is_manifest, read_annotation_file, read_manifest
from utils.errors import DataError
from utils import files

#: Longer than the csv module's default cell limit (131,072 characters).
HUGE = "x" * 131_073


def one_error_line(capsys, *needles: str) -> str:
    """stderr: exactly one `error:` line holding every needle, and no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


def files_under(folder: Path) -> set[Path]:
    """Every path under `folder` (symbolic links not followed)."""
    return set(folder.rglob("*"))


# ------------------------------------------------------------------------------ wlasl


@pytest.fixture
def wlasl_inputs(tmp_path: Path) -> dict:
    """One train clip `v1` of class 0 (`book`) in an nslt file and an npz."""
    np.savez(tmp_path / "hands.npz", v1=hands(6, 0))
    return {
        "split": write_json(
            tmp_path / "nslt_1.json", {"v1": {"subset": "train", "action": [0, 1, -1]}}
        ),
        "landmarks": tmp_path / "hands.npz",
        "classes": [
            "--class_list",
            str(write_class_list(tmp_path / "c.txt", ["book"])),
        ],
    }


def test_1_wlasl_a_clip_folder_linked_outside_the_root_is_refused(
    wlasl_inputs: dict, tmp_path: Path, capsys
) -> None:
    """Confinement is checked where files are written: a folder ROOT/<id> that is a
    symbolic link to elsewhere is not written through."""
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "v1").symlink_to(outside)
    inputs = (wlasl_inputs["split"], wlasl_inputs["landmarks"], root)
    assert run(*inputs, *wlasl_inputs["classes"]) == 2
    one_error_line(capsys, "'v1'", "outside --output")
    assert not list(outside.iterdir())
    assert not (root / "test_gloss.txt").exists()


@pytest.mark.parametrize("video_id", ["a b", "tab\tid", "#1", "../../../x"])
def test_13_wlasl_ids_an_annotation_file_cannot_hold_are_refused(
    video_id: str, tmp_path: Path, capsys
) -> None:
    split = write_json(
        tmp_path / "nslt_1.json", {video_id: {"subset": "train", "action": [0, 1, -1]}}
    )
    np.savez(tmp_path / "hands.npz", **{video_id: hands(3, 0)})
    classes = ["--class_list", str(write_class_list(tmp_path / "c.txt", ["book"]))]
    before = files_under(tmp_path)
    assert run(split, tmp_path / "hands.npz", tmp_path / "root", *classes) == 2
    one_error_line(capsys, "nslt_1.json", repr(video_id), "not a plain file name")
    assert files_under(tmp_path) == before


def test_13_wlasl_every_id_accepted_reads_back(
    wlasl_inputs: dict, tmp_path: Path
) -> None:
    split = write_json(
        tmp_path / "nslt_2.json",
        {
            name: {"subset": "train", "action": [0, 1, -1]}
            for name in ("v1", "x#y", "é-1_2.3")
        },
    )
    ids = ("v1", "x#y", "é-1_2.3")
    np.savez(tmp_path / "ids.npz", **{name: hands(3, i) for i, name in enumerate(ids)})
    root = tmp_path / "root"
    assert run(split, tmp_path / "ids.npz", root, *wlasl_inputs["classes"]) == 0
    rows = read_annotation_file(root / "test_gloss.txt", ["gloss"])
    assert [row.name for row in rows] == list(ids)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('{"v1": {"subset": "train", "action": [0, Infinity, 3]}}', ["action.1"]),
        ('{"v1": {"subset": "train", "action": [0, 1, 1e400]}}', ["action.2"]),
        ('{"v1": {"subset": "train", "action": [NaN, 1, 3]}}', ["action.0"]),
        ('{"v1": {"subset": "train", "action": [0, 1.5, 3]}}', ["action.1"]),
        (
            '[{"gloss": "book", "instances": [{"video_id": "v1", "split": "train", '
            '"frame_start": Infinity}]}]',
            ["entry 0", "frame_start"],
        ),
        (
            '[{"gloss": "book", "instances": [{"video_id": "v1", "split": "train", '
            '"signer_id": "a b"}]}]',
            ["signer 'a b'"],
        ),
        ('[{"gloss": "bo\\nok", "instances": []}]', ["gloss 0", "one line"]),
    ],
)
def test_13_wlasl_non_finite_and_unwritable_values_in_the_split_file(
    text: str, needles: list[str], wlasl_inputs: dict, tmp_path: Path, capsys
) -> None:
    split = tmp_path / "split.json"
    split.write_text(text, encoding="utf-8")
    root = tmp_path / "root"
    assert run(split, wlasl_inputs["landmarks"], root, *wlasl_inputs["classes"]) == 2
    one_error_line(capsys, "split.json", *needles)
    assert not root.exists()


def test_13_wlasl_a_damaged_npz_is_one_error_line(
    wlasl_inputs: dict, tmp_path: Path, capsys
) -> None:
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"PK\x03\x04" + b"not a zip archive" * 8)
    single = tmp_path / "single.npz"
    with single.open("wb") as file:
        np.save(file, hands(3, 0))
    for landmarks in (damaged, single):
        code = run(
            wlasl_inputs["split"],
            landmarks,
            tmp_path / "root",
            *wlasl_inputs["classes"],
        )
        assert code == 2
        one_error_line(capsys, landmarks.name)


def test_13_wlasl_an_output_that_is_a_file_or_unwritable(
    wlasl_inputs: dict, tmp_path: Path, capsys, monkeypatch
) -> None:
    inputs = (wlasl_inputs["split"], wlasl_inputs["landmarks"])
    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")
    for output in (file, file / "below"):
        assert run(*inputs, output, *wlasl_inputs["classes"]) == 2
        one_error_line(capsys, str(output))

    def full_disk(path, _write, owner=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(files, "write_atomically", full_disk)  # under write_output
    assert run(*inputs, tmp_path / "root", *wlasl_inputs["classes"]) == 2
    one_error_line(capsys, "cannot write", "v1.npz", os.strerror(errno.ENOSPC))


def test_12_wlasl_a_fifo_or_device_split_file_is_refused_before_reading(
    wlasl_inputs: dict, tmp_path: Path, capsys, unblock_fifos
) -> None:
    fifo = unblock_fifos(tmp_path / "nslt.json")
    for split in (fifo, Path("/dev/zero"), tmp_path):
        assert run(split, wlasl_inputs["landmarks"], tmp_path / "root") == 2
        one_error_line(capsys, str(split), "not a file")
    fifo_list = unblock_fifos(tmp_path / "classes.txt")
    inputs = (wlasl_inputs["split"], wlasl_inputs["landmarks"], tmp_path / "root")
    assert run(*inputs, "--class_list", str(fifo_list)) == 2
    one_error_line(capsys, "classes.txt", "FIFO")
    folder = tmp_path / "files"
    folder.mkdir()
    unblock_fifos(folder / "v1.npz")
    inputs = (wlasl_inputs["split"], folder, tmp_path / "root")
    assert run(*inputs, *wlasl_inputs["classes"]) == 2
    one_error_line(capsys, "v1.npz", "FIFO")


def test_23_wlasl_infinite_landmarks_are_refused_naming_the_clip(
    wlasl_inputs: dict, tmp_path: Path, capsys
) -> None:
    array = hands(6, 0).astype(np.float32)
    array[2, 0, 5, 1] = np.inf
    np.savez(tmp_path / "inf.npz", v1=array)
    root = tmp_path / "root"
    assert (
        run(wlasl_inputs["split"], tmp_path / "inf.npz", root, *wlasl_inputs["classes"])
        == 2
    )
    one_error_line(capsys, "inf.npz", "video v1", "1 infinite", "NaN")
    assert not root.exists() or not list(root.rglob("*.npz"))
    folder = tmp_path / "files" / "v1"
    folder.mkdir(parents=True)
    np.savez(folder / "v1.npz", left_hand=array[:, 0], right_hand=-array[:, 1])
    assert (
        run(wlasl_inputs["split"], folder.parent, root, *wlasl_inputs["classes"]) == 2
    )
    one_error_line(capsys, "v1.npz", "video v1", "infinite")
    assert not (root / "v1" / "v1.npz").exists()


# ------------------------------------------------------------------------- labels_csv


def labels_file(path: Path, text: str) -> Path:
    """A labels CSV holding `text` as written (quotes and line breaks included)."""
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_1_labels_csv_a_clip_name_that_is_a_path_is_refused(
    tmp_path: Path, capsys
) -> None:
    """A video `...mp4` has the stem `..`: its frames would go to ROOT/.. ."""
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "...mp4", frames=3)
    labels = labels_file(tmp_path / "labels.csv", "video,label\n...mp4,hello\n")
    root = tmp_path / "out" / "root"
    args = ["--labels", str(labels), "--videos", str(videos), "--output", str(root)]
    before = files_under(tmp_path)
    assert labels_csv.main([*args, "--frames", "--workers", "1"]) == 2
    one_error_line(capsys, "labels.csv:2", "'..'", "is a path")
    assert files_under(tmp_path) == before


def test_1_labels_csv_a_clip_folder_linked_outside_the_root_is_refused(
    tmp_path: Path, capsys
) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "clip.mp4", frames=3)
    labels = labels_file(tmp_path / "labels.csv", "video,label\nclip.mp4,hello\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "clip").symlink_to(outside)
    args = ["--labels", str(labels), "--videos", str(videos), "--output", str(root)]
    assert labels_csv.main([*args, "--landmarks", "--workers", "1"]) == 2
    one_error_line(capsys, "labels.csv:2", "clip clip", "outside --output")
    assert not list(outside.iterdir())


def test_11_labels_csv_a_cell_over_the_csv_limit_names_file_and_row(
    tmp_path: Path, capsys
) -> None:
    labels = labels_file(
        tmp_path / "labels.csv", f"video,label\nclip.mp4,hello\nclip2.mp4,{HUGE}\n"
    )
    code = labels_csv.main(["--labels", str(labels), "--output", str(tmp_path / "r")])
    assert code == 2
    one_error_line(capsys, f"{labels}:3", "131,072 characters")


def test_11_training_csv_manifests_name_file_and_row(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"path,gloss\na.mp4,0\n{HUGE}.mp4,1\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=f"{re.escape(str(manifest))}:3: .*131,072 characters"
    ):
        read_manifest(manifest, ["gloss"])
    first = tmp_path / "first.csv"
    first.write_text(f"\n{HUGE},gloss\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{re.escape(str(first))}:2: "):
        is_manifest(first)
    table = tmp_path / "table.txt"
    table.write_text(f"name,start,end,gloss\na,0,1,{HUGE}\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{re.escape(str(table))}:2: "):
        read_annotation_file(table, ["gloss"], separator=",")


def test_12_labels_csv_a_fifo_or_device_labels_file_is_refused(
    tmp_path: Path, capsys, unblock_fifos
) -> None:
    fifo = unblock_fifos(tmp_path / "labels.csv")
    for labels in (fifo, Path("/dev/zero"), tmp_path):
        args = ["--labels", str(labels), "--videos", str(tmp_path)]
        assert labels_csv.main([*args, "--output", str(tmp_path / "root")]) == 2
        one_error_line(capsys, str(labels), "not a file")


def test_22_labels_csv_a_label_with_a_line_break_is_refused_naming_the_row(
    tmp_path: Path,
) -> None:
    write_video(tmp_path / "clip.mp4", frames=2)
    labels = labels_file(
        tmp_path / "labels.csv", 'video,label\nclip.mp4,"thank\nyou"\n'
    )
    with pytest.raises(
        DataError, match=re.escape(f"{labels}:2: label 'thank\\nyou' holds")
    ):
        labels_csv.read_labels(labels)


@pytest.mark.parametrize(
    "label", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", '"=HYPERLINK(x)"']
)
def test_22_labels_csv_a_label_a_spreadsheet_would_run_is_refused(
    label: str, tmp_path
) -> None:
    write_video(tmp_path / "clip.mp4", frames=2)
    labels = labels_file(tmp_path / "labels.csv", f"video,label\nclip.mp4,{label}\n")
    with pytest.raises(
        DataError, match=f"{re.escape(str(labels))}:2: label .* formula"
    ):
        labels_csv.read_labels(labels)
