"""videos_to_frames and extract_landmarks on a real AUTSL video and synthetic ones."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from helpers import AUTSL_FRAMES, AUTSL_VIDEO, needs_mediapipe, needs_video

import train
from data_preprocessing import extract_landmarks, videos_to_frames
from datasets.index import list_frames
from datasets.landmarks import read_landmarks
from datasets.video_files import fitted_size
from datasets.videos import decode_video
from utils.errors import DataError, UserError

PARTS = {"pose": 33, "face": 468, "left_hand": 21, "right_hand": 21}


def write_video(path: Path, frames: int = 12, fps: int = 10) -> None:
    """A 64x48 mpeg4 video whose frame i is uniformly red = 20 * i."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            image = np.zeros((48, 64, 3), np.uint8)
            image[..., 0] = 20 * index
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def reds(frames: list[np.ndarray]) -> list[int]:
    """Each frame's mean red value in steps of 20 (the synthetic frame index)."""
    return [round(float(frame[..., 0].mean()) / 20) for frame in frames]


def properties(folder: Path) -> dict:
    """A frame folder's `<name>_properties.json`."""
    return json.loads((folder / f"{folder.name}_properties.json").read_text("utf-8"))


def test_fitted_size_only_shrinks_and_keeps_aspect() -> None:
    assert fitted_size(640, 480, 100) == (100, 75)
    assert fitted_size(480, 640, 100) == (75, 100)
    assert fitted_size(64, 48, 100) == (64, 48)
    assert fitted_size(64, 48, None) == (64, 48)


