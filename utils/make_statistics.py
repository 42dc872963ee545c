"""Label statistics of an annotation file: a bar chart per column and a summary table.

Reads any annotation file the datasets read (see DESIGN.md section 4): HearAI's
HamNoSys files with their long column titles, our own header names (`gloss`, the
head names), headers in any case, headerless files and any separator. Each label
column gets a bar chart `<column>.png`; `summary.csv` and `summary.md` list, per
column, the samples, labelled and missing counts, the number of distinct classes
and the most common class.

Columns are named from the header (HearAI titles map to head names); without a
header, 8 or 9 label columns take the documented HamNoSys order and any other
number are `label_1`, `label_2`, ... HamNoSys heads are charted with their class
names (`3 hamfinger23`). `split` and `signer` columns hold text and are charted as
categories; another header-named column is charted as categories when any of its
values is not a class id. `-1`, `nan` and empty labels count as missing.

Usage::

    python3 -m utils.make_statistics --file_path FILE --output_directory DIR \
        [--separator " "]
"""

from __future__ import annotations

import argparse
import csv
import re
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from utils.hamnosys_heads import ALL_HEADS, NUM_CLASSES, head_class_names
from datasets.annotations import (
    HEADER_ALIASES,
    MISSING_TOKENS,
    SPECIAL_COLUMNS,
    SPLITS,
    parse_label,
)
from models.heads import IGNORE_INDEX
from utils.cli import run_cli
from utils.errors import DataError, UserError

#: Charts with more classes than this show the most frequent ones and an "other" bar.
TOP_N = 40
#: HamNoSys heads in column order, the optional ninth (distance) included.
HAMNOSYS_COLUMNS = list(ALL_HEADS)
CLASS_NAMES = head_class_names()
SUMMARY_FIELDS = tuple(
    "column header kind samples labelled missing distinct_classes "
    "most_common_class most_common_count chart".split()
)

_BAR_COLOURS = {"class": "#4c72b0", "other": "#8c8c8c", "missing": "#dd8452"}
_INCH_PER_BAR = 0.26


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
        best = max(sorted(counts, key=_class_order), key=lambda value: counts[value])
        return best, counts[best]


def _class_order(value: int | str) -> tuple:
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


def _tokenize(line: str, separator: str | None, header: bool) -> list[str]:
    if separator is None:
        if header:  # titles may be quoted and contain spaces ("Symmetry operator")
            try:
                return shlex.split(line)
            except ValueError:  # an unbalanced quote: plain words then
                pass
        return line.split()
    return [token.strip() for token in next(csv.reader([line], delimiter=separator))]


def _looks_like_header(tokens: list[str]) -> bool:
    """The reader's rule: `name ...`, or non-numeric start and end columns."""

    def number(token: str) -> bool:
        try:
            float(token)
        except ValueError:
            return False
        return True

    if tokens[0].strip().strip("\"'").lower() == "name":
        return True
    return len(tokens) >= 3 and not number(tokens[1]) and not number(tokens[2])


def _is_class_id(token: str) -> bool:
    try:
        parse_label(token, "", "")
    except DataError:
        return False
    return True


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "column"


