"""Every shell command of README.md's, docs/getting-started.md's and
docs/guide/own-dataset.md's ```bash blocks runs as written, from a fresh clone's point
of view, on tiny data.

How the commands are read (`extract_commands`): a line ending in ``\\`` is joined
with the next, a comment (``# ...`` at the start of a line or after a blank) is
dropped, and a ``for VAR in V1 V2 ...; do ... done`` loop is kept as a loop over its
first value only (``for seed in 42; do ...; done``, run by bash like any command): the
other values repeat the same command. A command documented on both pages is run once,
where it first appears (README.md before docs/getting-started.md).

Where they run: a fresh copy of the repository made from ``git ls-files`` (nothing
untracked: no data/, no runs/, no out/), beside a ``shared`` link to ../shared when
that exists, as ``bash -c COMMAND`` in the copy's root, one test case per command, in
the documented order (later commands use earlier outputs). The environment this test
runs in stands for ``make venv`` and ``source .venv/bin/activate``: the copy's
``.venv`` links every entry of this checkout's ``.venv`` (its own ``.installed`` is
new, so make does not rebuild the shared environment when a requirements file is
newer than the real one), its ``bin`` comes first on PATH and VIRTUAL_ENV names it.

What keeps it tiny: before the first command, the copy gets a generated ``data/sample``
of 3 glosses x 4 clips of 40x40 frames (``make train`` makes one only when missing) and
its ``train_config.yml`` is shrunk with helpers.TINY_OVERRIDES (1 epoch, tiny model).
The commands themselves are unchanged, except those listed in RECIPE_TRAININGS_SUFFIX.
The own-dataset page's placeholders are real files in the copy: ``labels.csv`` and
``VIDEO_DIR/`` (12 generated videos of 3 signs, ``video,label`` rows) and
``mysigns.yml`` (the page's first config, the videos one, shrunk like the shipped one).

What does not run is listed in NOT_RUN with the reason; the WLASL commands run only
when ../shared/data/wlasl_hands exists (a user's fresh clone has no ../shared).
"""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, SHARED_DATA, TINY_OVERRIDES, merge

PAGES = ("README.md", "docs/getting-started.md", "docs/guide/own-dataset.md")
OWN_DATASET_CONFIG = "path_to_save: runs/mysigns_videos"
WLASL_HANDS = SHARED_DATA / "wlasl_hands"
COMMAND_TIMEOUT_S = 300

# Documented commands that cannot run inside a test, with the reason.
NOT_RUN = {
    "make venv": "builds .venv: the test already runs in the environment it built "
    "(the copy's .venv links it)",
    "source .venv/bin/activate": "stood for by the copy's .venv/bin first on PATH "
    "and VIRTUAL_ENV set, for every command",
    "make test": "the whole suite (black, pylint, pytest, docs): this test is in it",
    "make demo": "serves the page until stopped: tests/test_demo.py, "
    "tests/test_demo_browser.py and tests/test_landmark_parity.py start the server "
    "with the zoo model and use it",
}

# The one visible deviation from "as written": the recipe trainings (60 and 50 epochs)
# get this appended, to train 1 epoch of the real WLASL data.
RECIPE_TRAININGS_SUFFIX = " --set train_parameters.epochs=1"

# Files a command is documented to write (relative to the copy's root; globs allowed),
# by the command's beginning.
DOCUMENTED_OUTPUTS = {
    "make train": ("runs/default/checkpoints/best.ckpt", "runs/default/metrics.json"),
    "python3 test.py partial runs/default/checkpoints/best.ckpt val --save": (
        "runs/default/results/best_val-results.json",
    ),
    "python3 predict.py runs/default/checkpoints/best.ckpt data/sample out/": (
        "out/predictions.csv",
    ),
    "python3 -m data_preprocessing.wlasl": ("data/wlasl100/test_gloss.txt",),
    "for seed in": ("runs/wlasl100_hands_42/checkpoints/best.ckpt",),
    "python3 predict.py wlasl300_hands": ("out/predictions.csv",),
    "python3 -m data_preprocessing.labels_csv --labels labels.csv": (
        "data/mysigns/glosses.txt",
    ),
    "python3 train.py --model_config_path mysigns.yml": (
        "runs/mysigns_videos/checkpoints/best.ckpt",
    ),
    "python3 predict.py runs/mysigns_videos": ("out/predictions.csv",),
}

