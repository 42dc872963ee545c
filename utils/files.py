"""Files: what a path is when it is not a regular file, text read as UTF-8, atomic
writes, output folders, and PyTorch files loaded as data only.

Every reader checks a path here before opening it, so that a FIFO (which would block
the reader for ever), a folder, a dangling symbolic link or a link loop is reported
as what it is, naming the file.

Every checkpoint or weights file is loaded with `weights_only=True`. A file from
elsewhere (a shared run folder, a downloaded checkpoint) is data: unpickling anything
but tensors and plain containers could run code, so such a file is refused, naming it.

Every file signpipe writes goes first to `.<name>.tmp-<pid>` beside it, is flushed to
disk, and is then renamed into place. A failed write (a full disk) removes its
temporary file and leaves the previous file whole; a killed one leaves the temporary
file, which the next run in that folder removes (see `training.run_folder`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import stat
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

from utils.errors import DataError, UserError

#: First characters that make a spreadsheet read a cell as a formula (OWASP's list:
#: `=`, `+`, `-`, `@`, tab, carriage return): predict.py's tables neutralise such
#: cells, labels_csv refuses labels that start with one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
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


TEMPORARY_MARK = ".tmp-"
_TEMPORARY = re.compile(r"\..+" + re.escape(TEMPORARY_MARK) + r"\d+")
# torch's messages when `weights_only` refused a global in the pickle ("unsupported
# GLOBAL posix.system", "Unsupported global: GLOBAL x.Y"), or could not read it.
_REFUSED_GLOBAL = re.compile(r"\bGLOBAL (\S+)")
_UNPICKLER_ERROR = "WeightsUnpickler error:"


def temporary_path(path: Path, owner: str | None = None) -> Path:
    """Where this process writes `path` before renaming it into place:
    `.<name>.tmp-<owner>`, the owner being this process id unless given (a folder
    shared by several machines names the host too)."""
    return path.with_name(f".{path.name}{TEMPORARY_MARK}{owner or os.getpid()}")


def is_temporary(path: Path, of: str | None = None) -> bool:
    """Whether `path` is a regular file named as `temporary_path` names a file being
    written (of the file named `of`, when given)."""
    name = path.name
    if of is not None and not name.startswith(f".{of}{TEMPORARY_MARK}"):
        return False
    return _TEMPORARY.fullmatch(name) is not None and path.is_file()


def _os_error_behind(error: BaseException) -> OSError | None:
    """The OSError that `error` was raised while handling, if any."""
    cause = error.__cause__ or error.__context__
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    return cause


def write_atomically(
    path: Path, write: Callable[[BinaryIO], object], owner: str | None = None
) -> None:
    """Write `path` through `write(file)`: to a temporary file, then renamed into place.

    Every file signpipe writes goes through here (checkpoints, configs, results,
    landmark files, the frame cache, HamNoSys labels).

    Args:
        path: the file to write.
        write: writes the contents to the open binary file it is given.
        owner: the temporary file's owner tag (see `temporary_path`).

    Raises:
        OSError: the write failed (a full disk, no permission); the temporary file is
            removed and a previous `path` is left as it was.
    """
    temporary = temporary_path(path, owner)
    try:
        with temporary.open("wb") as file:
            try:
                write(file)
            except RuntimeError as error:
                # torch.save reports a failed write (a full disk) as a RuntimeError
                # ("unexpected pos ..."), raised while the OSError was handled.
                cause = _os_error_behind(error)
                if cause is None:
                    raise
                raise cause from None
            file.flush()
            # A full disk may only show when the data reaches it: before the rename.
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def is_inside(path: Path, root: Path) -> bool:
    """Whether `path` resolves (`..` and symbolic links followed) to `root` or a
    path under it: where a name read from input may be written."""
    return path.resolve().is_relative_to(root.resolve())


def prepare_output(output: Path) -> None:
    """Create the output folder; `UserError` if that is impossible."""
    if output.exists() and not output.is_dir():
        raise UserError(f"output {output} exists and is not a folder")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create output folder {output}: {error}") from None


def write_error(path: Path, error: OSError, hint: str = "") -> UserError:
    """The `UserError` for a failed write of `path`: `cannot write PATH (cause)`."""
    cause = error.strerror or str(error)
    return UserError(f"cannot write {path} ({cause}){'; ' + hint if hint else ''}")


def write_output(
    path: Path, write: Callable[[BinaryIO], object], hint: str = ""
) -> None:
    """Write `path` atomically through `write(file)`, creating its folder.

    Args:
        path: the file.
        write: writes the contents to the open binary file it is given.
        hint: what the user can do, added to the message of a failed write.

    Raises:
        UserError: naming the file and the cause when the folder cannot be made or
            the write fails; a previous `path` is left as it was.
    """
    prepare_output(path.parent)
    try:
        write_atomically(path, write)
    except OSError as error:
        raise write_error(path, error, hint) from None


def check_unique_names(paths: Sequence[Path], names: Sequence[str]) -> None:
    """Raise `UserError` when two inputs would write the same output folder."""
    seen: dict[str, Path] = {}
    clashes = []
    for path, name in zip(paths, names):
        if name in seen:
            clashes.append(f"{seen[name]} and {path} both give {name}")
        seen.setdefault(name, path)
    if clashes:
        raise UserError("inputs share an output name: " + "; ".join(clashes))


def describe_load_error(error: BaseException) -> str:
    """Why a PyTorch file did not load, in a few words (a refused pickle said so)."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, pickle.UnpicklingError):
        cause = cause.__cause__ or cause.__context__
    text = str(cause if cause is not None else error)
    refused = _REFUSED_GLOBAL.search(text)
    if refused:
        return (
            f"it holds Python objects ({refused.group(1).rstrip('.')}) other than "
            "tensors and plain data; they were not unpickled, as that could run code"
        )
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = text.split(_UNPICKLER_ERROR, 1)[-1].strip()
    reason = (text.splitlines() or [""])[0].split(". ")[0][:160]
    kind = type(cause if cause is not None else error).__name__
    return f"not a readable PyTorch checkpoint: {kind}: {reason}"


def file_problem(path: Path) -> str | None:
    """Why `path` is not a regular file (`is a FIFO (named pipe), not a file`), or
    None. Checked before opening: reading a FIFO would wait for ever."""
    problem = path_problem(path)
    return "is not an existing file" if problem == NOT_FOUND else problem


def load_data_only(path: str | Path, what: str) -> Any:
    """A checkpoint or weights file, loaded on the CPU with `weights_only=True`.

    Args:
        path: the file.
        what: how messages name it, e.g. `--checkpoint`.

    Raises:
        UserError: naming the file, when it is not a regular file, cannot be read,
            is not a PyTorch file or holds objects that only running code rebuilds.
    """
    problem = file_problem(Path(path))
    if problem is not None:
        raise UserError(f"{what}: '{path}' {problem}")
    try:
        # torch only here: the text and dataset readers of this module do not need it.
        import torch  # pylint: disable=import-outside-toplevel

        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pylint: disable=broad-exception-caught
        raise UserError(
            f"{what}: cannot read {path} ({describe_load_error(error)})"
        ) from None
