"""demo.py's API: predictions as predict.py makes them, bad uploads refused with a
message (never a 500), 8 concurrent requests each answered with its own result, the
server starting and saying where it listens, and `--ensemble` averaging models."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
import torch
import uvicorn
from fastapi.testclient import TestClient

from helpers import (
    GLOSSES,
    demo_server,
    model_config,
    one_error,
    serve_until_stopped,
    write_checkpoint,
)

import demo
from config.hamnosys_heads import HEAD_ORDER
from datasets.sign_dataset import collate_clips
from evaluation.checkpoints import load_checkpoint
from evaluation.prediction import ClipOptions, PredictionInput, load_clip
from serving.app import create_app
from serving.inference import DemoService, VideoFile, load_model
from utils.errors import UserError

MAX_UPLOAD = 200_000


def write_video(path: Path, seed: int, frames: int = 10) -> Path:
    """A 64x48 mpeg4 video of random frames (each seed gives another clip)."""
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(frames):
            image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def checkpoint(shipped_config, sample_root, tmp_path_factory) -> Path:
    """An image model with the gloss head and the eight HamNoSys heads."""
    folder = tmp_path_factory.mktemp("demo_model")
    raw = model_config(shipped_config, sample_root, "cnn_extractor")
    return write_checkpoint(raw, folder / "model.ckpt")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Eight different small videos."""
    folder = tmp_path_factory.mktemp("demo_videos")
    return [write_video(folder / f"clip{seed}.mp4", seed) for seed in range(8)]


@pytest.fixture(scope="module")
def client(checkpoint) -> TestClient:
    """The app in this process."""
    loaded, backend = load_model(checkpoint)
    service = DemoService(loaded, backend)
    return TestClient(create_app(service, max_upload_bytes=MAX_UPLOAD))


def post(client, name: str, data: bytes, field: str = "video"):
    """POST /api/predict with one multipart file."""
    return client.post("/api/predict", files={field: (name, data, "video/mp4")})


def probabilities(checkpoint: Path, video: Path) -> dict[str, np.ndarray]:
    """Each head's class probabilities, by predict.py's clip and the model."""
    loaded = load_checkpoint(checkpoint, torch.device("cpu"))
    options = ClipOptions.from_config(loaded.config, all_frames=False)
    batch = collate_clips([load_clip(PredictionInput(video.stem, video), options)])
    with torch.inference_mode():
        logits = loaded.model(batch)["logits"]
    return {
        head: torch.softmax(values[0], -1).numpy() for head, values in logits.items()
    }


def expected_top1(checkpoint: Path, video: Path) -> dict[str, tuple[str, float]]:
    """Each head's top class and probability, by predict.py's clip and the model."""
    names = load_checkpoint(checkpoint, torch.device("cpu")).label_names
    top = {}
    for head, values in probabilities(checkpoint, video).items():
        index = int(values.argmax())
        top[head] = (names[head][index], float(values[index]))
    return top


def test_prediction_is_predict_pys_clip_through_the_model(client, checkpoint, videos):
    response = post(client, "clip0.mp4", videos[0].read_bytes())
    assert response.status_code == 200, response.text
    result = response.json()
    assert list(result["heads"]) == ["gloss", *HEAD_ORDER]
    assert [item["label"] for item in result["heads"]["gloss"]] != []
    assert {item["label"] for item in result["heads"]["gloss"]} == set(GLOSSES)
    assert len(result["heads"]["hand_location_y"]) == 5
    assert result["head_kinds"]["gloss"] == "gloss"
    assert result["head_kinds"]["hand_shape_base_form"] == "hamnosys"
    for head, (label, probability) in expected_top1(checkpoint, videos[0]).items():
        assert result["heads"][head][0]["label"] == label
        assert result["heads"][head][0]["probability"] == pytest.approx(
            probability, abs=1e-5
        )
    for step in ("upload", "probe", "decode", "model", "overlay", "total"):
        assert result["timings_ms"][step] >= 0
    assert result["frames"]["num_frames"] == 10
    assert len(result["frames"]["positions"]) == 4
    assert result["landmark_strip"].startswith("data:image/jpeg;base64,")


def test_the_page_is_served_without_external_resources(client):
    page = client.get("/")
    assert page.status_code == 200 and "api/predict" in page.text
    assert 'id="top5"' in page.text and 'id="hamnosys"' in page.text
    assert "MediaRecorder" in page.text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
    info = client.get("/api/info").json()
    assert info["backend"] == "torch" and info["reads"] == ["frames"]


