"""data_preprocessing.labels_csv: labels CSV + videos -> a dataset root, trained on."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from helpers import merge, tiny_overrides

import train
from data_preprocessing import labels_csv
from datasets.index import index_samples
from utils.annotations import AnnotationRow, read_manifest
from utils.errors import DataError, UserError

FRAMES = 8


def write_video(path: Path, frames: int = FRAMES, shade: int = 0) -> None:
    """A 64x48 mpeg4 video at 10 fps, its red channel rising with the frame index."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            image = np.full((48, 64, 3), shade, np.uint8)
            image[..., 0] = 20 * index
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def make_videos(folder: Path, labels: dict[str, str]) -> None:
    """One tiny video per name; the label sets its shade."""
    folder.mkdir(parents=True, exist_ok=True)
    shades = {label: 60 * i for i, label in enumerate(sorted(set(labels.values())))}
    for name, label in labels.items():
        write_video(folder / f"{name}.mp4", shade=shades[label])


CLIPS = {
    "hello_1": ("hello", "train", "anna"),
    "hello_2": ("hello", "val", "ben"),
    "thank you_1": ("thank you", "train", "anna"),
    "thank you_2": ("thank you", "val", "ben"),
    "book_1": ("book", "train", "anna"),
    "book_2": ("book", "val", "ben"),
}


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    """Six tiny videos of three labels in tmp_path/videos."""
    folder = tmp_path / "videos"
    make_videos(folder, {name: clip[0] for name, clip in CLIPS.items()})
    return folder


def write_csv(path: Path, lines: list[str]) -> Path:
    """A labels CSV from its lines."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def full_csv(path: Path) -> Path:
    """The labels CSV of CLIPS, with split and signer columns."""
    lines = ["video,label,split,signer"] + [
        f"{name}.mp4,{label},{split},{signer}"
        for name, (label, split, signer) in CLIPS.items()
    ]
    return write_csv(path, lines)


def read_rows(root: Path) -> list[list[str]]:
    """The annotation file's lines split into columns."""
    text = (root / labels_csv.ANNOTATION_FILE).read_text(encoding="utf-8")
    return [line.split() for line in text.splitlines()]


