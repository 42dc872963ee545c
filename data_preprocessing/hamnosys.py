"""HamNoSys lexicon -> HearAI annotation file: the command line around the parser.

Each transcription is parsed by `data_preprocessing.hamnosys_parser` (its docstring
gives the parsing rules); this module reads the lexicon and the frame ranges, writes
the annotation file and a report of the entries that were not fully parsed.

Usage::

    python3 -m data_preprocessing.hamnosys LEXICON OUTPUT [--ranges FILE]
        [--report FILE]

``LEXICON`` is a JSON object ``{name: {"hamnosys": "<string>", ...}}`` (the DGS
lexicon format; a plain ``{name: "<string>"}`` works too) or a TSV file with lines
``name<TAB>hamnosys`` (further columns ignored; blank and ``#`` lines skipped).
``OUTPUT`` gets ``name start end <8 heads> distance`` with a header, -1 = label not
assigned. ``start end`` come from ``--ranges`` (lines ``name start end``); an entry
without a range is written as ``0 0``, a placeholder to fix before training (the
summary counts them). The report (default ``OUTPUT.report.txt``) lists every entry
that was not fully parsed, with the reasons. Both files are overwritten.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from config import hamnosys_heads as H
from data_preprocessing.hamnosys_parser import MISSING, HeadLabels, decode, parse_heads
from utils.cli import run_cli
from utils.errors import DataError, UserError, quote, shorten
from utils.files import write_atomically

DEFAULT_RANGE = (0, 0)


def _check_name(name: str, where: str) -> None:
    if not name or any(char.isspace() for char in name):
        raise DataError(
            f"{where}: sample name {quote(name)} is empty or has whitespace"
        )
    if name.startswith("#"):
        raise DataError(
            f"{where}: sample name {quote(name)} starts with '#', which makes its "
            "line a comment in the annotation file; rename it"
        )


def _json_lexicon(text: str, path: Path) -> dict[str, str]:
    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        counts = Counter(key for key, _ in pairs)
        twice = sorted(key for key, count in counts.items() if count > 1)
        if twice:
            raise DataError(f"{path}: key(s) listed twice: {shorten(', '.join(twice))}")
        return dict(pairs)

    try:
        data = json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise DataError(
            f'{path}: nested too deeply; expected {{name: {{"hamnosys": ...}}}}'
        ) from None
    if not isinstance(data, dict):
        raise DataError(
            f'{path}: expected a JSON object {{name: {{"hamnosys": ...}}}}, '
            f"found a {type(data).__name__}"
        )
    entries = {}
    for name, value in data.items():
        _check_name(name, f"{path}: entry {quote(name)}")
        hamnosys = value.get("hamnosys") if isinstance(value, dict) else value
        if not isinstance(hamnosys, str):
            raise DataError(f'{path}: entry {quote(name)} has no "hamnosys" string')
        entries[name] = hamnosys
    return entries


def _tsv_lexicon(text: str, path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        where = f"{path}:{number}"
        if "\t" not in line:
            raise DataError(f"{where}: expected name<TAB>hamnosys, found no tab")
        name, hamnosys = line.split("\t")[:2]
        name = name.strip()
        if not entries and name.lower() == "name":
            continue  # a header line
        _check_name(name, where)
        if name in entries:
            raise DataError(f"{where}: sample {name} is listed twice")
        entries[name] = hamnosys
    return entries


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read the {what} ({error})") from None


def read_lexicon(path: Path) -> dict[str, str]:
    """Reads a JSON or TSV lexicon (see the module docstring) as `{name: string}`.

    Raises:
        DataError: an unreadable or malformed file, naming the file (and line).
    """
    text = _read_text(path, "lexicon")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        entries = _json_lexicon(text, path)
    else:
        entries = _tsv_lexicon(text, path)
    if not entries:
        raise DataError(f"{path}: the lexicon has no entries")
    return entries


def read_ranges(path: Path) -> dict[str, tuple[int, int]]:
    """Reads `name start end` lines (inclusive frame indices) as `{name: range}`.

    Raises:
        DataError: a bad line, naming the file and line.
    """
    ranges: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(_read_text(path, "ranges file").splitlines(), 1):
        tokens, where = line.split(), f"{path}:{number}"
        if not tokens or tokens[0].startswith("#"):
            continue
        if not ranges and tokens[0].lower() == "name":
            continue  # a header line
        # ASCII only: str.isdigit() also accepts digits such as '²' that int() refuses.
        if len(tokens) != 3 or not all(t.isascii() and t.isdigit() for t in tokens[1:]):
            raise DataError(f"{where}: expected 'name start end', found {quote(line)}")
        start, end = int(tokens[1]), int(tokens[2])
        if start > end:
            raise DataError(f"{where}: start {start} is after end {end}")
        if tokens[0] in ranges:
            raise DataError(f"{where}: {tokens[0]} is listed twice")
        ranges[tokens[0]] = (start, end)
    return ranges


def _write(path: Path, text: str) -> None:
    """Writes via a temporary file, so a failed run leaves the old file whole."""
    data = text.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda file: file.write(data))
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


def _parse_entry(text: str) -> tuple[HeadLabels, bool]:
    """The entry's labels, and whether it is a HamNoSys string at all."""
    try:
        return parse_heads(text), True
    except DataError as error:
        return HeadLabels(problems=[str(error)]), False


