"""The demo page in a real browser: headless Chromium (Selenium) uploads the real
WLASL sample video to demo.py and sees the top-5 glosses and the HamNoSys heads,
and records the same video with the webcam (Chromium's fake camera playing it) to
see the shipped zoo model recognise the sign.

The screenshot is saved in pytest's temporary folder and, when SIGNPIPE_ARTIFACTS
names a folder, there too (docs/images/demo.png is one taken this way).
"""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from helpers import (
    SHARED_DATA,
    demo_server,
    model_config,
    needs_mediapipe,
    write_checkpoint,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WLASL_VIDEO = SHARED_DATA / "video" / "wlasl_sample" / "69546.mp4"
#: The sample's labels.csv names the glosses of its three videos; the rest are
#: WLASL glosses too, so that the top-5 list is full.
GLOSSES = ["what", "when", "yes", "book", "drink", "computer", "before", "chair"]
#: WLASL_VIDEO's sign ("yes") and its frames.
WLASL_GLOSS, WLASL_FRAMES = "yes", 72
#: The fake webcam's file: WLASL_VIDEO at this size, its first frame held
#: LEAD_FRAMES before the sign (the recording starts a moment after the camera)
#: and its last frame TAIL_FRAMES after it (Stop comes a moment after the sign, and
#: Chromium plays the file again from its start once it ends).
CAMERA_SIZE, LEAD_FRAMES, TAIL_FRAMES = (640, 360), 15, 45
#: How many frames the camera has given the page's stream (the stream's stats).
CAMERA_FRAMES = (
    "return document.getElementById('preview').srcObject"
    ".getVideoTracks()[0].stats.totalFrames"
)

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="chromium and chromedriver are not installed (apt install chromium "
        "chromium-driver; .ci/run installs them)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("selenium") is None,
        reason="selenium is not installed (requirements-dev.txt)",
    ),
    pytest.mark.skipif(
        not WLASL_VIDEO.is_file(),
        reason="../shared/data (the real WLASL sample video) is absent",
    ),
    needs_mediapipe,
]


@pytest.fixture(scope="module")
def url(shipped_config, sample_root, tmp_path_factory):
    """demo.py serving a landmark model with the gloss and HamNoSys heads."""
    folder = tmp_path_factory.mktemp("browser_demo")
    raw = model_config(shipped_config, sample_root, "landmarks_extractor")
    checkpoint = write_checkpoint(raw, folder / "model.ckpt", GLOSSES)
    with demo_server(checkpoint, folder / "stderr.txt") as (address, _):
        yield address


@pytest.fixture(scope="module")
def zoo_url(tmp_path_factory):
    """demo.py serving the shipped zoo model wlasl300_hands (300 WLASL glosses)."""
    folder = tmp_path_factory.mktemp("browser_zoo_demo")
    with demo_server(Path("wlasl300_hands"), folder / "stderr.txt") as (address, _):
        yield address


def chromium(*arguments: str):
    """Headless Chromium driven by chromedriver, with `arguments` besides ours."""
    # pylint: disable-next=import-outside-toplevel
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,1250",
        *arguments,
    ):
        options.add_argument(argument)
    return webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
    )


@pytest.fixture
def browser():
    """Headless Chromium driven by chromedriver."""
    driver = chromium()
    yield driver
    driver.quit()


def write_camera_file(video: Path, path: Path) -> Path:
    """`video` as a Y4M file for Chromium's fake webcam: CAMERA_SIZE, I420, the
    video's frame rate, its first frame held LEAD_FRAMES and its last TAIL_FRAMES."""
    import av  # pylint: disable=import-outside-toplevel

    with av.open(str(video)) as source:
        rate = source.streams.video[0].average_rate
        frames = [
            frame.reformat(*CAMERA_SIZE, format="yuv420p").to_ndarray()
            for frame in source.decode(video=0)
        ]
    assert len(frames) == WLASL_FRAMES
    frames = [frames[0]] * LEAD_FRAMES + frames + [frames[-1]] * TAIL_FRAMES
    with av.open(str(path), "w", format="yuv4mpegpipe") as target:
        stream = target.add_stream("rawvideo", rate=rate)
        stream.width, stream.height = CAMERA_SIZE
        stream.pix_fmt = "yuv420p"
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
            frame.pts = index
            target.mux(stream.encode(frame))
        target.mux(stream.encode())
    return path


