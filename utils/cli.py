"""Running a command line: user errors become one message and exit status 2."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

from utils.errors import USER_ERROR_EXIT_CODE, UserError


def user_error_message(error: BaseException) -> str:
    """The user-facing text of an error, without a DataLoader worker's traceback."""
    message = str(error)
    if "Original Traceback" in message:
        message = message.strip().splitlines()[-1]
        message = message.split(": ", 1)[1] if ": " in message else message
    return message


def missing_module_message(error: ModuleNotFoundError) -> str:
    """What to do when a dependency is not installed (usually: not in the venv)."""
    name = (error.name or str(error)).split(".")[0]
    extra = (
        " (pip install -r requirements-landmarks.txt)" if name == "mediapipe" else ""
    )
    return (
        f"the Python package '{name}' is not installed in {sys.executable}: run "
        "`make venv`, then `source .venv/bin/activate` (or run .venv/bin/python)"
        + extra
    )


def run_cli(command: Callable[[], int]) -> int:
    """Run `command`; print a `UserError` (its notes, then `error: ...`) on stderr and
    return 2. A missing dependency is one line too, saying how to install it."""
    try:
        return command()
    except UserError as error:
        for note in error.notes:
            print(note, file=sys.stderr)
        print(f"error: {user_error_message(error)}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    except ModuleNotFoundError as error:
        print(f"error: {missing_module_message(error)}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE


#: A file for what native libraries write to the terminal (MediaPipe's `W0000 ...`
#: lines); `-` keeps them on the terminal.
NATIVE_LOG_ENV = "SIGNPIPE_NATIVE_LOG"
_ROUTED: dict[str, str] = {}  # "path": the log, once routed


def native_log_path() -> str:
    """Where `route_native_logs` sends native log lines: $SIGNPIPE_NATIVE_LOG, else
    signpipe-native-UID.log in the temporary folder."""
    return os.environ.get(NATIVE_LOG_ENV) or os.path.join(
        tempfile.gettempdir(), f"signpipe-native-{getattr(os, 'getuid', int)()}.log"
    )


def route_native_logs() -> str | None:
    """Send what native code writes to the terminal to `native_log_path()`, once.

    MediaPipe's C++ logs (`W0000 ... Feedback manager ...`, `INFO: Created TensorFlow
    Lite XNNPACK delegate`) are written to file descriptor 2 before any setting can
    turn them off. This points descriptor 2 at the log file and gives Python's
    `sys.stderr` (messages, progress bars, warnings, tracebacks, and the logging
    handlers that wrote to it) a copy of the terminal. Only when descriptor 2 is a
    terminal, or $SIGNPIPE_NATIVE_LOG names a file: output redirected to a file keeps
    everything, and a test capturing stderr is left alone. Returns the log's path,
    or None when nothing was routed.
    """
    explicit = os.environ.get(NATIVE_LOG_ENV)
    if _ROUTED or explicit == "-":
        return _ROUTED.get("path")
    try:
        if sys.stderr.fileno() != 2 or not (explicit or os.isatty(2)):
            return None
        log = os.open(native_log_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except (AttributeError, OSError, ValueError):  # no real stderr, or no log file
        return None
    old = sys.stderr
    old.flush()
    terminal = os.dup(2)
    os.dup2(log, 2)
    os.close(log)
    sys.stderr = os.fdopen(
        terminal, "w", buffering=1, encoding=old.encoding, errors="backslashreplace"
    )
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(sys.stderr)
    _ROUTED["path"] = native_log_path()
    return _ROUTED["path"]


# argparse types of the scripts: a bad value becomes argparse's "invalid ... value".


def positive_int(text: str) -> int:
    """An integer of at least 1."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def positive_float(text: str) -> float:
    """A finite number above 0."""
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(text)
    return value


def port(text: str) -> int:
    """A TCP port, 0-65535 (0 = any free port)."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError(text)
    return value


def add_ensemble_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--ensemble CHECKPOINT ...`: more checkpoints (files or model zoo names) whose
    class probabilities are averaged with the script's CHECKPOINT; a list of paths,
    empty without the option.

    Args:
        parser: the script's parser.
        help_text: what the option does in this script.
    """
    parser.add_argument(
        "--ensemble",
        type=Path,
        nargs="+",
        default=[],
        metavar="CHECKPOINT",
        help=help_text,
    )
