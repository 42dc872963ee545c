"""From a person's video to the right sign: signpipe's own extraction of real WLASL
videos (as predict.py and the demo run it, and as `data_preprocessing.wlasl --videos`
imports WLASL) gives the points of WLASL's published landmark files of the same clips,
and the shipped WLASL300 model gives, from the raw videos, the answer it gives from
those files (through predict.py and through the demo's API).

The sample videos (`../shared/data/video/wlasl_sample/`: 69531 "what", 69546 "yes",
both in WLASL300's val split, so the model never trained on them; 69532 "when", a
WLASL2000 sign) and their benchmark landmarks (`../shared/data/wlasl_hands/`) are
real data; the tests skip with a reason when `../shared` or mediapipe is absent.
"""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import SHARED_DATA

from datasets.clip_landmarks import extract_video
from datasets.landmark_layout import canonical_hands
from datasets.landmarks import NORMALISED, landmark_arrays, read_landmarks
from datasets.tracking import load_mediapipe
from evaluation.checkpoints import resolve_checkpoint
from models.zoo import zoo_file
from utils.errors import UserError

SAMPLE = SHARED_DATA / "video" / "wlasl_sample"
WLASL_HANDS = SHARED_DATA / "wlasl_hands"
HANDS = WLASL_HANDS / "wlasl2000_hands_trainval.npz"
#: The sample clips the WLASL300 model knows, with their true gloss.
KNOWN = {"69531": "what", "69546": "yes"}
ALL_CLIPS = ("69531", "69532", "69546")

pytestmark = pytest.mark.skipif(
    not (SAMPLE.is_dir() and HANDS.is_file()),
    reason="../shared/data (the WLASL sample videos and hand landmarks) is absent",
)


@pytest.fixture(scope="module")
def benchmark() -> dict[str, np.ndarray]:
    """WLASL's published hand landmarks of the sample clips, `(T, 2, 21, 3)`."""
    with np.load(HANDS) as data:
        return {clip: np.asarray(data[clip], np.float32) for clip in ALL_CLIPS}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[str, Path]:
    """signpipe's hands extraction of every frame of each sample video."""
    try:
        load_mediapipe()
    except UserError as error:
        pytest.skip(str(error))
    folder = tmp_path_factory.mktemp("parity")
    files = {}
    for clip in ALL_CLIPS:
        files[clip] = folder / f"{clip}.npz"
        extract_video(SAMPLE / f"{clip}.mp4", files[clip], tracker="hands")
    return files


def _present(hands: np.ndarray) -> np.ndarray:
    return np.isfinite(hands[..., 0, 0])


def assert_same_points(ours: np.ndarray, theirs: np.ndarray) -> None:
    """Same frames with hands, and the same points within a few thousandths of the
    frame, after both went through the one reader."""
    assert ours.shape == theirs.shape  # one row per video frame, two slots
    # The frames where hands were found agree (tracking may differ by a frame).
    agree = (_present(ours).sum(1) > 0) == (_present(theirs).sum(1) > 0)
    assert agree.mean() >= 0.9
    # Read as a model reads them: hands on sides by the one rule, normalised units.
    sides = []
    for hands in (ours, theirs):
        left, right = canonical_hands(hands)
        sides.append(np.concatenate([left, right], axis=1))
    both = np.isfinite(sides[0][..., 0]) & np.isfinite(sides[1][..., 0])
    assert both.sum() >= 20 * 21
    distance = np.linalg.norm(sides[0][..., :2] - sides[1][..., :2], axis=-1)[both]
    # Same hands on the same sides: points a few thousandths of the frame apart
    # (a hand put on the wrong side would be a tenth or more away).
    assert np.median(distance) < 0.01
    assert np.quantile(distance, 0.9) < 0.03


@pytest.mark.parametrize("clip", ALL_CLIPS)
def test_extraction_matches_the_benchmark_points(clip, extracted, benchmark) -> None:
    """predict.py's and the demo's extraction of the whole video gives the points of
    WLASL's published file."""
    with np.load(extracted[clip]) as data:
        assert str(data["coordinates"]) == NORMALISED
        assert list(np.asarray(data["frame_size"])) == [1280, 720]
        ours = np.asarray(data["hands"])
    assert_same_points(ours, benchmark[clip])