def test_synthetic_video_round_trips_and_resamples(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.mp4"
    write_video(path)
    frames, fps = decode_video(path)
    assert fps == 10.0 and len(frames) == 12
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert reds(frames) == list(range(12))
    half, fps = decode_video(path, fps=5)
    assert fps == 5.0 and reds(half) == [0, 2, 4, 6, 8, 10]
    double, _ = decode_video(path, fps=20)
    assert reds(double) == [i // 2 for i in range(24)]
    small, _ = decode_video(path, max_side=32)
    assert small[0].shape == (24, 32, 3)
    with pytest.raises(ValueError, match="fps"):
        decode_video(path, fps=0)


def test_unreadable_videos_raise_data_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DataError, match="garbage.mp4: cannot open video"):
        decode_video(garbage)
    with pytest.raises(DataError, match="cannot open video"):
        decode_video(tmp_path / "missing.mp4")


def test_broken_video_is_summarised_and_the_good_one_written(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    videos, out = tmp_path / "videos", tmp_path / "frames"
    videos.mkdir()
    write_video(videos / "good.mp4")
    (videos / "broken.avi").write_bytes(b"\x00garbage" * 500)
    (videos / "notes.txt").write_text("not a video", encoding="utf-8")
    assert videos_to_frames.main([str(videos), str(out), "--workers", "2"]) == 1
    captured = capsys.readouterr()
    assert "wrote 1 of 2 videos (12 frames)" in captured.out
    assert "failed: 1 of 2 videos" in captured.err
    assert "broken.avi: cannot open video" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["good"]
    assert sorted(list_frames(out / "good", "good")) == list(range(12))
    assert properties(out / "good") == {
        "File": "good.mp4",
        "Codec": "mpeg4",
        "Frames": 12,
        "FPS": 10.0,
        "Width": 64,
        "Height": 48,
    }
    saved = [np.asarray(Image.open(out / "good" / f"good_{i}.jpg")) for i in range(12)]
    assert reds(saved) == list(range(12))


def test_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert videos_to_frames.main([str(tmp_path / "nothing"), str(tmp_path)]) == 2
    assert "error: input" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert videos_to_frames.main([str(tmp_path / "empty"), str(tmp_path / "o")]) == 2
    assert "error: no video files" in capsys.readouterr().err
    with pytest.raises(UserError, match="quality"):
        videos_to_frames.videos_to_frames(tmp_path, tmp_path, quality=0)


@needs_video
def test_autsl_video_to_frames_then_resized_and_resampled(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    assert videos_to_frames.main([str(AUTSL_VIDEO), str(out), "--workers", "1"]) == 0
    folder = out / AUTSL_VIDEO.stem
    assert sorted(list_frames(folder, folder.name)) == list(range(AUTSL_FRAMES))
    assert Image.open(folder / f"{folder.name}_0.jpg").size == (512, 512)
    info = properties(folder)
    assert info["FPS"] == 30.0 and info["Frames"] == AUTSL_FRAMES
    assert (info["Width"], info["Height"], info["Codec"]) == (512, 512, "mpeg4")
    (folder / f"{folder.name}.npz").write_bytes(b"kept")  # not a frame: kept
    args = [str(AUTSL_VIDEO), str(out), "--fps", "15", "--max_side", "128"]
    assert videos_to_frames.main(args) == 0
    frames = list_frames(folder, folder.name)
    assert sorted(frames) == list(range(22)), "43 frames at 30 fps -> 22 at 15 fps"
    assert Image.open(frames[21]).size == (128, 128)
    assert properties(folder)["FPS"] == 15.0 and properties(folder)["Frames"] == 22
    assert (folder / f"{folder.name}.npz").read_bytes() == b"kept"
    assert [p.name for p in out.iterdir()] == [folder.name], "no staging left over"


def test_missing_mediapipe_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import raises ImportError
    assert extract_landmarks.main([str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert "pip install -r requirements-landmarks.txt" in err


@needs_mediapipe
def test_unbundled_model_complexity_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mediapipe = extract_landmarks.load_mediapipe()
    lite = Path(mediapipe.__file__).parent / "modules" / "pose_landmark"
    if (lite / extract_landmarks.POSE_MODELS[0]).is_file():
        pytest.skip("this mediapipe has the lite pose model")
    args = [str(tmp_path), str(tmp_path / "out"), "--model_complexity", "0"]
    assert extract_landmarks.main(args) == 2
    err = capsys.readouterr().err
    assert "error: --model_complexity 0 needs" in err and "pose_landmark_lite" in err


@pytest.fixture(scope="module")
def autsl_landmarks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Landmarks of the AUTSL sample, from the video and from its frame folder.

    One extract_landmarks run over a folder holding the video (`video.mp4`) and the
    frame folder (`frames/`), with two worker processes. Returns the frame folder
    and both `.npz` paths.
    """
    if not AUTSL_VIDEO.is_file():
        pytest.skip("../shared/data (the real AUTSL video) is absent")
    try:
        extract_landmarks.load_mediapipe()
    except UserError as error:
        pytest.skip(str(error))
    base = tmp_path_factory.mktemp("autsl")
    inputs, out = base / "inputs", base / "landmarks"
    inputs.mkdir()
    (inputs / "video.mp4").symlink_to(AUTSL_VIDEO)
    (base / "frames.mp4").symlink_to(AUTSL_VIDEO)
    assert videos_to_frames.main([str(base / "frames.mp4"), str(inputs)]) == 0
    args = [str(inputs), str(out), "--workers", "2", "--model_complexity", "1"]
    assert extract_landmarks.main(args) == 0
    return {
        "frames": inputs / "frames",
        "video": out / "video" / "video.npz",
        "from_frames": out / "frames" / "frames.npz",
    }


@needs_video
@needs_mediapipe
@pytest.mark.parametrize("source", ["video", "from_frames"])
def test_landmarks_of_the_autsl_video(autsl_landmarks: dict, source: str) -> None:
    with np.load(autsl_landmarks[source]) as data:
        assert float(data["fps"]) == 30.0
        parts = {part: data[part] for part in PARTS}
    for part, points in PARTS.items():
        assert parts[part].shape == (AUTSL_FRAMES, points, 3)
        assert parts[part].dtype == np.float32
    found = {p: int(np.isfinite(a).all(axis=(1, 2)).sum()) for p, a in parts.items()}
    # Measured with mediapipe 0.10.14: pose 43, face 43, right 43, left 36.
    assert found["pose"] >= 40 and found["face"] >= 40, found
    assert found["right_hand"] >= 38 and found["left_hand"] >= 30, found
    for part, array in parts.items():  # NaN marks a whole undetected part
        assert np.isfinite(array).all(axis=(1, 2)).sum() == found[part]
        assert np.isfinite(array).any(axis=(1, 2)).sum() == found[part]
    xy = parts["pose"][np.isfinite(parts["pose"])].reshape(-1, 3)[:, :2]
    assert 0 < np.median(xy) < 512, "pixel coordinates of the 512x512 frame"
    points, shoulders, fps = read_landmarks(
        autsl_landmarks[source], ["pose", "left_hand", "right_hand"]
    )
    assert points.shape == (AUTSL_FRAMES, 23 + 21 + 21, 3) and fps == 30.0
    assert np.isfinite(shoulders).all()


@needs_video
@needs_mediapipe
def test_video_and_frame_folder_landmarks_agree(autsl_landmarks: dict) -> None:
    """The same frames (the folder's are JPEG-compressed) give nearly the same pose."""
    poses = []
    for source in ("video", "from_frames"):
        with np.load(autsl_landmarks[source]) as data:
            poses.append(np.asarray(data["pose"])[..., :2])
    gap = np.abs(poses[0] - poses[1])
    assert np.nanmedian(gap) < 5.0, "pixels"


@needs_video
@needs_mediapipe
def test_extracted_landmarks_train_with_frames(
    autsl_landmarks: dict, tiny_config: dict, write_config, tmp_path: Path
) -> None:
    """The AUTSL clip under four names, two glosses: frames + landmarks train."""
    root = tmp_path / "dataset"
    source = autsl_landmarks["frames"]
    lines = ["name start end gloss split"]
    for index, (gloss, split) in enumerate([(0, "train"), (1, "train")] * 2):
        name = f"clip{index}"
        folder = root / name
        folder.mkdir(parents=True)
        for frame, path in list_frames(source, source.name).items():
            shutil.copy(path, folder / f"{name}_{frame}.jpg")
        shutil.copy(autsl_landmarks["video"], folder / f"{name}.npz")
        lines.append(f"{name} 0 {AUTSL_FRAMES - 1} {gloss} {split}")
    lines[-2:] = [line.replace("train", "val") for line in lines[-2:]]
    (root / "test_gloss.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["data_path"] = str(root)
    config["train_parameters"].update(
        classification_mode="gloss", landmarks=True, fast_dev_run=True
    )
    config["heads"]["gloss"]["gloss"]["num_class"] = "auto"
    assert train.main(["--model_config_path", str(write_config(config))]) == 0
