"""The run directory: one run at a time, no temporary files left behind, the resolved
config written atomically.

A run holds `run.lock` in its folder while it trains (an exclusive `flock`, which the
system drops when the process ends, however it ends). The file names the holder: a
second run in the same folder is refused with its pid, host and start time. A run
that finds the file naming a holder that is gone (it was killed) takes the lock over
and removes the temporary files of that run's interrupted saves.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

import yaml

from config.loader import config_to_dict
from config.schema import SignpipeConfig
from utils.errors import ConfigError
from utils.files import file_problem, is_temporary, write_atomically

LOCK_FILE = "run.lock"
# Set in the processes a distributed run starts besides the first one.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
# flock errors of file systems without locks (some network file systems).
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def first_process() -> bool:
    """Whether this is the process that started the run (not a DDP worker)."""
    return all(os.environ.get(name, "0") == "0" for name in _RANK_VARIABLES)


def _unwritable(folder: Path, error: OSError) -> ConfigError:
    return ConfigError(
        f"general_parameters.path_to_save: cannot write to '{folder}' "
        f"({error.strerror or error})"
    )


def _holder() -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return f"pid {os.getpid()} on {socket.gethostname()}, started {started}"


def _read(descriptor: int) -> str:
    return os.pread(descriptor, 1000, 0).decode("utf-8", "replace").strip()


def _lock(descriptor: int, folder: Path) -> bool:
    """Take the lock on the open lock file; False where the file system has none."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in _NO_LOCKS:
            print(
                f"note: {folder / LOCK_FILE}: this file system cannot lock files "
                f"({error.strerror}); a second run in {folder} would not be noticed",
                file=sys.stderr,
            )
            return False
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise _unwritable(folder, error) from None
        raise ConfigError(
            f"general_parameters.path_to_save: '{folder}' is in use by another run "
            f"({_read(descriptor) or 'starting'}); wait for it to end, or give this "
            "run another path_to_save"
        ) from None
    previous = _read(descriptor)
    if previous:
        print(
            f"note: {folder / LOCK_FILE}: the run that held it ({previous}) is gone; "
            "taking it over",
            file=sys.stderr,
        )
    return True


@contextlib.contextmanager
def run_folder_lock(folder: Path, weights_file: Path | None = None) -> Iterator[None]:
    """Hold `folder/run.lock` for the run (creating the folder), after removing the
    temporary files that killed saves of earlier runs left behind.

    Only the first process of a run takes it (DDP workers run in the same folder).

    Args:
        folder: the run directory.
        weights_file: the run's `path_to_save` weights file, if it has one.

    Raises:
        ConfigError: another run holds the folder (naming it), or the folder cannot be
            created.
    """
    if not first_process():
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise _unwritable(folder, error) from None
    try:
        locked = _lock(descriptor, folder)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, (_holder() + "\n").encode("utf-8"), 0)
        if locked:
            remove_stale_temporaries(folder, weights_file)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)  # empty: the run ended, however it ended
    finally:
        os.close(descriptor)  # drops the lock


def remove_stale_temporaries(
    folder: Path, weights_file: Path | None = None
) -> list[Path]:
    """Remove the temporary files that killed saves left in the run folder (and
    beside its weights file).

    Only called by the run holding the folder's lock, so no live process owns them.
    """
    # Each place, and whose temporary files in it are the run's (None: all).
    places: dict[Path, str | None] = {folder: None, folder / "checkpoints": None}
    if weights_file is not None:
        places[weights_file.parent] = weights_file.name
    removed = []
    for place, of in places.items():
        for path in place.glob(".*") if place.is_dir() else ():
            if is_temporary(path, of):
                path.unlink(missing_ok=True)
                removed.append(path)
    if removed:
        names = ", ".join(path.name for path in removed)
        print(
            f"note: removed {len(removed)} temporary files of an interrupted save "
            f"in {folder}: {names}",
            file=sys.stderr,
        )
    return removed


def check_weights_file(config: SignpipeConfig) -> None:
    """Refuse a `path_to_save` weights file that could not be written at the end."""
    weights_file = config.general_parameters.weights_file()
    if weights_file is None or not os.path.lexists(weights_file):
        return
    problem = file_problem(weights_file)
    if problem is not None:
        raise ConfigError(
            f"general_parameters.path_to_save: '{weights_file}' {problem}; the "
            "weights are written to this file when training ends: remove it or "
            "choose another name"
        )


def earlier_run_note(config: SignpipeConfig) -> str | None:
    """A warning when a new (not resumed) run starts in a folder that holds another
    run's checkpoints, which it will replace; None when the folder holds none."""
    folder = config.general_parameters.run_dir()
    saved = sorted(
        path.name
        for path in (folder / "checkpoints").glob("*.ckpt")
        if path.is_file() and not is_temporary(path)
    )
    if not saved:
        return None
    return (
        f"warning: {folder} holds the checkpoints of an earlier run "
        f"({', '.join(saved)}); this run replaces them. To keep them, stop now and "
        "set general_parameters.path_to_save to another folder (--set "
        "general_parameters.path_to_save=runs/NAME), or continue that run with --resume"
    )


def prepare_output_dir(config: SignpipeConfig) -> Path:
    """Create the run directory and write the resolved config into it (atomically)."""
    save_dir = config.general_parameters.run_dir()
    check_weights_file(config)
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    try:
        save_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(save_dir / "config.yml", lambda f: f.write(text.encode()))
    except OSError as error:
        raise _unwritable(save_dir, error) from None
    return save_dir
