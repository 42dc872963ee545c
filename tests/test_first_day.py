"""A new user's first day: the frictions found walking through the README and docs."""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT

# One frame through MediaPipe Hands, as predict.py, the demo and extract_landmarks
# run it.
TRACK_ONE_FRAME = """
import numpy as np
from datasets.tracking import load_mediapipe
mediapipe = load_mediapipe()
with mediapipe.solutions.hands.Hands(static_image_mode=False, max_num_hands=2) as hands:
    hands.process(np.zeros((64, 64, 3), np.uint8))
print("tracked", flush=True)
"""


def _run_on_a_terminal(code: str, env: dict) -> str:
    """Run `python -c code` with stdout and stderr on a pseudo-terminal; its output."""
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_mediapipe_native_log_lines_go_to_a_log_not_the_terminal(tmp_path) -> None:
    pytest.importorskip("mediapipe")
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("SIGNPIPE_NATIVE_LOG", None)
    terminal = _run_on_a_terminal(TRACK_ONE_FRAME, env)
    assert "tracked" in terminal
    assert "W0000" not in terminal and "XNNPACK" not in terminal, terminal
    (log,) = tmp_path.glob("signpipe-native-*.log")
    assert "Feedback manager" in log.read_text(encoding="utf-8")


def test_documented_output_folders_are_git_ignored() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout")
    folders = ["data/mysigns/", "data/wlasl100/", "data/sample/", "out/", "runs/"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", *[f + "file" for f in folders]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.split() == [f + "file" for f in folders]


def test_built_site_links_open_from_disk(tmp_path) -> None:
    """Every page link of the built site names a file (file:// opens no folders)."""
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(site), "--quiet"],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=True,
        capture_output=True,
    )
    # 404.html is only ever served by a web server (its links are absolute).
    pages = [page for page in site.rglob("*.html") if page.name != "404.html"]
    assert len(pages) > 40
    links = 0
    for page in pages:
        for href in re.findall(r'href="([^"#?]+)[^"]*"', page.read_text("utf-8")):
            if re.match(r"^[a-z]+:|^//", href):
                continue  # another site, mailto:, data:
            target = (page.parent / href).resolve()
            assert target.is_file(), f"{page.relative_to(site)} links to {href}"
            links += 1
    assert links > 1000
