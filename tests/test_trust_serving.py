"""The demo server and the video readers against hostile input (issue 26): a chunked
upload is cut off at the limit, frames over the pixel budget are refused by every
reader (also when the header lies), the landmark strip decodes nothing again, the
server answers only its own Host names with security headers on every response, and
every error body is `{"detail": "one string"}` that the page shows as text."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import shutil
import socket
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from helpers import model_config, write_checkpoint

from datasets.videos import (
    VideoReader,
    decode_video,
    probe_video,
    read_all_frames,
    read_frames,
)
import serving.app
from serving.app import FORM_OVERHEAD, NOT_A_FILE, create_app, page, serve
import serving.inference
from serving.inference import DemoService, VideoFile, load_model
from serving.security import allowed_hosts
from utils.errors import DataError, UserError

MAX_UPLOAD = 200_000
#: Bytes a test client sends at a time.
SEND_CHUNK = 64 * 1024
#: Over `datasets.videos.MAX_FRAME_PIXELS` (4096 x 4096).
HUGE_SIDE = 4100
OVER_BUDGET = f"its frames are {HUGE_SIDE}x{HUGE_SIDE} pixels, over the limit"
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def write_video(path: Path, frames: int, size: tuple[int, int] = (64, 48)) -> Path:
    """An mpeg4 video of `frames` frames (key frames as few as the encoder allows:
    one in 250)."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = 100_000
        image = np.zeros((height, width, 3), np.uint8)
        for index in range(frames):
            image[:] = index % 256
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")))
        container.mux(stream.encode())
    return path


def blank_frame(side: int) -> av.VideoFrame:
    """A black `side` x `side` JPEG-range YUV frame."""
    frame = av.VideoFrame(side, side, "yuvj420p")
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    return frame


def write_lying_video(path: Path) -> Path:
    """An MJPEG Matroska whose header says 64x64 and whose second frame is
    `HUGE_SIDE` pixels square (the decoder follows the JPEG, not the header)."""
    big = av.CodecContext.create("mjpeg", "w")
    big.width = big.height = HUGE_SIDE
    big.pix_fmt, big.time_base = "yuvj420p", Fraction(1, 10)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuvj420p"
        container.mux(stream.encode(blank_frame(64)))
        frame = blank_frame(HUGE_SIDE)
        frame.pts = 1
        for packet in big.encode(frame):
            packet.stream, packet.pts, packet.dts = stream, 1, 1
            container.mux(packet)
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def checkpoint(shipped_config, sample_root, tmp_path_factory) -> Path:
    """An image model (it reads frames)."""
    folder = tmp_path_factory.mktemp("trust_model")
    raw = model_config(shipped_config, sample_root, "cnn_extractor")
    return write_checkpoint(raw, folder / "model.ckpt")


@pytest.fixture(scope="module")
def service(checkpoint) -> DemoService:
    """The demo's service without MediaPipe (the strip is drawn without points)."""

    def absent(tracker: str) -> None:
        raise UserError(f"mediapipe is left out of these tests ({tracker})")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serving.inference, "check_installed", absent)
        loaded, backend = load_model(checkpoint)
        return DemoService(loaded, backend)


@pytest.fixture(scope="module")
def client(service) -> TestClient:
    """The app in this process, answering only the loopback names."""
    app = create_app(
        service, max_upload_bytes=MAX_UPLOAD, hosts=allowed_hosts("127.0.0.1")
    )
    return TestClient(app, base_url="http://127.0.0.1:8000")


@pytest.fixture(scope="module")
def huge_video(tmp_path_factory) -> Path:
    """One black frame of `HUGE_SIDE` pixels square (180 kB)."""
    folder = tmp_path_factory.mktemp("huge")
    return write_video(folder / "huge.mp4", 1, (HUGE_SIDE, HUGE_SIDE))


def post_streamed(app, chunks, headers: dict[str, str]) -> tuple[int, dict, int]:
    """POST /api/predict straight to the ASGI app, the body in `chunks` as a server
    receives it; the status, the JSON body and the body bytes the app read."""
    pulled, messages, source = 0, [], iter(chunks)

    async def receive() -> dict:
        nonlocal pulled
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/predict",
        "raw_path": b"/api/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in messages if "body" in m)
    return messages[0]["status"], json.loads(body), pulled