@pytest.fixture
def webcam_browser(tmp_path):
    """Headless Chromium whose webcam plays WLASL_VIDEO (see write_camera_file),
    allowed without asking."""
    camera = write_camera_file(WLASL_VIDEO, tmp_path / "camera.y4m")
    driver = chromium(
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    )
    yield driver
    driver.quit()


def save_screenshot(driver, tmp_path: Path) -> Path:
    """The page as PNG in tmp_path, copied to $SIGNPIPE_ARTIFACTS when set."""
    path = tmp_path / "demo.png"
    assert driver.save_screenshot(str(path))
    artifacts = os.environ.get("SIGNPIPE_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)
    return path


def test_upload_shows_top5_glosses_and_hamnosys_heads(url, browser, tmp_path):
    # pylint: disable=import-outside-toplevel
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(
        lambda driver: "sign_language_transformer"
        in driver.find_element(By.ID, "model").text
    )
    browser.find_element(By.ID, "file").send_keys(str(WLASL_VIDEO))
    browser.find_element(By.ID, "send").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 300).until(
        lambda driver: status.text.startswith(("done", "4", "5", "the server"))
    )
    screenshot = save_screenshot(browser, tmp_path)
    assert status.text == f"done: {WLASL_VIDEO.name}", status.text
    glosses = browser.find_elements(By.CSS_SELECTOR, "#top5 li.gloss")
    assert len(glosses) == 5
    assert all(item.text.split(":")[0] in GLOSSES for item in glosses)
    heads = browser.find_elements(By.CSS_SELECTOR, "#hamnosys tr.hamnosys-head")
    assert len(heads) == 8
    shape = next(row for row in heads if row.text.startswith("hand_shape_base_form"))
    assert shape.text.split()[1].startswith("ham"), "a HamNoSys symbol name"
    strip = browser.find_element(By.ID, "strip")
    assert browser.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", strip
    )
    assert "landmark points drawn" in browser.find_element(By.ID, "strip-note").text
    assert "MediaPipe landmarks" in browser.find_element(By.ID, "timings").text
    assert screenshot.stat().st_size > 10_000


def test_webcam_recording_of_a_real_sign_is_recognised(zoo_url, webcam_browser):
    """Record, Stop: MediaRecorder's WebM goes to the zoo model, "yes" in its top 5.

    Stop waits for the camera's frames, not for a fixed time: Chromium plays the
    file at its frame rate when it can, later on a busy machine.
    """
    # pylint: disable=import-outside-toplevel
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = webcam_browser
    browser.get(zoo_url)
    WebDriverWait(browser, 30).until(
        lambda driver: "reads" in driver.find_element(By.ID, "model").text
    )
    browser.find_element(By.ID, "record").click()
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 30).until(
        lambda driver: status.text.startswith(("recording", "the webcam"))
    )
    assert status.text.startswith("recording"), status.text
    # The whole sign and a few still frames after it, well before the file ends.
    WebDriverWait(browser, 30, poll_frequency=0.05).until(
        lambda driver: driver.execute_script(CAMERA_FRAMES)
        >= LEAD_FRAMES + WLASL_FRAMES + 5
    )
    browser.find_element(By.ID, "stop").click()
    WebDriverWait(browser, 120).until(
        lambda driver: status.text.startswith(("done", "4", "5", "the server"))
    )
    assert status.text == "done: webcam.webm", status.text
    assert status.get_attribute("class") != "error"
    glosses = [
        item.text.split(":")[0]
        for item in browser.find_elements(By.CSS_SELECTOR, "#top5 li.gloss")
    ]
    assert len(glosses) == 5
    clip = browser.find_element(By.ID, "strip-note").text
    assert WLASL_GLOSS in glosses, f"top 5 {glosses}; {clip}"
