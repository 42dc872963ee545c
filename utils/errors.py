"""Errors that mean "the user must change something", and the CLI exit code for them."""

from __future__ import annotations

import reprlib
from typing import Any

USER_ERROR_EXIT_CODE = 2
#: The most characters of a user's value that an error message quotes.
MAX_QUOTED_CHARS = 200

# Bounded at every level, so quoting a value that expands to gigabytes (YAML
# aliases repeating one list) visits a few hundred items, not all of them.
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 3
_SHORT_REPR.maxdict = _SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = 6
_SHORT_REPR.maxset = _SHORT_REPR.maxfrozenset = 6
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = _SHORT_REPR.maxlong = 80


def shorten(text: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """`text`, cut to `limit` characters with `...` where it was cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quote(value: Any) -> str:
    """`repr(value)` for a message, at most `MAX_QUOTED_CHARS` characters long."""
    try:
        text = _SHORT_REPR.repr(value)
    except ValueError:  # an int too long to print (Python's digit limit)
        text = f"<a {type(value).__name__} too long to print>"
    return shorten(text)


class UserError(Exception):
    """A problem with the user's input (config, data, command line), not a bug.

    Command lines catch it, print its `notes` (lines that explain how the input was
    read, such as translated HearAI keys), then its message on one line, and exit
    with status 2.
    """

    notes: tuple[str, ...] = ()


class ConfigError(UserError):
    """An invalid config value; the message names the dotted key and what is allowed."""


class DataError(UserError):
    """Invalid data on disk; the message names the file (and line) and what is wrong."""


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite; the message names the step."""


def with_notes(error: UserError, notes: list[str]) -> UserError:
    """`error`, with `notes` printed before its own notes and message."""
    error.notes = (*notes, *error.notes)
    return error
