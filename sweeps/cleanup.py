"""Freeing disk space: `--keep_top K` (trials outside the best K keep only
best.ckpt) and `sweep.py --clean RUNS` (finished runs keep best.ckpt and last.ckpt).

A run is finished when it wrote `metrics.json` and no process holds its `run.lock`;
a run still training, or killed before the end (it may be resumed from last.ckpt),
is left as it is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import sys
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from utils.errors import UserError

BEST, LAST = "best.ckpt", "last.ckpt"


@dataclass
class Freed:
    """What a clean-up removed."""

    files: int = 0
    bytes: int = 0
    runs: int = 0

    @property
    def megabytes(self) -> float:
        """`bytes` in MB."""
        return self.bytes / 1e6


def in_use(run_dir: Path) -> bool:
    """Whether a process holds the run's `run.lock` (it is training)."""
    path = run_dir / "run.lock"
    if not path.exists():
        return False
    with open(path, "rb") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            return error.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)
    return False


def finished(run_dir: Path) -> bool:
    """Whether the run ended (metrics.json written) and nothing trains in it."""
    return (run_dir / "metrics.json").is_file() and not in_use(run_dir)


def _remove_all_but(run_dir: Path, keep: set[str], freed: Freed) -> None:
    folder = run_dir / "checkpoints"
    removed = False
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name in keep or not path.is_file():
            continue
        size = path.stat().st_size
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            freed.files += 1
            freed.bytes += size
            removed = True
    freed.runs += removed


def keep_top(study: optuna.Study, k: int) -> Freed:
    """Remove every checkpoint but best.ckpt of the finished trials outside the best
    `k` (by the objective); the best `k` keep everything."""
    trials = [
        t
        for t in study.get_trials(deepcopy=False)
        if not t.user_attrs.get("spare") and t.user_attrs.get("run_dir")
    ]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    ranked = sorted(complete, key=lambda t: -t.value if maximize else t.value)
    top = {t.number for t in ranked[:k]}
    freed = Freed()
    for trial in trials:
        if trial.number in top or trial.state in (
            TrialState.RUNNING,
            TrialState.WAITING,
        ):
            continue
        run_dir = Path(trial.user_attrs["run_dir"])
        if run_dir.is_dir() and not in_use(run_dir):
            _remove_all_but(run_dir, {BEST}, freed)
    return freed


def clean_runs(root: Path) -> int:
    """`sweep.py --clean RUNS`: every finished run under `root` keeps best.ckpt and
    last.ckpt of its checkpoints/ (other checkpoints and leftovers of interrupted
    saves go); unfinished runs are left as they are.

    Raises:
        UserError: `root` is not a folder.
    """
    if not root.is_dir():
        raise UserError(f"--clean: {root} is not a folder")
    freed = Freed()
    skipped = []
    for folder in sorted(root.rglob("checkpoints")):
        run_dir = folder.parent
        if not folder.is_dir():
            continue
        if finished(run_dir):
            _remove_all_but(run_dir, {BEST, LAST}, freed)
        else:
            skipped.append(run_dir)
    for run_dir in skipped:
        print(
            f"note: {run_dir} is not finished (no metrics.json, or training): left "
            "as it is",
            file=sys.stderr,
        )
    print(
        f"removed {freed.files} files ({freed.megabytes:.1f} MB) from {freed.runs} "
        f"finished runs under {root}; {len(skipped)} unfinished runs left as they are"
    )
    return 0
