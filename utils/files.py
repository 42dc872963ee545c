"""The files a dataset is made of: what a path is when it is not a regular file, and
text files read as UTF-8.

Every reader checks a path here before opening it, so that a FIFO (which would block
the reader for ever), a folder, a dangling symbolic link or a link loop is reported
as what it is, naming the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from utils.errors import DataError

NOT_FOUND = "not found"
EMPTY = "is empty (0 bytes)"
_KINDS = (
    (stat.S_ISREG, "a file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "something else")


def _stat_problem(path: Path, error: OSError) -> str:
    """What a failed `os.stat(path)` says about `path`."""
    if error.errno == errno.ENOENT:
        if os.path.islink(path):
            return f"is a dangling symbolic link to {os.readlink(path)}"
        return NOT_FOUND
    if error.errno == errno.ELOOP:
        return "is a symbolic link loop"
    return f"cannot be read ({error.strerror})"


def path_problem(
    path: Path, *, folder: bool = False, empty_ok: bool = True
) -> str | None:
    """Why `path` is not a readable regular file (or, with `folder`, a directory).

    Args:
        path: the path.
        folder: whether a directory is wanted rather than a file.
        empty_ok: whether an empty (0-byte) file will do.

    Returns:
        None when it is one; otherwise `NOT_FOUND`, `EMPTY` or a phrase such as `is a
        FIFO (named pipe), not a file` or `is a dangling symbolic link to x.jpg`.
    """
    try:
        status = os.stat(path)
    except OSError as error:
        return _stat_problem(path, error)
    mode = status.st_mode
    if not (stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)):
        return f"is {_kind(mode)}, not {'a folder' if folder else 'a file'}"
    if not (folder or empty_ok or status.st_size):
        return EMPTY
    return None


def exists(path: Path) -> bool:
    """Whether anything (a dangling symbolic link included) is at `path`."""
    return os.path.lexists(path)


def require_file(path: Path, what: str) -> None:
    """Raise `DataError` naming `path` unless it is a regular file.

    Args:
        path: the file.
        what: what the file is for the user, e.g. `annotation file`.
    """
    problem = path_problem(path)
    if problem is not None:
        raise DataError(f"{path}: {what} {problem}")


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file's text; a leading byte-order mark is dropped.

    Args:
        path: the file.
        what: what the file is for the user, e.g. `annotation file`.

    Raises:
        DataError: naming the file when it is missing, not a regular file, unreadable
            or not UTF-8.
    """
    require_file(path, what)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read the {what} ({error.strerror})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: cannot read the {what}: byte 0x{data[error.start]:02x} "
            "is not UTF-8 text; save the file as UTF-8"
        ) from None