def _report(results: dict[str, HeadLabels], entries: dict[str, str]) -> list[str]:
    """Every entry that is not fully parsed: its symbols, then the reasons."""
    lines = []
    for name, result in results.items():
        if result.complete:
            continue
        try:
            lines.append(f"{name}: {' '.join(decode(entries[name]))}")
        except DataError:
            lines.append(f"{name}: {entries[name]!r}")
        lines.extend(f"    {problem}" for problem in result.problems)
    return lines


def convert(
    lexicon: Path,
    output: Path,
    ranges: Path | None = None,
    report: Path | None = None,
) -> str:
    """Parses every lexicon entry and writes the annotation file and the report.

    Args:
        lexicon: the JSON or TSV lexicon.
        output: the annotation file to write (overwritten).
        ranges: optional `name start end` file; missing entries get `0 0`.
        report: the report file; `OUTPUT.report.txt` if None.

    Returns:
        The one-line summary (entries, fully parsed %, per-head coverage).

    Raises:
        UserError: unreadable or malformed input, or no entry is HamNoSys.
    """
    report = report or output.with_name(output.name + ".report.txt")
    for path in (output, report):
        if path.resolve() == lexicon.resolve() or path.is_dir():
            raise UserError(f"{path}: would overwrite the lexicon or a directory")
    entries = read_lexicon(lexicon)
    frames = read_ranges(ranges) if ranges else {}
    parsed = {
        name: _parse_entry(text)
        for name, text in tqdm(entries.items(), desc="HamNoSys", unit="entry")
    }
    if not any(decodable for _, decodable in parsed.values()):
        raise DataError(f"{lexicon}: no entry is a HamNoSys Unicode string")
    results = {name: result for name, (result, _) in parsed.items()}
    total = len(results)
    rows = [" ".join(["name", "start", "end", *H.ALL_HEADS])]
    for name, result in results.items():
        start, end = frames.get(name, DEFAULT_RANGE)
        rows.append(" ".join(map(str, [name, start, end, *result.labels.values()])))
    complete = sum(result.complete for result in results.values())
    header = [
        f"# HamNoSys parse report: {lexicon} -> {output}",
        f"# {total} entries, {complete} fully parsed, {total - complete} not:",
    ]
    _write(output, "\n".join(rows) + "\n")
    _write(report, "\n".join(header + _report(results, entries)) + "\n")
    coverage = ", ".join(
        f"{head} {sum(r.labels[head] != MISSING for r in results.values()) / total:.1%}"
        for head in H.ALL_HEADS
    )
    notes = [
        f"{count} {what}"
        for count, what in (
            (sum(name not in frames for name in results), "without a range: 0 0"),
            (sum(name not in results for name in frames), "ranges of no entry"),
        )
        if count
    ]
    return (
        f"{total} entries, {complete / total:.1%} fully parsed; coverage: "
        f"{coverage}; {'; '.join(notes + [f'wrote {output} and {report}'])}"
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.hamnosys",
        description="Turn HamNoSys transcriptions into a HearAI annotation file.",
    )
    parser.add_argument("lexicon", type=Path, metavar="LEXICON", help="JSON or TSV")
    parser.add_argument("output", type=Path, metavar="OUTPUT")
    parser.add_argument(
        "--ranges",
        type=Path,
        metavar="FILE",
        help="lines 'name start end' (frames); entries not listed get 0 0",
    )
    parser.add_argument(
        "--report", type=Path, metavar="FILE", help="default: OUTPUT.report.txt"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        0 on success, 2 on a user error (unreadable or malformed input).
    """
    args = _build_parser().parse_args(argv)

    def command() -> int:
        print(convert(args.lexicon, args.output, args.ranges, args.report))
        return 0

    return run_cli(command)


if __name__ == "__main__":
    sys.exit(main())
