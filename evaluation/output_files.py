"""The files the evaluation commands write for the user, and the tables they read back.

Every file is written atomically (`utils.files.write_atomically`); an OS error on
the user's path (a full disk, no permission, a file where a folder should be) is one
`UserError` naming the file and the cause. Tables are CSV (or TSV) files:
`write_rows` writes them, `read_rows` reads them back with any problem named by
file and row. `spreadsheet_safe` keeps a cell of a table meant for spreadsheets
from being run as a formula.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import BinaryIO, Callable

from utils.errors import DataError, UserError
from utils.files import (
    FORMULA_STARTS,
    prepare_output,
    require_file,
    write_atomically,
)


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


def spreadsheet_safe(cell: object) -> object:
    """`cell`, with a `'` in front when it is text that a spreadsheet would read as a
    formula (it starts with one of `FORMULA_STARTS`); the spreadsheet then shows the
    text as it is. Other cells (numbers, empty text) are kept."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def write_rows(path: Path, rows: list[list], delimiter: str = ",") -> None:
    """Write a CSV (or, with a tab delimiter, TSV) table atomically (`write_output`),
    rows ending in `\\n`."""
    # The writer quotes a cell holding a character of its line terminator only: with
    # `\r\n` a carriage return in a cell is quoted too (with `\n` it would end the
    # row); each row's terminator then becomes `\n`.
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    lines = []
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        lines.append(buffer.getvalue()[: -len("\r\n")] + "\n")
    data = "".join(lines).encode("utf-8")
    write_output(path, lambda file: file.write(data))


def read_rows(path: Path, delimiter: str = ",") -> list[list[str]]:
    """The rows of a table `write_rows` wrote; blank lines are skipped.

    Raises:
        DataError: naming the file (and row and line) when it is not a regular
            file, cannot be read, is not UTF-8 or holds a row the CSV reader
            refuses (a field longer than its limit, 131,072 characters).
    """
    require_file(path, "table")
    rows: list[list[str]] = []
    try:
        with path.open(encoding="utf-8", newline="") as file:
            reader = csv.reader(file, delimiter=delimiter)
            try:
                for row in reader:
                    if row:
                        rows.append(row)
            except csv.Error as error:
                raise DataError(
                    f"{path}:{reader.line_num}: cannot read row {len(rows) + 1} of "
                    f"the table ({error})"
                ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"{path}: the table is not UTF-8 text (row {len(rows) + 1})"
        ) from None
    except OSError as error:
        raise DataError(f"{path}: cannot read the table ({error.strerror})") from None
    return rows