def test_wlasl_import_from_the_videos_gives_the_published_points(
    benchmark, tmp_path, capsys
) -> None:
    """From WLASL's public files alone: the official split file (`nslt_2000.json`,
    cut to the sample clips and one clip whose video is gone), the class list and a
    folder of `VIDEO_ID.mp4` videos as the start kit writes them, `wlasl --videos`
    runs signpipe's Hands tracker on each video of the split and writes the root the
    recipes read, with the points of WLASL's published landmarks."""
    # pylint: disable-next=import-outside-toplevel
    from data_preprocessing import wlasl

    try:
        load_mediapipe()
    except UserError as error:
        pytest.skip(str(error))
    entries = json.loads((WLASL_HANDS / "nslt_2000.json").read_text())
    gone = next(clip for clip in entries if clip not in ALL_CLIPS)
    split = tmp_path / "nslt_tiny.json"
    split.write_text(
        json.dumps({clip: entries[clip] for clip in (*ALL_CLIPS, gone)}),
        encoding="utf-8",
    )
    root = tmp_path / "wlasl"
    command = ["--split_file", str(split), "--videos", str(SAMPLE), "--output"]
    class_list = WLASL_HANDS / "wlasl_class_list.txt"
    command += [str(root), "--class_list", str(class_list), "--workers", "1"]
    assert wlasl.main(command) == 0
    out = capsys.readouterr().out
    assert "train: 1 clips, 1 classes" in out and "val: 2 clips, 2 classes" in out
    assert f"skipped 1 videos without a video in {SAMPLE}" in out
    rows = [
        line.split()
        for line in (root / "test_gloss.txt").read_text("utf-8").splitlines()[1:]
    ]
    expected = {clip: entries[clip]["subset"] for clip in ALL_CLIPS}
    assert {row[0]: row[4] for row in rows} == expected
    glosses = (root / "glosses.txt").read_text("utf-8").split()
    assert {"what", "when", "yes"} <= set(glosses)
    for clip in ALL_CLIPS:
        with np.load(root / clip / f"{clip}.npz") as data:
            assert str(data["coordinates"]) == NORMALISED
            assert_same_points(np.asarray(data["hands"]), benchmark[clip])


def test_pixel_files_read_as_normalised(tmp_path, benchmark) -> None:
    """A file in pixels with its frame size reads as the same points as the
    normalised file; one in pixels without a frame size is refused, not mixed in."""
    hands = benchmark["69531"]
    normalised = tmp_path / "n.npz"
    np.savez(normalised, **landmark_arrays({"hands": hands}, frame_size=(1280, 720)))
    scale = np.array([1280, 720, 1280], np.float32)
    pixels = tmp_path / "p.npz"
    np.savez(pixels, hands=hands * scale, coordinates="pixels", frame_size=[1280, 720])
    parts = ["left_hand", "right_hand"]
    a, b = read_landmarks(normalised, parts)[0], read_landmarks(pixels, parts)[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, equal_nan=True)
    legacy = tmp_path / "legacy.npz"
    np.savez(legacy, hands=hands * scale)  # what extract_landmarks wrote before
    with pytest.raises(UserError, match="pixel coordinates"):
        read_landmarks(legacy, parts)


@pytest.fixture(scope="module")
def zoo_model() -> Path:
    """The shipped WLASL300 hands model."""
    path = zoo_file("wlasl300_hands")
    assert path is not None, "models/zoo/wlasl300_hands.ckpt is missing"
    return path


def _top5(predictions: Path) -> dict[str, list[str]]:
    with predictions.open(encoding="utf-8") as file:
        return {
            row["input"]: [row[f"top{k}"] for k in range(1, 6)]
            for row in csv.DictReader(file)
            if row["head"] == "gloss"
        }


