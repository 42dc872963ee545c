"""The demo page in a real browser: headless Chromium (Selenium) uploads the real
WLASL sample video to demo.py and sees the top-5 glosses and the HamNoSys heads.

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


@pytest.fixture
def browser():
    """Headless Chromium driven by chromedriver."""
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
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER)
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
