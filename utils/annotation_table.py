"""An annotation file read as a table of label columns (for `utils.make_statistics`).

Reads any annotation file the datasets read (see docs/data/annotations.md): HearAI's
HamNoSys files with their long column titles, our own header names (`gloss`, the
head names), headers in any case, headerless files and any separator. Every column
after name, start and end becomes a `ColumnStats` with its values and counts.

Columns are named from the header (HearAI titles map to head names); without a
header, 8 or 9 label columns take the documented HamNoSys order and any other
number are `label_1`, `label_2`, ... HamNoSys heads show their class names
(`3 hamfinger23`). `split` and `signer` columns hold text and are categorical;
another header-named column is categorical when any of its values is not a class
id. `-1`, `nan` and empty labels count as missing.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from config.hamnosys_heads import ALL_HEADS, head_class_names
from utils.annotations import (
    SPECIAL_COLUMNS,
    SPLITS,
    resolve_title,
    split_lines,
)
from utils.constants import IGNORE_INDEX
from utils.errors import DataError
from utils.labels import MISSING_TOKENS, parse_label

#: HamNoSys heads in column order, the optional ninth (distance) included.
HAMNOSYS_COLUMNS = list(ALL_HEADS)
CLASS_NAMES = head_class_names()


@dataclass
class ColumnStats:
    """One column of the file: its values (None = missing) and where each was read."""

    name: str
    header: str
    kind: str  # "hamnosys" (named classes), "label" (class ids) or "categorical"
    tokens: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the file line of each token
    values: list[int | str | None] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        """How often each class occurs (missing labels left out)."""
        return Counter(value for value in self.values if value is not None)

    @property
    def missing(self) -> int:
        """The number of samples without a label in this column."""
        return sum(value is None for value in self.values)

    def class_name(self, value: int | str) -> str:
        """A class as shown to people: `3 hamfinger23` for HamNoSys heads."""
        if self.kind != "hamnosys" or not isinstance(value, int):
            return str(value)
        names = CLASS_NAMES.get(self.name, [])
        return f"{value} {names[value]}" if value < len(names) else f"{value} (unknown)"

    def most_common(self) -> tuple[int | str, int] | None:
        """The most frequent class and its count (ties: the first in class order)."""
        counts = self.counts
        if not counts:
            return None
        best = max(sorted(counts, key=class_order), key=lambda value: counts[value])
        return best, counts[best]


def class_order(value: int | str) -> tuple:
    """Class ids numerically; text in split order, then naturally (s2 before s10)."""
    if isinstance(value, int):
        return (0, value)
    if value.lower() in SPLITS:
        return (1, SPLITS.index(value.lower()))
    parts = re.split(r"(\d+)", value)
    return (
        2,
        [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts],
    )


def _is_class_id(token: str) -> bool:
    try:
        parse_label(token, "", "")
    except DataError:
        return False
    return True


def file_safe(name: str) -> str:
    """A column name usable as a file name (`Dom hand / x` -> `Dom_hand_x`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "column"


def _named_columns(titles: list[str]) -> list[ColumnStats]:
    """Columns named by a header (the titles after name, start and end)."""
    columns, seen = [], Counter()
    for title in titles:
        resolved = resolve_title(title)
        if resolved in HAMNOSYS_COLUMNS:
            kind = "hamnosys"
        elif resolved in SPECIAL_COLUMNS:
            kind = "categorical"
        else:
            kind = "label" if resolved == "gloss" else "auto"
        name = file_safe(resolved)
        seen[name] += 1
        if seen[name] > 1:
            name = f"{name}_{seen[name]}"
        columns.append(ColumnStats(name, title, kind))
    return columns


def _unnamed_columns(count: int) -> list[ColumnStats]:
    """Columns of a headerless file: the HamNoSys order for 8 or 9, else label_i."""
    if count in (8, 9):
        return [ColumnStats(name, "", "hamnosys") for name in HAMNOSYS_COLUMNS[:count]]
    return [ColumnStats(f"label_{i}", "", "label") for i in range(1, count + 1)]


def _separator_hint(tokens: list[str]) -> str:
    return " (is --separator right?)" if len(tokens) == 1 else ""


def _row_problem(tokens: list[str], width: int) -> str | None:
    """What is wrong with a data row's shape, or None."""
    if len(tokens) != width:
        labels = f"{width - 3} label" + ("s" if width != 4 else "")
        return (
            f"expected {width} columns (name start end and {labels}), "
            f"found {len(tokens)}{_separator_hint(tokens)}"
        )
    start, end = tokens[1], tokens[2]
    if not (re.fullmatch(r"\d+", start) and re.fullmatch(r"\d+", end)):
        return f"start and end must be frame numbers, got {start!r} {end!r}"
    return None


def _read_columns(
    path: Path, separator: str | None
) -> tuple[list[ColumnStats], list[tuple[int, str]]]:
    """Split the file into columns of raw tokens; also the (line, problem) found."""
    lines = split_lines(path, separator)
    columns: list[ColumnStats] | None = None
    width, errors = 0, []
    if lines.header is not None:
        if len(lines.header) < 4:
            raise DataError(
                f"{lines.where(lines.header_line)}: the header names no label columns"
            )
        columns, width = _named_columns(lines.header[3:]), len(lines.header)
    for number, tokens in lines.rows:
        where = lines.where(number)
        if columns is None:
            if len(tokens) < 4:
                problem = "expected name start end and the labels, found"
                hint = _separator_hint(tokens)
                errors.append((number, f"{where}: {problem} {len(tokens)}{hint}"))
                continue
            columns, width = _unnamed_columns(len(tokens) - 3), len(tokens)
        problem = _row_problem(tokens, width)
        if problem:
            errors.append((number, f"{where}: {problem}"))
            continue
        for column, token in zip(columns, tokens[3:]):
            column.tokens.append(token)
            column.lines.append(number)
    if not errors and (not columns or not columns[0].tokens):
        raise DataError(
            f"{path}: "
            + ("the file is empty" if lines.blank else "no samples in the file")
        )
    return columns or [], errors


def _parse_values(column: ColumnStats, path: Path) -> list[tuple[int, str]]:
    """Fill `column.values` from its tokens; return the (line, problem) found."""
    if column.kind == "auto":
        numeric = all(_is_class_id(token) for token in column.tokens)
        column.kind = "label" if numeric else "categorical"
    if column.kind == "categorical":
        column.values = [
            None if token.strip().lower() in MISSING_TOKENS else token
            for token in column.tokens
        ]
        return []
    errors = []
    for token, number in zip(column.tokens, column.lines):
        try:
            label = parse_label(token, column.name, f"{path}:{number}")
        except DataError as error:
            errors.append((number, str(error)))
            label = IGNORE_INDEX
        column.values.append(None if label == IGNORE_INDEX else label)
    return errors


def compute_statistics(path: Path, separator: str | None = None) -> list[ColumnStats]:
    """Read an annotation file into per-column label values.

    Args:
        path: the annotation file.
        separator: the column separator; None = any whitespace.

    Returns:
        One entry per label column (name, start and end left out), in file order.

    Raises:
        DataError: naming `file:line` of the first bad line and how many more there are.
    """
    columns, errors = _read_columns(path, separator)
    for column in columns:
        errors.extend(_parse_values(column, path))
    if errors:
        errors.sort(key=lambda error: error[0])
        more = len({number for number, _ in errors}) - 1
        tail = f" (and {more} more bad line{'s' if more > 1 else ''})" if more else ""
        raise DataError(errors[0][1] + tail)
    return columns