def multipart_chunks(total: int):
    """A multipart upload of `total` zero bytes in the field `video`."""
    yield (
        b'--edge\r\nContent-Disposition: form-data; name="video"; '
        b'filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
    )
    for _ in range(total // SEND_CHUNK):
        yield bytes(SEND_CHUNK)
    yield b"\r\n--edge--\r\n"


# 2: the upload limit holds whatever the framing.


def test_a_chunked_upload_is_cut_off_at_the_limit(service):
    app = create_app(service, max_upload_bytes=MAX_UPLOAD)
    headers = {
        "host": "127.0.0.1",
        "content-type": "multipart/form-data; boundary=edge",
        "transfer-encoding": "chunked",
    }
    status, body, pulled = post_streamed(app, multipart_chunks(20_000_000), headers)
    assert status == 413 and "larger than the limit of 0.2 MB" in body["detail"]
    # What was read is all that can have been written to disk.
    assert pulled <= MAX_UPLOAD + FORM_OVERHEAD + SEND_CHUNK


def test_a_declared_size_over_the_limit_is_refused_before_reading(service):
    app = create_app(service, max_upload_bytes=MAX_UPLOAD)
    headers = {
        "host": "127.0.0.1",
        "content-type": "multipart/form-data; boundary=edge",
        "content-length": str(20_000_000),
    }
    status, body, pulled = post_streamed(app, multipart_chunks(20_000_000), headers)
    assert status == 413 and "larger than the limit" in body["detail"]
    assert pulled == 0


# 3: frames over the pixel budget are refused before they are decoded.


def test_every_reader_refuses_frames_over_the_pixel_budget(huge_video):
    readers = {
        "probe_video": lambda: probe_video(huge_video),
        "read_frames": lambda: read_frames(huge_video, [0]),
        "read_all_frames": lambda: list(read_all_frames(huge_video)),
        "VideoReader": lambda: VideoReader(huge_video, max_side=1920),
        "decode_video": lambda: decode_video(huge_video),
    }
    for name, read in readers.items():
        with pytest.raises(DataError, match=OVER_BUDGET) as caught:
            read()
        assert str(caught.value).startswith(f"{huge_video}: "), name
        assert "4096x4096" in str(caught.value), name


def test_a_frame_larger_than_its_header_says_is_refused_too(tmp_path):
    video = write_lying_video(tmp_path / "lying.mkv")
    assert probe_video(video).width == 64  # the header passes
    for read in (
        lambda: read_frames(video, [0, 1]),
        lambda: list(read_all_frames(video)),
        lambda: decode_video(video),
    ):
        with pytest.raises(DataError, match=OVER_BUDGET):
            read()


def test_the_demo_answers_422_for_a_video_over_the_pixel_budget(client, huge_video):
    response = client.post(
        "/api/predict",
        files={"video": ("huge.mp4", huge_video.read_bytes(), "video/mp4")},
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"huge.mp4: {OVER_BUDGET}")


# 16: the strip is drawn from frames already decoded.


def test_the_strip_decodes_no_frame_again(service, tmp_path, monkeypatch):
    video = write_video(tmp_path / "long.mp4", 1000)  # 4 key frames
    decoded, real_open = [0], av.open

    class Counting:
        """A container that counts the frames decoded from it."""

        def __init__(self, container) -> None:
            self._container = container

        def __getattr__(self, name: str):
            return getattr(self._container, name)

        def __enter__(self):
            self._container.__enter__()
            return self

        def __exit__(self, *exc_info) -> None:
            self._container.__exit__(*exc_info)

        def decode(self, *args, **kwargs):
            """The container's frames, counted."""
            for frame in self._container.decode(*args, **kwargs):
                decoded[0] += 1
                yield frame

    monkeypatch.setattr(av, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    result = service.predict(VideoFile(video, "long.mp4"))
    in_request, decoded[0] = decoded[0], 0
    positions = result["frames"]["positions"]
    assert len(positions) == 4 and result["landmark_strip"]
    assert in_request == read_frames(video, positions).decoded == decoded[0]
    assert in_request < max(positions)  # the model's frames were found by seeking


# 18: Host names, security headers, no API schema.


def test_the_server_answers_only_the_names_it_is_bound_to(client):
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "localhost"):
        assert client.get("/", headers={"host": host}).status_code == 200, host
    for host in ("attacker.example", "127.0.0.1.attacker.example:8000"):
        assert client.get("/", headers={"host": host}).status_code == 400, host
    assert allowed_hosts("0.0.0.0") is None and allowed_hosts("::") is None
    assert "[fe80::1]" in allowed_hosts("fe80::1")
    assert allowed_hosts("Demo.Lan") == ["localhost", "127.0.0.1", "[::1]", "demo.lan"]


def test_serve_checks_the_host(checkpoint, monkeypatch):
    served = {}

    class Loader:
        """No model: it is not needed to answer GET /."""

        def __init__(self, build) -> None:
            del build
            self.error, self.on_error = None, None

        def loaded(self) -> None:
            """Never loaded."""
            return None

    def run(server, sockets) -> None:
        served["app"] = server.config.app
        for listener in sockets:
            listener.close()

    monkeypatch.setattr(serving.app, "ServiceLoader", Loader)
    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert serve(checkpoint, host="127.0.0.1", port=0, max_upload_mb=1) == 0
    served_client = TestClient(served["app"], base_url="http://127.0.0.1")
    assert served_client.get("/").status_code == 200
    assert served_client.get("/", headers={"host": "evil.example"}).status_code == 400


# 17: "listening on" is said once connections are accepted.


def test_the_address_is_said_once_the_socket_accepts(checkpoint, monkeypatch, capsys):
    connected = {}

    class Loader:
        """No model: only the socket is under test."""

        def __init__(self, build) -> None:
            del build
            self.error, self.on_error = None, None

    def run(_server, sockets) -> None:
        said = capsys.readouterr().out
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", said)
        connected["said"] = said
        if match:  # a client that connects at once is queued, not refused
            with socket.create_connection(("127.0.0.1", int(match[1])), timeout=5):
                connected["port"] = int(match[1])
        for listener in sockets:
            listener.close()

    monkeypatch.setattr(serving.app, "ServiceLoader", Loader)
    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert serve(checkpoint, host="127.0.0.1", port=0, max_upload_mb=1) == 0
    assert connected.get("port"), connected.get("said")


def test_every_response_carries_the_security_headers(client):
    responses = [
        client.get("/"),
        client.get("/api/info"),
        client.get("/missing"),
        client.get("/", headers={"host": "attacker.example"}),
        client.post("/api/predict", data={"video": "text"}),
        client.post("/api/predict", files={"video": ("a.mp4", bytes(MAX_UPLOAD + 1))}),
    ]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, (response.url, name)
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy


def test_the_policy_allows_the_page_and_nothing_else(client):
    html = page()
    policy = dict(
        part.strip().split(" ", 1)
        for part in client.get("/").headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
    assert "data:" in policy["img-src"]  # the landmark strip is a data: URL
    for tag in ("script", "style"):
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)
        assert blocks, tag
        for block in blocks:
            digest = base64.b64encode(hashlib.sha256(block.encode()).digest())
            assert f"'sha256-{digest.decode()}'" in policy[f"{tag}-src"]
    # Inline handlers and style attributes would need 'unsafe-inline'.
    assert not re.search(r"\son[a-z]+=", html) and 'style="' not in html


def test_there_is_no_api_schema_or_docs_page(client):
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert client.get(path).status_code == 404, path


# 19: every error body is one string.


def test_every_error_is_one_string(client):
    responses = {
        422: client.post("/api/predict", data={"video": "not a file"}),
        400: client.post(
            "/api/predict",
            content=b"--x\r\n",
            headers={"content-type": "multipart/form-data; boundary=edge"},
        ),
        405: client.get("/api/predict"),
        404: client.get("/nothing/here"),
    }
    for status, response in responses.items():
        assert response.status_code == status
        assert isinstance(response.json()["detail"], str), response.json()
    assert responses[422].json()["detail"] == NOT_A_FILE


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_page_shows_an_error_as_text_whatever_its_shape():
    function = re.search(r"function errorText\(.*?\n}\n", page(), flags=re.DOTALL)
    assert function, "the page has no errorText function"
    cases = [
        [{"detail": "empty.mp4: the file is empty"}, "Bad Request"],
        [{"detail": [{"loc": ["body", "video"], "msg": "Expected UploadFile"}]}, "x"],
        [{"detail": {"reason": "odd"}}, "x"],
        [None, "Payload Too Large"],
        [{}, "Bad Request"],
    ]
    script = function.group(0) + (
        f"for (const [body, fallback] of {json.dumps(cases)}) "
        "console.log(JSON.stringify(errorText(body, fallback)));"
    )
    shown = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    texts = [json.loads(line) for line in shown]
    assert texts[0] == "empty.mp4: the file is empty"
    assert "Expected UploadFile" in texts[1] and texts[2] == '{"reason":"odd"}'
    assert texts[3] == "Payload Too Large" and texts[4] == "Bad Request"
    assert all(isinstance(text, str) and "[object" not in text for text in texts)


def test_an_unexpected_failure_is_one_string_with_the_headers(tmp_path):
    class Failing:
        """A service that fails on every clip."""

        def predict(self, video: VideoFile) -> dict:
            """Fails."""
            raise RuntimeError(f"broken on {video.display_name}")

    app = create_app(Failing(), max_upload_bytes=MAX_UPLOAD)
    video = write_video(tmp_path / "clip.mp4", 2)
    response = TestClient(app, raise_server_exceptions=False).post(
        "/api/predict", files={"video": ("clip.mp4", video.read_bytes())}
    )
    assert response.status_code == 500
    assert response.json()["detail"] == (
        "the server failed on this request (RuntimeError); its log has the details"
    )
    assert response.headers["x-frame-options"] == "DENY"
