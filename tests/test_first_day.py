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


def _make_dry_run(*args: str) -> str:
    """What `make -n ARGS` would run (nothing is run)."""
    if shutil.which("make") is None:
        pytest.skip("needs make")
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize(
    ("target", "default_port"), [("demo", "8000"), ("notebook", "8888")]
)
def test_make_demo_and_notebook_take_a_host_and_a_port(target, default_port) -> None:
    """`make demo HOST=... PORT=...` and `make notebook HOST=... PORT=...` serve there;
    without them, on localhost and the target's usual port."""
    command = _make_dry_run(target, "HOST=0.0.0.0", "PORT=8123").splitlines()[-1]
    assert re.search(r"--(host|ip)[ =]0\.0\.0\.0\b", command), command
    assert re.search(r"--port[ =]8123\b", command), command
    command = _make_dry_run(target).splitlines()[-1]
    assert re.search(r"--(host|ip)[ =]127\.0\.0\.1\b", command), command
    assert re.search(rf"--port[ =]{default_port}\b", command), command


def _page(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_make_test_comes_after_the_quick_start_with_its_time(page) -> None:
    """A new user's first command is `make train`; `make test` (minutes on 2 cores)
    comes later and says how long it takes where it is named."""
    text = _page(page)
    assert text.index("make train") < text.index("make test")
    first = text.index("make test")
    paragraph = text[first : first + 300].split("\n\n")[0]
    assert re.search(r"\d+(\.\d+)? ?min", paragraph), paragraph


@pytest.mark.parametrize(
    ("page", "links"),
    [
        (
            "README.md",
            ["docs/guide/own-dataset.md", "docs/commands/labels_csv.md"],
        ),
        (
            "docs/getting-started.md",
            ["guide/own-dataset.md", "commands/labels_csv.md"],
        ),
        (
            "docs/index.md",
            [
                "guide/own-dataset.md",
                "commands/labels_csv.md",
                "data/videos.md",
                "guide/demo.md",
                "commands/export.md",
                "guide/model-zoo.md",
            ],
        ),
    ],
)
def test_front_pages_lead_to_own_data_videos_demo_and_export(page, links) -> None:
    """The own-dataset page and labels_csv from the README, the docs' home page and
    getting-started; the home page also names videos as samples, the demo and the
    ONNX export."""
    text = _page(page)
    for link in links:
        assert f"]({link}" in text, f"{page} does not link {link}"


def test_wlasl_commands_evaluate_val_where_test_is_held_back() -> None:
    """The shared WLASL split files hold the test entries back: the README's and the
    recipes' evaluation commands use val, and say when `test` works."""
    pages = {"README.md": _page("README.md")}
    pages.update(
        {
            str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
            for path in sorted((ROOT / "recipes").glob("wlasl*_hands*.yml"))
        }
    )
    assert len(pages) > 4
    for name, text in pages.items():
        commands = re.findall(r"test\.py partial runs/wlasl\S+ \S+.*", text)
        assert commands, name
        for command in commands:
            assert re.match(r"test\.py partial \S+ val\s*$", command), (name, command)
        if "`test`" in text:  # where `test` is offered, it says when it works
            assert "held back" in text or "holds them back" in text, name


def test_wlasl_data_page_names_source_licence_and_both_routes() -> None:
    """Where the README's WLASL landmarks come from, their licence, how the table was
    made, and the commands from WLASL's public files (published landmarks, videos)."""
    text = _page("docs/data/wlasl-landmarks.md")
    for fact in (
        "ethanfarah/live-fingering",
        "5892d2a",
        "C-UDA",
        "How the table of the README was made",
        "--landmarks live-fingering/data/landmarks/",
        "--videos wlasl_videos/",
        "github.com/dxli94/WLASL",
    ):
        assert fact in text, fact
    assert "data/wlasl-landmarks.md" in _page("mkdocs.yml")
    assert "docs/data/wlasl-landmarks.md" in _page("README.md")