def _named_columns(titles: list[str]) -> list[ColumnStats]:
    """Columns named by a header (the titles after name, start and end)."""
    columns, seen = [], Counter()
    for title in titles:
        normalised = re.sub(r"\s+", " ", title.strip().strip("\"'").lower())
        resolved = HEADER_ALIASES.get(normalised, normalised.replace(" ", "_"))
        if resolved in HAMNOSYS_COLUMNS:
            kind = "hamnosys"
        elif resolved in SPECIAL_COLUMNS:
            kind = "categorical"
        else:
            kind = "label" if resolved == "gloss" else "auto"
        name = _file_safe(resolved)
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
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the annotation file ({error})") from None
    columns: list[ColumnStats] | None = None
    width, errors = 0, []
    for number, line in enumerate(lines, start=1):
        where = f"{path}:{number}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        tokens = _tokenize(line, separator, header=False)
        if columns is None:
            if _looks_like_header(tokens):
                titles = _tokenize(line, separator, header=True)
                if len(titles) < 4:
                    raise DataError(f"{where}: the header names no label columns")
                columns, width = _named_columns(titles[3:]), len(titles)
                continue
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
        empty = not any(line.strip() for line in lines)
        raise DataError(
            f"{path}: " + ("the file is empty" if empty else "no samples in the file")
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


def chart_bars(column: ColumnStats) -> tuple[list[tuple[str, int, str]], str]:
    """The bars (label, count, kind) of a column's chart and a note for its title."""
    counts = column.counts
    classes = sorted(counts, key=_class_order)
    if column.kind == "hamnosys":
        known = range(NUM_CLASSES.get(column.name, 0))
        classes = sorted(set(known) | set(counts), key=_class_order)
    note = ""
    if len(classes) > TOP_N:
        top = sorted(classes, key=lambda value: (-counts[value], _class_order(value)))
        classes = top[:TOP_N]
        note = f"top {TOP_N} of {len(top)} classes by count"
    bars = [(column.class_name(value), counts[value], "class") for value in classes]
    rest = sum(counts.values()) - sum(count for _, count, _ in bars)
    if note:
        bars.append((f"other ({len(counts) - TOP_N} classes)", rest, "other"))
    if column.missing:
        bars.append(("missing", column.missing, "missing"))
    return bars, note


def plot_column(column: ColumnStats, path: Path) -> None:
    """Save a horizontal bar chart of a column's class counts as a PNG.

    Args:
        column: the column, values parsed.
        path: the PNG file to write.
    """
    bars, note = chart_bars(column)
    labels, counts, kinds = zip(*bars)
    figure = Figure(figsize=(9, max(2.5, 1.6 + _INCH_PER_BAR * len(bars))))
    axes = figure.add_subplot()
    drawn = axes.barh(
        range(len(bars)), counts, color=[_BAR_COLOURS[kind] for kind in kinds]
    )
    axes.bar_label(drawn, padding=2, fontsize=8)
    axes.set_yticks(range(len(bars)), labels, fontsize=8)
    axes.invert_yaxis()  # the first class on top
    axes.margins(x=0.12, y=0.5 / len(bars))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # counts are whole
    axes.grid(axis="x", alpha=0.3)
    axes.set_axisbelow(True)
    axes.set_xlabel("samples")
    labelled = len(column.values) - column.missing
    details = [
        f"{len(column.values)} samples",
        f"{labelled} labelled",
        f"{column.missing} missing",
        f"{len(column.counts)} classes",
    ]
    title = column.name
    if column.header and _file_safe(column.header.lower()) != column.name:
        title = f"{column.name} ({column.header})"
    axes.set_title(
        f"{title}\n{', '.join(details)}" + (f"\n{note}" if note else ""), fontsize=10
    )
    try:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    except OSError as error:
        raise UserError(f"cannot write {path}: {error}") from None


def summary_row(column: ColumnStats, chart: str) -> dict[str, str | int]:
    """A column's line of the summary table (keys: `SUMMARY_FIELDS`)."""
    most_common = column.most_common()
    return {
        "column": column.name,
        "header": column.header,
        "kind": column.kind,
        "samples": len(column.values),
        "labelled": len(column.values) - column.missing,
        "missing": column.missing,
        "distinct_classes": len(column.counts),
        "most_common_class": column.class_name(most_common[0]) if most_common else "",
        "most_common_count": most_common[1] if most_common else 0,
        "chart": chart,
    }


def _markdown_cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def write_summary(rows: list[dict], output_directory: Path, source: Path) -> None:
    """Write the summary table as `summary.csv` and `summary.md`."""
    with (output_directory / "summary.csv").open(
        "w", encoding="utf-8", newline=""
    ) as file:
        writer = csv.DictWriter(file, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"# Label statistics of `{source}`",
        "",
        "| " + " | ".join(SUMMARY_FIELDS) + " |",
        "|" + "---|" * len(SUMMARY_FIELDS),
        *(
            "| " + " | ".join(_markdown_cell(row[key]) for key in SUMMARY_FIELDS) + " |"
            for row in rows
        ),
    ]
    (output_directory / "summary.md").write_text("\n".join(lines) + "\n", "utf-8")


def make_statistics(
    file_path: Path, output_directory: Path, separator: str | None = None
) -> list[dict]:
    """Chart every label column of an annotation file and write the summary table.

    Args:
        file_path: the annotation file.
        output_directory: where the charts and summaries go; created if missing.
        separator: the column separator; None = any whitespace.

    Returns:
        The summary rows, one per column.

    Raises:
        UserError: bad input (`DataError` naming file:line) or an unwritable output.
    """
    columns = compute_statistics(Path(file_path), separator)
    output_directory = Path(output_directory)
    try:
        output_directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot create {output_directory}: {error}") from None
    rows = []
    for column in tqdm(columns, desc="charts", unit="column"):
        chart = f"{column.name}.png"
        plot_column(column, output_directory / chart)
        rows.append(summary_row(column, chart))
    try:
        write_summary(rows, output_directory, Path(file_path))
    except OSError as error:
        raise UserError(
            f"cannot write the summary in {output_directory}: {error}"
        ) from None
    return rows


def parse_separator(text: str) -> str | None:
    """`--separator` -> one character, or None (any whitespace) for a space."""
    text = {"\\t": "\t", "tab": "\t", "\\s": " "}.get(text, text)
    if text == " ":
        return None
    if len(text) != 1:
        raise UserError(f"--separator must be one character, got {text!r}")
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line's arguments."""
    parser = argparse.ArgumentParser(
        prog="python3 -m utils.make_statistics",
        description=(
            "Chart the label distribution of every column of an annotation file "
            "and write a summary table (summary.csv, summary.md)."
        ),
    )
    parser.add_argument("--file_path", type=Path, required=True, metavar="FILE")
    parser.add_argument("--output_directory", type=Path, required=True, metavar="DIR")
    parser.add_argument(
        "--separator",
        default=" ",
        help='column separator, one character; " " (default) = any whitespace, '
        '"\\t" = tab',
    )
    return parser.parse_args(argv)


def _run(args: argparse.Namespace) -> int:
    rows = make_statistics(
        args.file_path, args.output_directory, parse_separator(args.separator)
    )
    print(
        f"wrote {len(rows)} chart{'s' if len(rows) != 1 else ''} "
        f"({rows[0]['chart']}{', ...' if len(rows) > 1 else ''}), summary.csv and "
        f"summary.md to {args.output_directory}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one `error:` line and return 2."""
    return run_cli(lambda: _run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
