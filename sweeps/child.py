"""One trial in a process of its own.

Each trial's run gets a fresh process, forked from the sweep worker after the
library is imported (so starting one costs no import time). Nothing one run leaves
in the interpreter (random generators, torch flags, Lightning's state, cached
modules, memory) reaches the next one, and a crash of a run ends only its process.
The process dies with its worker (a killed worker leaves no run behind) and writes
its output to the run folder's `trial.log`, its result to a JSON file; the
error texts it writes pass through the caller's `hide` (a storage password out).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import multiprocessing
import os
import functools
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable

from utils.cli import user_error_message
from utils.errors import UserError
from utils.files import write_atomically

# How long a trial may take to save its checkpoint and stop when the sweep stops.
STOP_SECONDS = 120
_PR_SET_PDEATHSIG = 1
#: Held while a trial's process is forked, and by the worker's heartbeat thread while
#: it writes to the study's database (`fork_safe`): a fork taken in the middle of
#: that write would copy SQLite's lock as held, and the trial would wait on it for
#: ever when it opens the study.
FORK_LOCK = threading.Lock()


def fork_safe(function: Callable) -> Callable:
    """`function`, run while holding `FORK_LOCK`."""

    @functools.wraps(function)
    def locked(*args, **kwargs):
        with FORK_LOCK:
            return function(*args, **kwargs)

    return locked


def _die_with_parent(parent: int) -> None:
    """Ask Linux to send SIGTERM to this process when its parent dies."""
    library = ctypes.util.find_library("c")
    if library and sys.platform.startswith("linux"):
        libc = ctypes.CDLL(library, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the worker died before the call above
        os._exit(1)


def _child(
    function: Callable[..., dict],
    kwargs: dict,
    log_path: str,
    result_path: str,
    parent: int,
    hide: Callable[[str], str],
) -> None:
    """The trial's process: output to the log, result to JSON."""
    _die_with_parent(parent)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    # Python's streams too, whatever they were in the worker (a capture in tests).
    # pylint: disable-next=consider-using-with
    sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)
    # pylint: disable-next=consider-using-with
    sys.stderr = open(2, "w", encoding="utf-8", buffering=1, closefd=False)
    try:
        result = function(**kwargs)
    except UserError as error:
        message = hide(user_error_message(error))
        print(f"error: {message}", file=sys.stderr)
        result = {"status": "error", "message": message}
    except KeyboardInterrupt:
        result = {"status": "interrupted", "message": "interrupted"}
    except Exception as error:  # pylint: disable=broad-exception-caught
        sys.stderr.write(hide(traceback.format_exc()))
        lines = hide(str(error)).strip().splitlines() or [""]
        result = {"status": "failed", "message": f"{type(error).__name__}: {lines[0]}"}
    if os.getppid() != parent and result.get("status") == "complete":
        # The worker died while the run ended: its trial is failed and queued again,
        # so this run is not the trial's result.
        result = {"status": "interrupted", "message": "the sweep worker stopped"}
    data = json.dumps(result, indent=2).encode("utf-8")
    write_atomically(Path(result_path), lambda file: file.write(data))
    sys.stdout.flush()
    sys.stderr.flush()


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    """SIGTERM (the run saves last.ckpt and ends), then SIGKILL if it lingers."""
    if process.is_alive():
        process.terminate()
        process.join(STOP_SECONDS)
    if process.is_alive():
        process.kill()
        process.join()


def start_method() -> str:
    """`fork`, unless the platform lacks it or this process has started CUDA (a
    forked child cannot use CUDA then): `spawn`, which imports the library anew."""
    torch = sys.modules.get("torch")
    cuda_started = torch is not None and torch.cuda.is_initialized()
    if cuda_started or "fork" not in multiprocessing.get_all_start_methods():
        return "spawn"
    return "fork"


def _shown(text: str) -> str:
    return text


def run_in_process(
    function: Callable[..., dict],
    kwargs: dict,
    run_dir: Path,
    hide: Callable[[str], str] = _shown,
) -> dict:
    """`function(**kwargs)` in a new process; its result, or a `status: failed`
    result naming the exit code when the process died without one.

    Output goes to `run_dir/trial.log`; `hide` rewrites the error texts the process
    writes (a picklable function, for `spawn`). Stopping the caller
    (KeyboardInterrupt) stops the process first.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "trial.log"
    result_path = run_dir / "trial_result.json"
    result_path.unlink(missing_ok=True)
    context = multiprocessing.get_context(start_method())
    sys.stdout.flush()
    sys.stderr.flush()
    process = context.Process(
        target=_child,
        args=(function, kwargs, str(log_path), str(result_path), os.getpid(), hide),
        name=f"trial {run_dir.name}",
    )
    try:
        with FORK_LOCK:  # not while the heartbeat thread holds a database lock
            process.start()
        while process.is_alive():
            process.join(0.5)
    except BaseException:
        _stop(process)
        raise
    try:
        return json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {
            "status": "failed",
            "message": f"the trial's process ended with exit code {process.exitcode} "
            f"and no result; see {log_path}",
        }
