"""A word tokenizer from a column of sentences: the vocabulary of a text head.

Usage::

    python3 -m data_preprocessing.tokenizer FILE --column text
        [--separator TAB|COMMA|SPACE] --output DIR

``FILE`` is an annotation file or a manifest whose first line (after blank lines
and ``#`` comments) is a header naming its columns; ``--column`` names the column
that holds the sentences (``text`` in ``sentences.tsv``, the ``label`` of an
SSVP-SLT manifest). The separator is ``--separator``, else ``COMMA`` for a ``.csv``
file, ``TAB`` for a ``.tsv`` file or a header line with a tab, else ``SPACE`` (any
whitespace: then every cell is one word). ``DIR`` gets a Hugging Face tokenizer
folder (``tokenizer.json``, ``tokenizer_config.json``): ``<pad>`` = 0, ``</s>`` = 1
(appended to every sentence), ``<unk>`` = 2, then every distinct lower-cased word of
the column, sorted (see `utils.tokenizer`). A head's ``tokenizer_path`` names ``DIR``.

Build it from the training sentences, or from every word the corpus may use: a
word only in the validation sentences is ``<unk>`` to a tokenizer built without it.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from utils.cli import run_cli
from utils.errors import DataError, UserError, quote
from utils.files import read_text
from utils.tokenizer import SPECIAL_TOKENS, build_word_tokenizer, word_vocabulary

SEPARATORS = {"TAB": "\t", "COMMA": ",", "SPACE": None}


def _separator(path: Path, header: str, name: str | None) -> str | None:
    """The column separator named by `--separator`, else guessed (module docstring)."""
    if name is not None:
        return SEPARATORS[name.upper()]
    if path.suffix.lower() == ".csv":
        return ","
    if path.suffix.lower() == ".tsv" or "\t" in header:
        return "\t"
    return None


def _rows(text: str, separator: str | None) -> list[tuple[int, list[str]]]:
    """`(line, cells)` of the lines that are not blank or `#` comments."""
    if separator == ",":
        reader = csv.reader(io.StringIO(text, newline=""))
        rows = []
        while True:
            number = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                raise DataError(
                    f"line {number}: cannot read this CSV row ({error})"
                ) from None
            if cells and "".join(cells).strip() and not cells[0].startswith("#"):
                rows.append((number, cells))
        return rows
    return [
        (number, line.split(separator))
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def column_words(path: Path, column: str, separator: str | None = None) -> list[str]:
    """The cells of `column` in the file `path` (its first line names the columns).

    Args:
        path: the annotation file or manifest.
        column: the header title of the sentences' column.
        separator: `TAB`, `COMMA` or `SPACE`; None = guessed (module docstring).

    Raises:
        DataError: naming the file (and line) when it cannot be read, has no such
            column, or a row is too short to hold it.
    """
    text = read_text(path, "annotation file")
    first = next(
        (line for line in text.splitlines() if line.strip() and line[0] != "#"), ""
    )
    try:
        rows = _rows(text, _separator(path, first, separator))
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header line")
    (_, header), rows = rows[0], rows[1:]
    titles = [title.strip() for title in header]
    if column not in titles:
        raise DataError(
            f"{path}: no column {quote(column)} in the header; its columns are "
            f"{', '.join(map(quote, titles))} (see --separator)"
        )
    index = titles.index(column)
    cells = []
    for number, row in rows:
        if len(row) <= index:
            raise DataError(
                f"{path}:{number}: {len(row)} columns; column {quote(column)} is "
                f"number {index + 1}"
            )
        cells.append(row[index])
    return cells


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.tokenizer",
        description="Write a word tokenizer (a Hugging Face tokenizer folder) of the "
        "words of one column of an annotation file or manifest.",
    )
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument(
        "--column", required=True, help="the header title of the sentences' column"
    )
    parser.add_argument(
        "--separator",
        type=str.upper,
        choices=sorted(SEPARATORS),
        help="the column separator (default: from the file's suffix and header)",
    )
    parser.add_argument("--output", type=Path, required=True, metavar="DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 on a user error."""
    args = _build_parser().parse_args(argv)

    def command() -> int:
        cells = column_words(args.file, args.column, args.separator)
        words = len(word_vocabulary(cells)) - len(SPECIAL_TOKENS)
        if not words:
            raise UserError(
                f"{args.file}: column {quote(args.column)} holds no words "
                f"({len(cells)} rows)"
            )
        build_word_tokenizer(cells, args.output)
        print(
            f"{len(cells)} rows, {words} distinct words (+ {len(SPECIAL_TOKENS)} "
            f"special tokens); wrote {args.output}"
        )
        return 0

    return run_cli(command)


if __name__ == "__main__":
    sys.exit(main())