@pytest.mark.parametrize(
    "name, data, status, message",
    [
        (
            "notes.txt",
            b"these are not video bytes",
            422,
            "notes.txt: cannot open video",
        ),
        ("empty.mp4", b"", 400, "empty.mp4: the file is empty"),
        ("noise.mp4", bytes(range(256)) * 64, 422, "noise.mp4: cannot open video"),
        ("big.mp4", b"\0" * (MAX_UPLOAD + 1), 413, "larger than the limit of 0.2 MB"),
        # Declared larger than the limit: refused before the body is read.
        ("huge.mp4", b"\0" * (MAX_UPLOAD + 2_000_000), 413, "larger than the limit"),
    ],
)
def test_bad_uploads_get_a_4xx_and_a_message(client, name, data, status, message):
    response = post(client, name, data)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_a_corrupt_video_and_a_missing_field_get_a_4xx(client, videos):
    data = videos[1].read_bytes()
    headless = data[len(data) // 2 :]  # the container header is gone
    response = post(client, "cut.mp4", headless)
    assert response.status_code == 422 and "cut.mp4" in response.json()["detail"]
    response = post(client, "clip.mp4", data, field="file")
    assert response.status_code == 400 and "'video'" in response.json()["detail"]
    # The server still answers afterwards.
    assert post(client, "clip1.mp4", data).status_code == 200


@pytest.fixture(scope="module")
def server(checkpoint, tmp_path_factory):
    """demo.py serving the test model; its URL and start-up seconds."""
    log = tmp_path_factory.mktemp("demo_server") / "stderr.txt"
    with demo_server(checkpoint, log) as started:
        yield started


def test_the_server_starts_quickly_and_says_where(server):
    url, seconds = server
    # A few seconds on an idle machine; generous for 2 cores shared with other tests.
    assert seconds < 180
    assert httpx.get(url, timeout=30).status_code == 200


def test_eight_concurrent_requests_each_get_their_own_result(
    server, checkpoint, videos
):
    url, _ = server
    expected = {video.name: expected_top1(checkpoint, video) for video in videos}
    assert len({top["gloss"][1] for top in expected.values()}) == len(videos)

    def ask(video: Path) -> tuple[str, int, dict]:
        with video.open("rb") as file:
            response = httpx.post(
                url + "api/predict",
                files={"video": (video.name, file, "video/mp4")},
                timeout=300,
            )
        return video.name, response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=len(videos)) as pool:
        answers = list(pool.map(ask, videos))
    for name, status, result in answers:
        assert status == 200, result
        assert result["file"] == name
        for head, (label, probability) in expected[name].items():
            assert result["heads"][head][0]["label"] == label
            assert result["heads"][head][0]["probability"] == pytest.approx(
                probability, abs=1e-5
            )


@pytest.fixture(scope="module")
def other_checkpoint(shipped_config, sample_root, tmp_path_factory) -> Path:
    """The model of `checkpoint` with other (random) weights."""
    folder = tmp_path_factory.mktemp("demo_member")
    raw = model_config(shipped_config, sample_root, "cnn_extractor")
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return write_checkpoint(raw, folder / "member.ckpt")


def test_an_ensemble_answers_the_mean_of_its_members_probabilities(
    checkpoint, other_checkpoint, videos, monkeypatch
):
    # MediaPipe is not under test here (an image model's strip would run it).
    monkeypatch.setattr(DemoService, "_check_mediapipe", lambda _: False)
    loaded, backend = load_model(checkpoint, [other_checkpoint])
    service = DemoService(loaded, backend, warm_up_now=False)
    assert service.info()["ensemble"] == [str(other_checkpoint)]
    result = service.predict(VideoFile(videos[2], "clip2.mp4"))
    members = [
        probabilities(path, videos[2]) for path in (checkpoint, other_checkpoint)
    ]
    assert not np.allclose(members[0]["gloss"], members[1]["gloss"], atol=1e-3)
    assert list(result["heads"]) == list(members[0])
    names = loaded.label_names
    for head, top in result["heads"].items():
        mean = (members[0][head] + members[1][head]) / 2
        order = np.argsort(-mean, kind="stable")[: len(top)]
        assert [item["label"] for item in top] == [names[head][i] for i in order]
        for item, index in zip(top, order):
            assert item["probability"] == pytest.approx(mean[index], abs=1e-5)


def test_an_ensemble_member_with_other_classes_is_refused(
    checkpoint, shipped_config, sample_root, tmp_path
):
    raw = model_config(shipped_config, sample_root, "cnn_extractor")
    other = write_checkpoint(raw, tmp_path / "other.ckpt", ["no", "hello", "yes"])
    with pytest.raises(UserError) as refused:
        load_model(checkpoint, [other])
    message = str(refused.value)
    assert str(other) in message and "head gloss has other classes" in message


def test_demo_takes_an_ensemble_but_not_with_an_onnx_model(
    checkpoint, tmp_path, capsys, monkeypatch
):
    args = demo.parse_args(["model.ckpt", "--ensemble", "a.ckpt", "zoo_name"])
    assert args.checkpoint == Path("model.ckpt")
    assert args.ensemble == [Path("a.ckpt"), Path("zoo_name")]
    assert demo.parse_args([]).ensemble == []
    exported = tmp_path / "model.onnx"
    exported.write_bytes(b"refused before it is read")
    monkeypatch.setattr(uvicorn.Server, "run", serve_until_stopped)
    status = demo.main([str(exported), "--ensemble", str(checkpoint), "--port", "0"])
    one_error(capsys, status, str(exported), "--ensemble averages train.py checkpoints")
