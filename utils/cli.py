"""Running a command line: user errors become one message and exit status 2."""

from __future__ import annotations

import math
import sys
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
