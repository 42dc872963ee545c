"""`train.py --check_data`: every frame and landmark file decoded once, every bad file
listed with its reason, and nothing trained."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train
from datasets.check import check_sample
from datasets.index import Sample


@pytest.fixture
def data(sample_root: Path, tiny_config: dict, tmp_path: Path, write_config, capsys):
    """A private copy of the sample data, free to break, and `train.py --check_data`
    on it (with `config` sections updated) returning the exit status, stdout and
    stderr."""
    root = tmp_path / "data"
    shutil.copytree(sample_root, root)

    def check(workers: int = 0, **sections) -> tuple[int, str, str]:
        config = copy.deepcopy(tiny_config)
        config["general_parameters"].update(data_path=str(root), workers=workers)
        for section, values in sections.items():
            config.setdefault(section, {}).update(values)
        if "name" in sections.get("feature_extractor", {}):
            # The tiny config's timm model is cnn_extractor's own setting.
            config["feature_extractor"].pop("model_path")
        capsys.readouterr()
        path = write_config(config)
        code = train.main(["--model_config_path", str(path), "--check_data"])
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        assert not Path(config["general_parameters"]["path_to_save"]).exists()
        return code, out, err

    return root, check


def used_frames(root: Path) -> list[list[Path]]:
    """The frames each annotation row of `test_gloss.txt` uses, in file order."""
    frames = []
    for line in (root / "test_gloss.txt").read_text("utf-8").splitlines()[1:]:
        name, start, end = line.split()[:3]
        frames.append(
            [root / name / f"{name}_{i}.jpg" for i in range(int(start), int(end) + 1)]
        )
    return frames


def test_good_data_passes_with_a_summary(data) -> None:
    data_root, check = data
    code, out, _ = check()
    assert code == 0
    (summary,) = out.strip().splitlines()
    assert f"all {sum(map(len, used_frames(data_root)))} files" in summary
    assert summary.endswith("are good")


@pytest.mark.parametrize("workers", [0, 2])
def test_every_bad_file_is_listed_with_its_reason(data, workers: int) -> None:
    data_root, check = data
    clips = used_frames(data_root)
    truncated, deep, other_size = clips[0][1], clips[5][2], clips[-1][-1]
    truncated.write_bytes(truncated.read_bytes()[:200])
    Image.new("F", (40, 40)).save(deep, format="TIFF")  # any suffix: decoded by content
    Image.new("RGB", (20, 30)).save(other_size)
    dangling = clips[2][0]
    dangling.unlink()
    dangling.symlink_to(data_root / "gone.jpg")
    code, _, err = check(workers=workers)
    assert code == 2
    lines = err[err.index("error: ") :].splitlines()  # after the progress bar
    assert lines[0] == "error: --check_data: 4 problems in the data:"
    assert lines[1] == (
        f"{data_root / 'test_gloss.txt'}:4: frame file {dangling} is a dangling "
        f"symbolic link to {data_root / 'gone.jpg'}"
    )
    assert lines[2].startswith(f"{truncated}: cannot read image")
    assert lines[3].startswith(f"{deep}: a 32-bit floating-point image")
    assert lines[4].startswith(f"{other_size}: 20x30 pixels, but ")
    assert len(lines) == 5


def test_landmark_files_are_checked_too(data) -> None:
    data_root, check = data
    folders = sorted(path for path in data_root.iterdir() if path.is_dir())
    for folder in folders:
        frames = len(list(folder.glob("*.jpg")))
        np.savez(folder / f"{folder.name}.npz", pose=np.zeros((frames, 33, 3)))
    short, bad_fps = folders[0] / f"{folders[0].name}.npz", folders[1]
    np.savez(short, pose=np.zeros((1, 33, 3)))
    np.savez(bad_fps / f"{bad_fps.name}.npz", pose=np.zeros((99, 33, 3)), fps=-1.0)
    code, _, err = check(
        train_parameters={"landmarks": True},
        feature_extractor={"name": "landmarks_extractor"},
    )
    assert code == 2
    assert f"{short}: has 1 frames, but the annotation asks for frame" in err
    assert f"{bad_fps / bad_fps.name}.npz: fps: the FPS -1.0 is not a frame" in err


def test_check_sample_reports_nothing_for_good_files(tmp_path: Path) -> None:
    paths = []
    for index in range(3):
        paths.append(tmp_path / f"x_{index}.png")
        Image.new("L", (5, 4)).save(paths[-1])
    assert not check_sample(Sample("x", 0, 3, {}, paths), [])