@pytest.mark.usefixtures("zoo_model", "extracted")
def test_zoo_model_answers_from_raw_videos_as_from_benchmark_landmarks(
    benchmark, tmp_path
) -> None:
    """predict.py by the zoo name: from the raw videos (its own extraction, on the
    sampled frames only) and from WLASL's landmark files (MediaPipe Hands on every
    frame) placed beside copies of them, the true gloss in the top 5 both ways, and
    mostly the same five glosses."""
    # pylint: disable-next=import-outside-toplevel
    import predict

    raw, with_files = tmp_path / "raw", tmp_path / "with_files"
    for folder in (raw, with_files):
        folder.mkdir()
    for clip in KNOWN:
        shutil.copy(SAMPLE / f"{clip}.mp4", raw)
        shutil.copy(SAMPLE / f"{clip}.mp4", with_files)
        (with_files / clip).mkdir()
        arrays = landmark_arrays({"hands": benchmark[clip]}, frame_size=None)
        np.savez(with_files / clip / f"{clip}.npz", **arrays)
    assert predict.main(["wlasl300_hands", str(raw), str(tmp_path / "out_raw")]) == 0
    assert (
        predict.main(["wlasl300_hands", str(with_files), str(tmp_path / "out_files")])
        == 0
    )
    from_video = _top5(tmp_path / "out_raw" / "predictions.csv")
    from_files = _top5(tmp_path / "out_files" / "predictions.csv")
    for clip, gloss in KNOWN.items():
        assert gloss in from_video[clip], (clip, from_video[clip])
        assert gloss in from_files[clip], (clip, from_files[clip])
        shared = set(from_video[clip]) & set(from_files[clip])
        assert len(shared) >= 3, (clip, from_video, from_files)


@pytest.mark.usefixtures("zoo_model", "extracted")
def test_demo_api_recognises_real_videos() -> None:
    """The demo's API with the zoo model: each real video's true gloss in its top 5,
    and the strip drawn from the frames the model read."""
    # pylint: disable-next=import-outside-toplevel
    from fastapi.testclient import TestClient

    # pylint: disable-next=import-outside-toplevel
    from serving.app import create_app

    # pylint: disable-next=import-outside-toplevel
    from serving.inference import DemoService, load_model

    loaded, backend = load_model(resolve_checkpoint("wlasl300_hands"))
    client = TestClient(
        create_app(DemoService(loaded, backend), max_upload_bytes=10**7)
    )
    for clip, gloss in KNOWN.items():
        data = (SAMPLE / f"{clip}.mp4").read_bytes()
        answer = client.post(
            "/api/predict", files={"video": (f"{clip}.mp4", data, "video/mp4")}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        top5 = [entry["label"] for entry in body["heads"]["gloss"]]
        assert gloss in top5, (clip, top5)
        assert body["landmark_strip"].startswith("data:image/jpeg;base64,")
        assert body["landmarks_drawn"] > 0


@pytest.mark.usefixtures("zoo_model")
def test_test_py_evaluates_the_zoo_model_by_name(benchmark, tmp_path) -> None:
    """`test.py partial wlasl300_hands val --data_path ROOT` on the two sample clips
    imported from WLASL's landmark files (with their official split entries): both
    recognised (top-5)."""
    # pylint: disable=import-outside-toplevel
    import test as test_script
    from data_preprocessing.wlasl import import_wlasl

    entries = json.loads((SHARED_DATA / "wlasl_hands" / "nslt_300.json").read_text())
    with np.load(HANDS) as data:  # one train clip: the split needs both sets
        train = next(
            (clip, entry)
            for clip, entry in entries.items()
            if entry["subset"] == "train" and clip in data.files
        )
        arrays = {train[0]: np.asarray(data[train[0]])}
    split = tmp_path / "nslt_3.json"
    entries = {clip: entries[clip] for clip in KNOWN}
    split.write_text(json.dumps({**entries, train[0]: train[1]}), encoding="utf-8")
    landmarks = tmp_path / "hands.npz"
    np.savez(landmarks, **arrays, **{clip: benchmark[clip] for clip in KNOWN})
    root = tmp_path / "wlasl"
    import_wlasl(
        split,
        landmarks,
        root,
        class_list=SHARED_DATA / "wlasl_hands" / "wlasl_class_list.txt",
    )
    output = tmp_path / "results"
    args = ["partial", "wlasl300_hands", "val", "--data_path", str(root)]
    assert test_script.main([*args, "--save", "--output_dir", str(output)]) == 0
    (results,) = output.glob("*val-results.json")
    result = json.loads(results.read_text(encoding="utf-8"))
    assert result["samples"] == 2
    assert result["gloss"]["top_k_per_instance_acc"]["top5"] == 1.0, result