def test_frames_root_is_written_and_trains(videos, tmp_path, shipped_config, capsys):
    labels = full_csv(tmp_path / "labels.csv")
    root = tmp_path / "root"
    args = ["--labels", str(labels), "--videos", str(videos), "--output", str(root)]
    assert labels_csv.main([*args, "--frames", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 clips (train 3, val 3), 3 classes" in out and "next:" in out
    rows = read_rows(root)
    assert rows[0] == ["name", "start", "end", "gloss", "split", "signer"]
    ids = {"book": "0", "hello": "1", "thank you": "2"}
    expected = {
        name.replace(" ", "_"): ["0", str(FRAMES - 1), ids[label], split, signer]
        for name, (label, split, signer) in CLIPS.items()
    }
    assert {row[0]: row[1:] for row in rows[1:]} == expected
    glosses = (root / "glosses.txt").read_text(encoding="utf-8").splitlines()
    assert glosses == ["id gloss", "0 book", "1 hello", "2 thank you"]
    for name in expected:
        assert len(list((root / name).glob(f"{name}_*.jpg"))) == FRAMES
        assert (root / name / f"{name}_properties.json").is_file()
    config = merge(copy.deepcopy(shipped_config), tiny_overrides())
    config["general_parameters"].update(
        data_path=str(root), path_to_save=str(tmp_path / "run")
    )
    config["train_parameters"]["classification_mode"] = ["gloss"]
    del config["heads"]["hamnosys"]
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    assert train.main(["--model_config_path", str(path)]) == 0
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()


@pytest.mark.usefixtures("videos")
def test_without_frames_only_the_annotations_are_written(tmp_path):
    labels = write_csv(
        tmp_path / "labels.csv",
        ["Label,Video"]
        + [f"{clip[0]},videos/{name}.mp4" for name, clip in CLIPS.items()],
    )
    root = tmp_path / "root"
    assert labels_csv.main(["--labels", str(labels), "--output", str(root)]) == 0
    rows = read_rows(root)
    assert rows[0] == ["name", "start", "end", "gloss"]
    assert all(row[1:3] == ["0", str(FRAMES - 1)] for row in rows[1:])
    assert not [path for path in root.iterdir() if path.is_dir()]


def test_missing_mediapipe_skips_landmarks_with_a_note(
    videos, tmp_path, monkeypatch, capsys
):
    def no_mediapipe():
        raise UserError("mediapipe is not installed")

    monkeypatch.setattr(labels_csv, "load_mediapipe", no_mediapipe)
    labels = full_csv(tmp_path / "labels.csv")
    root = tmp_path / "root"
    args = ["--labels", str(labels), "--videos", str(videos), "--output", str(root)]
    assert labels_csv.main([*args, "--landmarks", "--workers", "1"]) == 0
    assert "note: no landmarks written: mediapipe is not installed" in (
        capsys.readouterr().err
    )
    assert len(read_rows(root)) == len(CLIPS) + 1


def test_bad_lines_are_all_reported_with_file_and_line(videos, tmp_path, capsys):
    (videos / "sub").mkdir()
    write_video(videos / "sub" / "hello_1.mp4")
    labels = write_csv(
        tmp_path / "labels.csv",
        [
            "video,label,split",
            "hello_1.mp4,hello,train",
            "missing.mp4,hello,train",
            "book_1.mp4,,train",
            "book_2.mp4,book,training",
            "sub/hello_1.mp4,hello,val",
        ],
    )
    args = ["--labels", str(labels), "--videos", str(videos), "--output"]
    assert labels_csv.main([*args, str(tmp_path / "root")]) == 2
    err = capsys.readouterr().err
    assert f"{labels}:3: video missing.mp4 not found" in err
    assert f"{labels}:4: empty label" in err
    assert f"{labels}:5: split 'training' is not one of train, val, test" in err
    assert f"{labels}:6: clip name hello_1" in err and f"{labels}:2" in err
    assert not (tmp_path / "root" / labels_csv.ANNOTATION_FILE).exists()


@pytest.mark.parametrize(
    "lines, message",
    [
        (["hello_1.mp4,hello"], ":1: the first line must be a header"),
        (["video,label,gloss"], "unknown: gloss"),
        (["video,label"], "no clips"),
        (["video,label,split", "hello_1.mp4,hello,train", "book_1.mp4,book,"], ":3"),
    ],
)
def test_header_and_partial_columns(videos, tmp_path, lines, message):
    labels = write_csv(tmp_path / "labels.csv", lines)
    with pytest.raises(DataError, match=message):
        labels_csv.read_labels(labels, videos)


def test_class_ids_sort_numbers_by_value():
    assert labels_csv.class_ids(["10", "2", "b", "a", "2"]) == {
        "2": 0,
        "10": 1,
        "a": 2,
        "b": 3,
    }


def test_a_video_beside_a_missing_sample_folder_is_the_sample(tmp_path):
    write_video(tmp_path / "clip.mp4")
    row = AnnotationRow("clip", 0, 3, {"gloss": 0}, "test_gloss.txt:2")
    (sample,) = index_samples([row], tmp_path, frames=True, landmarks=False)
    assert sample.video_path == tmp_path / "clip.mp4" and sample.length == 4
    with pytest.raises(DataError) as error:
        index_samples([row], tmp_path, frames=False, landmarks=True)
    message = str(error.value)
    assert "sample folder" in message and "clip.mp4" in message
    assert "data_preprocessing.extract_landmarks" in message


def test_manifest_paths_survive_moving_the_dataset_folder(videos, tmp_path):
    """Videos outside ROOT are stored absolute (no `../`), inside ROOT relative."""
    labels = full_csv(tmp_path / "labels.csv")
    root = tmp_path / "data" / "mysigns"
    labels_csv.import_labels(labels, videos, root, manifest=True)
    paths = [
        line.split(",")[0]
        for line in (root / labels_csv.MANIFEST_FILE).read_text().splitlines()[1:]
    ]
    assert paths and all(Path(p).is_absolute() and ".." not in p for p in paths)
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    rows = read_manifest(moved / labels_csv.MANIFEST_FILE, ["gloss"])
    assert len(rows) == len(CLIPS) and all(Path(row.video).is_file() for row in rows)

    inside = tmp_path / "inside"
    (inside / "clips").mkdir(parents=True)
    for video in videos.glob("*.mp4"):
        video.rename(inside / "clips" / video.name)
    labels_csv.import_labels(labels, inside / "clips", inside, manifest=True)
    text = (inside / labels_csv.MANIFEST_FILE).read_text()
    assert text.splitlines()[1].startswith("clips/")
