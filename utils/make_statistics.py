"""Label statistics of an annotation file: a bar chart per column and a summary table.

Reads any annotation file the datasets read, with or without a header, with any
separator; `utils.annotation_table` describes how the columns are named and which
labels count as missing. Each label column gets a bar chart `<column>.png`
(HamNoSys heads with their class names, `3 hamfinger23`); `summary.csv` and
`summary.md` list, per column, the samples, labelled and missing counts, the number
of distinct classes and the most common class.

Usage::

    python3 -m utils.make_statistics --file_path FILE --output_directory DIR \
        [--separator " "]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from config.hamnosys_heads import NUM_CLASSES
from utils.annotation_table import (
    ColumnStats,
    class_order,
    compute_statistics,
    file_safe,
)
from utils.cli import run_cli
from utils.errors import UserError

#: Charts with more classes than this show the most frequent ones and an "other" bar.
TOP_N = 40
SUMMARY_FIELDS = tuple(
    "column header kind samples labelled missing distinct_classes "
    "most_common_class most_common_count chart".split()
)

_BAR_COLOURS = {"class": "#4c72b0", "other": "#8c8c8c", "missing": "#dd8452"}
_INCH_PER_BAR = 0.26


def chart_bars(column: ColumnStats) -> tuple[list[tuple[str, int, str]], str]:
    """The bars (label, count, kind) of a column's chart and a note for its title."""
    counts = column.counts
    classes = sorted(counts, key=class_order)
    if column.kind == "hamnosys":
        known = range(NUM_CLASSES.get(column.name, 0))
        classes = sorted(set(known) | set(counts), key=class_order)
    note = ""
    if len(classes) > TOP_N:
        top = sorted(classes, key=lambda value: (-counts[value], class_order(value)))
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
    if column.header and file_safe(column.header.lower()) != column.name:
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
