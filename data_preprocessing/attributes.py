"""Per-gloss attributes from a lexicon table -> head labels for every clip of a root.

Usage::

    python3 -m data_preprocessing.attributes --table wlasl_phonology.csv --root ROOT
        [--key gloss] [--columns handshape,major_location,...] [--min_count 5]

A lexicon says, for each sign, its phonology (ASL-LEX's handshape, location,
movement, ...; a HamNoSys lexicon's heads). Given a dataset root whose
`test_gloss.txt` names each clip's gloss (as `data_preprocessing.wlasl` and
`labels_csv` write it) and a table with one row per gloss, this writes
``ROOT/test_hamnosys.txt``: ``name start end`` and one label column per attribute,
with a header, so that `classification_mode: [gloss, hamnosys]` trains the gloss head
beside one head per attribute (the `hamnosys` group is signpipe's group of
phonology heads, whatever the lexicon). A gloss without a row, and a cell that is
empty (not coded), give the missing label `-1`: those heads skip the clip, the gloss
head does not.

``--key`` is the table's column matched against the root: `class_index` (a column of
class ids, matched to the gloss ids of `test_gloss.txt`) or a column of gloss words
(matched to `glosses.txt`'s words, case-insensitively). Each attribute's values are
numbered in sorted order; ``ROOT/names_<attribute>.txt`` (``id value``) keeps the
values, which `test.py` and `predict.py` print. ``--min_count N`` folds values seen
on fewer than N glosses into one `other` class. ``ROOT/attributes.json`` records
the table, the columns, the coverage and the class counts (``num_class`` per head for
the config).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from datasets.index import GLOSS_NAMES_FILE, read_gloss_names, value_names_file
from utils.annotations import csv_rows, read_annotation_file
from utils.cli import positive_int, run_cli
from utils.errors import DataError, UserError
from utils.files import read_text, write_output

GLOSS_FILE = "test_gloss.txt"
OUTPUT_FILE = "test_hamnosys.txt"
SUMMARY_FILE = "attributes.json"
OTHER = "other"
MISSING = -1


def read_table(path: Path, key: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The table's columns and its rows by key value (lower-case); a key given twice
    is an error naming both lines."""
    rows = list(csv_rows(read_text(path, "attribute table"), path))
    header, *body = rows or [(1, [])]
    columns = [cell.strip() for cell in header[1]]
    if key not in columns:
        raise DataError(
            f"{path}:1: no column {key!r} to match glosses by; columns: "
            f"{', '.join(columns)}"
        )
    table: dict[str, dict[str, str]] = {}
    where: dict[str, int] = {}
    for line, cells in body:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            raise DataError(
                f"{path}:{line}: {len(cells)} cells, the header has {len(columns)}"
            )
        row = dict(zip(columns, (cell.strip() for cell in cells)))
        name = row[key].lower()
        if name in table:
            raise DataError(
                f"{path}:{line}: {key} {row[key]!r} is also on line {where[name]}"
            )
        table[name], where[name] = row, line
    return columns, table


def value_ids(values: list[str], min_count: int) -> dict[str, int]:
    """Value -> class id: sorted values seen at least `min_count` times, then
    `other` for the rest (when there are any)."""
    counts = Counter(values)
    kept = sorted(value for value, count in counts.items() if count >= min_count)
    ids = {value: index for index, value in enumerate(kept)}
    rare = [value for value in counts if value not in ids]
    for value in rare:
        ids[value] = len(kept)
    return ids


def attach_attributes(
    table_path: Path,
    root: Path,
    *,
    key: str = "gloss",
    columns: list[str] | None = None,
    min_count: int = 1,
) -> dict:
    """Write `ROOT/test_hamnosys.txt`, the value names and a summary; the summary."""
    table_columns, table = read_table(table_path, key)
    columns = columns or [c for c in table_columns if c != key]
    unknown = [column for column in columns if column not in table_columns]
    if unknown:
        raise UserError(
            f"--columns: {', '.join(unknown)} not in {table_path} (columns: "
            f"{', '.join(table_columns)})"
        )
    rows = read_annotation_file(root / GLOSS_FILE, ["gloss"])
    if key == "class_index":
        words = {i: str(i) for i in {row.labels["gloss"] for row in rows}}
    else:
        words = read_gloss_names([str(root)])
        if not words:
            raise DataError(
                f"{root / GLOSS_NAMES_FILE}: missing or empty; it names the glosses "
                f"that --key {key} matches (or use --key class_index)"
            )
    glosses = sorted({row.labels["gloss"] for row in rows})
    entry = {g: table.get(words.get(g, str(g)).lower()) for g in glosses}
    ids = {}
    for column in columns:
        values = [e[column] for e in entry.values() if e is not None and e[column]]
        ids[column] = value_ids(values, min_count)
    lines = ["name start end " + " ".join(columns)]
    for row in rows:
        found = entry[row.labels["gloss"]]
        labels = [
            ids[c][found[c]] if found is not None and found[c] else MISSING
            for c in columns
        ]
        end = "" if row.end is None else row.end
        lines.append(f"{row.name} {row.start} {end} " + " ".join(map(str, labels)))
    _write(root / OUTPUT_FILE, "\n".join(lines) + "\n")
    for column in columns:
        names = {}
        for value, index in ids[column].items():
            names[index] = value if names.get(index, value) == value else OTHER
        text = "".join(f"{i} {names[i]}\n" for i in sorted(names))
        _write(root / value_names_file(column), "id value\n" + text)
    covered = [g for g in glosses if entry[g] is not None]
    summary = {
        "table": str(table_path),
        "key": key,
        "glosses": len(glosses),
        "glosses_with_a_row": len(covered),
        "clips": len(rows),
        "clips_with_a_row": sum(entry[row.labels["gloss"]] is not None for row in rows),
        "num_class": {c: max(2, len(set(ids[c].values()))) for c in columns},
    }
    _write(root / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


def _write(path: Path, text: str) -> None:
    write_output(path, lambda file: file.write(text.encode("utf-8")))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.attributes",
        description="Attach per-gloss attributes from a lexicon table (ASL-LEX "
        "phonology, HamNoSys heads, ...) to every clip of a dataset root, as the "
        "label columns of ROOT/test_hamnosys.txt.",
    )
    parser.add_argument("--table", type=Path, required=True, help="the CSV table")
    parser.add_argument(
        "--root", type=Path, required=True, help="a dataset root with test_gloss.txt"
    )
    parser.add_argument(
        "--key",
        default="gloss",
        help="the table's column matched to the root's glosses: a column of gloss "
        "words (matched to glosses.txt), or class_index (default: gloss)",
    )
    parser.add_argument(
        "--columns",
        type=lambda text: [c.strip() for c in text.split(",") if c.strip()],
        help="comma-separated attribute columns (default: every other column)",
    )
    parser.add_argument(
        "--min_count",
        type=positive_int,
        default=1,
        help="values seen on fewer glosses are folded into 'other' (default: 1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one message and exit 2."""

    def command() -> int:
        args = _build_parser().parse_args(argv)
        summary = attach_attributes(
            args.table,
            args.root,
            key=args.key,
            columns=args.columns,
            min_count=args.min_count,
        )
        print(
            f"{summary['glosses_with_a_row']} of {summary['glosses']} glosses "
            f"({summary['clips_with_a_row']} of {summary['clips']} clips) have a row "
            f"in {args.table}; wrote {args.root / OUTPUT_FILE}"
        )
        for column, count in summary["num_class"].items():
            print(f"  {column}: {count} classes")
        return 0

    return run_cli(command)


if __name__ == "__main__":
    sys.exit(main())
