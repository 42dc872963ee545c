"""Running a command line: user errors become one message and exit status 2."""

from __future__ import annotations

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


def run_cli(command: Callable[[], int]) -> int:
    """Run `command`; print a `UserError` (its notes, then `error: ...`) on stderr and
    return 2."""
    try:
        return command()
    except UserError as error:
        for note in error.notes:
            print(note, file=sys.stderr)
        print(f"error: {user_error_message(error)}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