# The quick start: the extractor must find these on README.md and getting-started.md.
QUICK_START = (
    "make train",
    "python3 test.py partial runs/default/checkpoints/best.ckpt val --save",
    "python3 predict.py runs/default/checkpoints/best.ckpt data/sample out/"
    " --embedding_kind probabilities",
)

_BASH_BLOCK = re.compile(r"^```bash[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_YAML_BLOCK = re.compile(r"^```yaml[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_CONTINUATION = re.compile(r"\\\n[ \t]*")
_COMMENT = re.compile(r"(^|\s)#\s.*$|^#.*$")
_LOOP = re.compile(r"^for (\w+) in ([^;]+); do$")


def extract_commands(markdown: str) -> list[str]:
    """The shell commands of the ```bash blocks of `markdown`, in order."""
    commands = []
    for block in _BASH_BLOCK.findall(markdown):
        lines = [
            _COMMENT.sub("", line).strip()
            for line in _CONTINUATION.sub("", block).splitlines()
        ]
        lines = [line for line in lines if line]
        while lines:
            line = lines.pop(0)
            loop = _LOOP.match(line)
            if loop is None:
                commands.append(line)
                continue
            body = []
            while lines and lines[0] != "done":
                body.append(lines.pop(0))
            lines = lines[1:]  # "done"
            first_value = loop.group(2).split()[0]
            commands.append(
                f"for {loop.group(1)} in {first_value}; do {'; '.join(body)}; done"
            )
    return commands


def documented_commands() -> list[tuple[str, str]]:
    """(command, page) of every page, each command once, where it first appears."""
    seen: dict[str, str] = {}
    for page in PAGES:
        for command in extract_commands((ROOT / page).read_text(encoding="utf-8")):
            seen.setdefault(command, page)
    return list(seen.items())


def is_recipe_training(command: str) -> bool:
    """A train.py command on a recipes/ config (a benchmark's full schedule)."""
    return "train.py" in command and "recipes/" in command


def as_run(command: str) -> str:
    """The command bash gets (plus RECIPE_TRAININGS_SUFFIX on a recipe training)."""
    if not is_recipe_training(command):
        return command
    if command.endswith("; done"):
        return command[: -len("; done")] + RECIPE_TRAININGS_SUFFIX + "; done"
    return command + RECIPE_TRAININGS_SUFFIX


def skip_reason(command: str) -> str | None:
    """Why `command` is not run here, or None."""
    if command in NOT_RUN:
        return NOT_RUN[command]
    if "wlasl" in command.lower() and not WLASL_HANDS.is_dir():
        return f"needs the WLASL hand landmarks of {WLASL_HANDS} (absent)"
    return None


def shorten(command: str, width: int = 72) -> str:
    """A test id: the command, cut to `width` characters."""
    return command if len(command) <= width else command[: width - 3] + "..."


COMMANDS = documented_commands()


def _case(index: int, command: str, page: str):
    marks = []
    reason = skip_reason(command)
    if reason is not None:
        marks.append(pytest.mark.skip(reason=f"{page}: `{command}`: {reason}"))
    elif "wlasl" in command.lower():
        marks.append(pytest.mark.slow)
    return pytest.param(index, marks=marks, id=shorten(command))


@dataclass
class FreshCopy:
    """A fresh copy of the repository and the commands run in it so far."""

    root: Path
    env: dict[str, str]
    results: dict[int, subprocess.CompletedProcess] = field(default_factory=dict)

    def run(self, index: int) -> subprocess.CompletedProcess:
        """Run command `index`, after the runnable commands before it not run yet."""
        for earlier in range(index + 1):
            command = COMMANDS[earlier][0]
            if earlier in self.results or skip_reason(command) is not None:
                continue
            self.results[earlier] = subprocess.run(
                ["bash", "-c", as_run(command)],
                cwd=self.root,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        return self.results[index]

    def failed_before(self, index: int) -> str | None:
        """The first command before `index` that failed, or None."""
        for earlier in range(index):
            result = self.results.get(earlier)
            if result is not None and result.returncode != 0:
                return COMMANDS[earlier][0]
        return None


def _copy_tracked_files(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout ({listed.stderr.decode().strip()})")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # not a file deleted in the working tree
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _link_venv(venv: Path, destination: Path) -> None:
    destination.mkdir()
    for entry in venv.iterdir():
        if entry.name != ".installed":
            (destination / entry.name).symlink_to(entry)
    (destination / ".installed").touch()  # newer than the copied requirements files


def _own_dataset_placeholders(root: Path, env: dict[str, str]) -> None:
    """labels.csv, VIDEO_DIR/ and mysigns.yml of the own-dataset page, in `root`."""
    videos = root / "VIDEO_DIR"
    subprocess.run(
        ["python3", "-m", "data_preprocessing.make_sample_dataset", str(videos)]
        + ["--glosses", "3", "--clips_per_gloss", "4", "--size", "40", "--videos"],
        cwd=root,
        env=env,
        capture_output=True,
        check=True,
    )
    rows = ["video,label"] + [
        f"{video.name},sign {video.stem.split('_')[0].lower()}"
        for video in sorted(videos.glob("*.mp4"))
    ]
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    page = (root / PAGES[2]).read_text(encoding="utf-8")
    (block,) = [b for b in _YAML_BLOCK.findall(page) if OWN_DATASET_CONFIG in b]
    config = merge(yaml.safe_load(block), copy.deepcopy(TINY_OVERRIDES))
    (root / "mysigns.yml").write_text(yaml.safe_dump(config), encoding="utf-8")


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory: pytest.TempPathFactory) -> FreshCopy:
    """The tracked files of this checkout, a linked .venv, tiny data and config."""
    venv = ROOT / ".venv"
    if not (venv / "bin" / "python").exists():
        pytest.skip(f"no virtual environment at {venv} (make venv)")
    base = tmp_path_factory.mktemp("documented")
    root = base / "signpipe"
    _copy_tracked_files(root)
    _link_venv(venv, root / ".venv")
    if SHARED_DATA.parent.is_dir():
        (base / "shared").symlink_to(SHARED_DATA.parent)

    drop = {
        "PYTHONPATH",
        "PYTHONHOME",
        "VIRTUAL_ENV",
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
    }
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env["PATH"] = f"{root / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(root / ".venv")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg")

    subprocess.run(
        ["python3", "-m", "data_preprocessing.make_sample_dataset", "data/sample"]
        + ["--glosses", "3", "--clips_per_gloss", "4", "--size", "40"],
        cwd=root,
        env=env,
        capture_output=True,
        check=True,
    )
    config_path = root / "train_config.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    merge(config, copy.deepcopy(TINY_OVERRIDES))
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    _own_dataset_placeholders(root, env)
    return FreshCopy(root, env)


@pytest.mark.parametrize("index", [_case(i, c, p) for i, (c, p) in enumerate(COMMANDS)])
def test_documented_command_runs(fresh_copy: FreshCopy, index: int) -> None:
    """The command exits with status 0 and writes what the docs say it writes."""
    command, page = COMMANDS[index]
    result = fresh_copy.run(index)
    failed = fresh_copy.failed_before(index)
    if failed is not None and result.returncode != 0:
        pytest.skip(f"an earlier command failed: {failed}")
    assert result.returncode == 0, (
        f"{page}: `{as_run(command)}` exited with {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    for start, outputs in DOCUMENTED_OUTPUTS.items():
        if command.startswith(start):
            for output in outputs:
                assert list(
                    fresh_copy.root.glob(output)
                ), f"`{command}` wrote no {output}"


def test_extractor_finds_the_quick_start() -> None:
    """A reshuffle of either page that loses a quick-start command fails here."""
    for page in PAGES[:2]:
        commands = extract_commands((ROOT / page).read_text(encoding="utf-8"))
        for command in QUICK_START:
            assert command in commands, f"{page} no longer has `{command}`"
    runnable = [command for command, _ in COMMANDS if skip_reason(command) is None]
    assert all(any(c.startswith(start) for c in runnable) for start in QUICK_START)


def test_extractor_joins_drops_comments_and_loops() -> None:
    """Continuations are joined, comments dropped, a loop kept for its first value."""
    markdown = (
        "text\n```bash\nmake venv   # once\n# a comment line\n"
        "python3 a.py --x 1 \\\n    --y 2\n"
        "for s in 7 8; do\n  echo $s \\\n    x\ndone\n"
        "```\n```python\nnot_a_command()\n```\n"
    )
    assert extract_commands(markdown) == [
        "make venv",
        "python3 a.py --x 1 --y 2",
        "for s in 7; do echo $s x; done",
    ]


def test_not_run_table_is_current() -> None:
    """Every command of NOT_RUN is still documented (the table cannot go stale)."""
    documented = {command for command, _ in COMMANDS}
    assert set(NOT_RUN) <= documented
