"""`data_preprocessing.wlasl --videos`: WLASL's split file and its videos, without
landmarks, into the root the recipes read. The run on real WLASL videos, compared with
WLASL's published landmarks, is in tests/test_landmark_parity.py; these are the
checks that need neither mediapipe nor ../shared."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

from pathlib import Path

import pytest

from test_labels_csv import FRAMES, write_video
from test_wlasl import write_class_list, write_json

from data_preprocessing.wlasl import main
from datasets.landmarks import read_landmarks


@pytest.fixture
def split(tmp_path: Path) -> dict:
    """A two-clip nslt split file and its class list."""
    entries = {
        "00001": {"subset": "train", "action": [0, 1, 20]},
        "00002": {"subset": "val", "action": [1, 1, 20]},
    }
    return {
        "split": write_json(tmp_path / "nslt_2.json", entries),
        "classes": write_class_list(tmp_path / "classes.txt", ["book", "drink"]),
    }


def _args(split: dict) -> list[str]:
    return ["--split_file", str(split["split"]), "--class_list", str(split["classes"])]


@pytest.mark.parametrize("sources", [(), ("--landmarks", "x.npz", "--videos", "v")])
def test_one_source_of_the_two(split: dict, tmp_path: Path, capsys, sources) -> None:
    """Exactly one of --landmarks and --videos."""
    with pytest.raises(SystemExit) as exit_info:
        main([*_args(split), *sources, "--output", str(tmp_path / "root")])
    assert exit_info.value.code == 2
    assert "--landmarks" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def test_a_folder_without_the_splits_videos_is_one_error(
    split: dict, tmp_path: Path, capsys
) -> None:
    """No video of the split in the folder: one error naming it, nothing written
    (and mediapipe is not needed to find that out)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "99999.mp4").write_bytes(b"not the split's")
    root = tmp_path / "root"
    code = main([*_args(split), "--videos", str(videos), "--output", str(root)])
    assert code == 2
    err = capsys.readouterr().err
    assert f"none of the 2 videos of {split['split']} has a video in {videos}" in err
    assert not root.exists()


def test_videos_must_be_a_folder(split: dict, tmp_path: Path, capsys) -> None:
    """--videos names a file or nothing: one error saying what is expected."""
    root = tmp_path / "root"
    code = main([*_args(split), "--videos", str(split["split"]), "--output", str(root)])
    assert code == 2
    assert "VIDEO_ID.mp4" in capsys.readouterr().err
    assert not root.exists()


def test_a_video_that_cannot_be_decoded_is_listed_and_the_rest_imported(
    split: dict, tmp_path: Path, capsys
) -> None:
    """One good video and one broken file: the good one is followed and imported
    (a clip whose frames hold no hand: all NaN, one row per frame), the broken one is
    named at the end, exit status 1; all broken: one error naming them, status 2."""
    pytest.importorskip("mediapipe")
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "00001.mp4")
    (videos / "00002.mp4").write_bytes(b"not a video")
    root = tmp_path / "root"
    args = [*_args(split), "--videos", str(videos), "--workers", "1"]
    assert main([*args, "--output", str(root)]) == 1
    captured = capsys.readouterr()
    assert "train: 1 clips" in captured.out and "val: 0 clips" in captured.out
    assert "failed: 1 of 1 videos" in captured.err and "00002.mp4" in captured.err
    lines = (root / "test_gloss.txt").read_text(encoding="utf-8").splitlines()
    assert lines[1:] == [f"00001 0 {FRAMES - 1} 0 train"]
    hands = read_landmarks(root / "00001" / "00001.npz", ["left_hand", "right_hand"])
    assert len(hands[0]) == FRAMES
    (videos / "00001.mp4").unlink()
    assert main([*args, "--output", str(tmp_path / "root2")]) == 2
    assert "00002.mp4" in capsys.readouterr().err
