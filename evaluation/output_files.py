"""The files the evaluation commands write for the user, and the tables they read back.

Every file is written atomically (`utils.files.write_output`); an OS error on
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

from utils.errors import DataError
from utils.files import FORMULA_STARTS, require_file, write_output


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
