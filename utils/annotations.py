"""Annotation files: `name start end label_1 ... label_n`, one sample per line; and
video manifests: a CSV with a header `path,<head>...[,split][,signer][,start,end]`.

An optional first line names the columns. Heads are matched to columns by header name
where possible (HearAI's long names included), otherwise by the documented order. A
label may be `-1`, `nan` or empty for "missing". A head whose label is a sequence
takes cells such as `27+82+5`, one whose label is a sentence takes the sentence
(tab- or comma-separated files only; see `utils.labels`). Problems are `DataError`s
naming the file and line.
"""

from __future__ import annotations

import csv
import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from utils.errors import DataError
from utils.files import read_text
from utils.labels import Label, is_missing, parse_cell

MAX_REPORTED = 20
SPLITS = ("train", "val", "test")
SPECIAL_COLUMNS = ("split", "signer")

# HearAI's column titles for the HamNoSys heads (typo "Handhape" included, as shipped).
HEADER_ALIASES = {
    "symmetry operator": "symmetry_operator",
    "dom hand - handshape - base form": "hand_shape_base_form",
    "dom hand - handhape - thumb position": "hand_shape_thumb_position",
    "dom hand - handshape - thumb position": "hand_shape_thumb_position",
    "dom hand - handshape - bending": "hand_shape_bending",
    "dom hand - handposition - ext finger direction": "hand_position_finger_direction",
    "dom hand - handposition - palm orientation": "hand_position_palm_orientation",
    "dom hand - handlocation - frontal plane l/r": "hand_location_x",
    "dom hand - handlocation - frontal plane t/b": "hand_location_y",
    "class": "gloss",
    "label": "gloss",
}


@dataclass
class AnnotationRow:
    """One annotated sample as read from a file."""

    name: str
    start: int
    end: int | None
    labels: dict[str, Label]
    source: str = field(compare=False)
    split: str | None = None
    signer: str | None = None
    head_sources: dict[str, str] = field(default_factory=dict, compare=False)
    #: The video file a manifest row names; None for a row of an annotation file
    #: (its sample is `ROOT/<name>/` or `ROOT/<name>.<video suffix>`). `end` is None
    #: for a manifest row without one: the video's last frame.
    video: Path | None = None
    #: The feature file of a row of an SSVP-SLT manifest (`datasets.ssvp`), whose
    #: `end` is its row count minus one; None otherwise.
    features: Path | None = None

    def source_of(self, head: str) -> str:
        """`file:line` where the head's label was read (joined rows span files)."""
        return self.head_sources.get(head, self.source)


@dataclass
class Columns:
    """Where each value sits in a row (token indices)."""

    heads: dict[str, int]
    split: int | None = None
    signer: int | None = None

    def needed(self) -> int:
        """The number of tokens a row must have."""
        indices = [2, *self.heads.values(), self.split or 0, self.signer or 0]
        return max(indices) + 1


def normalise_title(title: str) -> str:
    """A column title lower-cased, unquoted, with single spaces."""
    return re.sub(r"\s+", " ", title.strip().strip("\"'").lower())


def resolve_title(title: str) -> str:
    """The head (or column) name a title stands for: HearAI's long titles included."""
    normalised = normalise_title(title)
    return HEADER_ALIASES.get(normalised, normalised.replace(" ", "_"))


def _is_int(token: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", token) is not None


def _header_columns(header: list[str], heads: list[str], where: str) -> Columns:
    """Map heads (by name where the header names them) and split/signer to columns."""
    resolved = [resolve_title(title) for title in header]
    extra = {key: resolved.index(key) for key in SPECIAL_COLUMNS if key in resolved[3:]}
    matched = {head: resolved.index(head) for head in heads if head in resolved[3:]}
    if not matched:
        labels = [i for i in range(3, len(header)) if i not in extra.values()]
        matched = dict(zip(heads, labels + [len(header)] * len(heads)))
    elif len(matched) != len(heads):
        missing = [head for head in heads if head not in matched]
        raise DataError(
            f"{where}: the header names some heads but not {', '.join(missing)}; "
            f"columns: {' '.join(header)}"
        )
    return Columns(matched, extra.get("split"), extra.get("signer"))


def is_number(token: str) -> bool:
    """Whether a token parses as a number (`5`, `5.0`, `nan`)."""
    try:
        float(token)
    except ValueError:
        return False
    return True


def looks_like_header(tokens: list[str]) -> bool:
    """A first line is a header when it starts with `name` or its start and end
    columns are not numbers."""
    if normalise_title(tokens[0]) == "name":
        return True
    return len(tokens) >= 3 and not is_number(tokens[1]) and not is_number(tokens[2])


def tokenize(line: str, separator: str | None, header: bool = False) -> list[str]:
    """Split a line into columns; None = any whitespace (titles may be quoted)."""
    if separator is None:
        if header:  # titles may be quoted and contain spaces ("Symmetry operator")
            try:
                return shlex.split(line)
            except ValueError:  # an unbalanced quote: plain words then
                pass
        return line.split()
    return [token.strip() for token in next(csv.reader([line], delimiter=separator))]


def _csv_problem(error: csv.Error, where: str) -> DataError:
    """A `DataError` at `where` for a row the csv module cannot read."""
    return DataError(
        f"{where}: cannot read this CSV row ({error}; a cell holds at most "
        f"{csv.field_size_limit():,} characters, and a quote left open runs on to "
        "the end of the file)"
    )


def csv_rows(text: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    """The rows of a CSV text, each with the line it starts on (a quoted cell may
    hold line breaks, so a row may span lines; a blank line is an empty row).

    Raises:
        DataError: naming `path` and the line of a row the csv module cannot read
            (a cell over its size limit), instead of `csv.Error`.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        number = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise _csv_problem(error, f"{path}:{number}") from None
        yield number, cells


def _is_path(name: str) -> bool:
    """Whether `name` is a path rather than one folder name."""
    return name in (".", "..") or any(char in name for char in "/\\\0")


def check_sample_name(name: str, where: str) -> None:
    """Raise `DataError` unless `name` is one folder name: it names a folder inside
    the dataset root, so a path (`../x`, `/x`, `a/b`) would read data outside it."""
    if not name:
        raise DataError(f"{where}: the sample name is empty")
    if _is_path(name):
        raise DataError(
            f"{where}: sample name {name!r} is a path; a name is the name of a folder "
            "in the dataset root (no '/', '\\', '.' or '..')"
        )


def annotation_name_problem(name: str) -> str | None:
    """What keeps `name` from being a sample name that an annotation file written
    with it reads back (`is empty`, `contains whitespace`, ...), or None: the rule of
    `check_sample_name`, no whitespace (the columns are split on it) and no leading
    `#` (a comment line)."""
    if not name:
        return "is empty"
    if _is_path(name):
        return "is a path ('/', '\\', '.' or '..')"
    if re.search(r"\s", name):
        return "contains whitespace"
    if name.startswith("#"):
        return "starts with '#'"
    return None


@dataclass
class AnnotationLines:
    """An annotation file split into tokens: the header (when its first line is one)
    and the data lines, blank lines and `#` comments left out.

    Attributes:
        path: the file.
        header: the column titles of the header line (quoted titles kept whole), or
            None when the file has no header.
        header_line: the header's line number (0 without one).
        rows: `(line number, tokens)` of every data line, in file order.
        blank: True when the file has no non-blank line at all.
    """

    path: Path
    header: list[str] | None
    header_line: int
    rows: list[tuple[int, list[str]]]
    blank: bool

    def where(self, number: int) -> str:
        """`file:line` for messages."""
        return f"{self.path}:{number}"


def split_lines(path: Path, separator: str | None = None) -> AnnotationLines:
    """Read an annotation file (see `utils.files.read_text`) into its lines' tokens.

    Args:
        path: the annotation file.
        separator: the column separator; None = any whitespace.
    """
    text = read_text(path, "annotation file")
    header, header_line, rows = None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            tokens = tokenize(line, separator)
        except csv.Error as error:
            raise _csv_problem(error, f"{path}:{number}") from None
        if not rows and header is None and looks_like_header(tokens):
            header, header_line = tokenize(line, separator, header=True), number
            continue
        rows.append((number, tokens))
    return AnnotationLines(path, header, header_line, rows, not text.strip())


def read_annotation_file(
    path: Path,
    heads: list[str],
    separator: str | None = None,
    kinds: dict[str, str] | None = None,
) -> list[AnnotationRow]:
    """Read every row of an annotation file.

    Args:
        path: the annotation file.
        heads: the heads whose labels the file holds, in documented column order.
        separator: the column separator; None = any whitespace.
        kinds: head -> what its label is (`class`, `sequence`, `text`); class
            where not given.

    Returns:
        The rows, in file order.

    Raises:
        DataError: listing every bad line (file:line and the reason); a text head
            in a whitespace-separated file.
    """
    kinds = kinds or {}
    text_heads = [head for head in heads if kinds.get(head) == "text"]
    if separator is None and text_heads:
        raise DataError(
            f"{path}: head {text_heads[0]} holds sentences: write the file with tabs "
            "(or commas) and set general_parameters.annotation_separator"
        )
    lines = split_lines(path, separator)
    rows: list[AnnotationRow] = []
    errors: list[str] = []
    columns = Columns({head: 3 + index for index, head in enumerate(heads)})
    if lines.header is not None:
        try:
            columns = _header_columns(
                lines.header, heads, lines.where(lines.header_line)
            )
        except DataError as error:
            errors.append(str(error))
    names: dict[str, str] = {}
    for number, tokens in lines.rows:
        where = lines.where(number)
        try:
            row = _parse_row(tokens, columns, where, kinds)
            if row.name in names:
                raise DataError(
                    f"{where}: sample {row.name} is listed again (first at "
                    f"{names[row.name]})"
                )
            names[row.name] = where
            rows.append(row)
        except DataError as error:
            errors.append(str(error))
    if errors:
        shown = errors[:MAX_REPORTED]
        more = len(errors) - len(shown)
        tail = [f"... and {more} more bad lines"] if more else []
        raise DataError("\n".join(shown + tail))
    if not rows:
        raise DataError(f"{path}: no samples in the annotation file")
    return rows


def _parse_row(
    tokens: list[str], columns: Columns, where: str, kinds: dict[str, str]
) -> AnnotationRow:
    if len(tokens) < columns.needed():
        raise DataError(
            f"{where}: expected at least {columns.needed()} columns "
            f"(name start end and the labels), found {len(tokens)}"
        )
    name, start, end = tokens[0], tokens[1], tokens[2]
    check_sample_name(name, where)
    if not (_is_int(start) and _is_int(end)):
        raise DataError(
            f"{where}: start and end must be frame numbers, got {start} {end}"
        )
    if int(start) < 0 or int(start) > int(end):
        raise DataError(f"{where}: start {start} must be >= 0 and <= end {end}")
    labels = {
        head: parse_cell(tokens[index], head, kinds.get(head, "class"), where)
        for head, index in columns.heads.items()
    }
    split = tokens[columns.split].lower() if columns.split is not None else None
    if split is not None and split not in SPLITS:
        raise DataError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
    signer = tokens[columns.signer].strip() if columns.signer is not None else None
    return AnnotationRow(
        name, int(start), int(end), labels, where, split, signer or None
    )


def check_label_ranges(rows: list[AnnotationRow], num_classes: dict[str, int]) -> None:
    """Raise `DataError` for labels outside `[0, num_class)`, naming file/line/head
    (a sequence's ids each; sentences are not class ids)."""
    errors = [
        f"{row.source_of(head)}: head {head}: label {label} is outside "
        f"[0, {num_classes[head]}) "
        f"(raise heads.<group>.{head}.num_class or use 'auto')"
        for row in rows
        for head, value in row.labels.items()
        if head in num_classes and not isinstance(value, str) and not is_missing(value)
        for label in (value if isinstance(value, tuple) else (value,))
        if label >= num_classes[head]
    ]
    if errors:
        more = len(errors) - MAX_REPORTED
        tail = [f"... and {more} more"] if more > 0 else []
        raise DataError("\n".join(errors[:MAX_REPORTED] + tail))


#: The first column title that makes a `.csv` file a video manifest.
MANIFEST_PATH_COLUMN = "path"
MANIFEST_RANGE_COLUMNS = ("start", "end")


def is_manifest(path: Path) -> bool:
    """Whether `path` is a video manifest: a `.csv` file whose header starts `path`."""
    path = Path(path)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    rows = csv_rows(read_text(path, "manifest"), path)
    cells = next((cells for _, cells in rows if any(c.strip() for c in cells)), [""])
    return normalise_title(cells[0]) == MANIFEST_PATH_COLUMN


def _manifest_columns(header: list[str], heads: list[str], where: str) -> dict:
    """Column title -> index of a manifest header; `DataError` naming what is wrong.

    Columns other than the path, the heads, split, signer, start and end are left
    alone (e.g. the labels of heads not trained)."""
    titles = [resolve_title(title) for title in header]
    problems = [
        f"column {title!r} appears twice"
        for title in sorted(set(titles))
        if titles.count(title) > 1
    ]
    missing = [head for head in heads if head not in titles]
    if missing:
        problems.append(
            f"no column for head {', '.join(missing)} (the header names the heads: "
            f"path,{','.join(heads)}[,split][,signer][,start,end])"
        )
    if ("start" in titles) != ("end" in titles):
        problems.append("give both start and end columns, or neither")
    if problems:
        raise DataError(f"{where}: " + "; ".join(problems))
    known = {MANIFEST_PATH_COLUMN, *SPECIAL_COLUMNS, *MANIFEST_RANGE_COLUMNS, *heads}
    return {title: index for index, title in enumerate(titles) if title in known}


def _manifest_range(values: dict[str, str], where: str) -> tuple[int, int | None]:
    """The row's `start, end` frames: both empty (or absent) = the whole video."""
    start, end = values.get("start", ""), values.get("end", "")
    if not start and not end:
        return 0, None
    if not (_is_int(start) and _is_int(end)):
        raise DataError(
            f"{where}: start and end must be frame numbers (or both empty for the "
            f"whole video), got {start!r} {end!r}"
        )
    if int(start) < 0 or int(start) > int(end):
        raise DataError(f"{where}: start {start} must be >= 0 and <= end {end}")
    return int(start), int(end)


def _manifest_row(  # pylint: disable=too-many-arguments
    cells: list[str],
    columns: dict[str, int],
    width: int,
    heads: dict[str, str],
    where: str,
    base: Path,
) -> AnnotationRow:
    if len(cells) != width:
        raise DataError(f"{where}: {len(cells)} cells but the header has {width}")
    values = {title: cells[index].strip() for title, index in columns.items()}
    if not values[MANIFEST_PATH_COLUMN]:
        raise DataError(f"{where}: empty path")
    video = Path(values[MANIFEST_PATH_COLUMN])
    video = video if video.is_absolute() else base / video
    start, end = _manifest_range(values, where)
    split = values.get("split", "").lower() or None
    if split is not None and split not in SPLITS:
        raise DataError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
    signer = values.get("signer", "")
    if re.search(r"\s", signer):
        raise DataError(f"{where}: signer {signer!r} contains whitespace")
    labels = {
        head: parse_cell(values[head], head, kind, where)
        for head, kind in heads.items()
    }
    return AnnotationRow(
        video.stem, start, end, labels, where, split, signer or None, video=video
    )


def read_manifest(
    path: Path, heads: list[str], kinds: dict[str, str] | None = None
) -> list[AnnotationRow]:
    """Read every row of a video manifest.

    A manifest is a comma-separated file with a header: `path` (a video file,
    relative to the manifest's folder or absolute), one column per head named by
    the head (`label` and `class` stand for `gloss`; class indices, `-1` or empty
    for missing; a sequence head's cells `27+82+5`, a text head's sentences), and
    optionally `split`, `signer`, and `start`,`end` (inclusive frames of the video;
    empty for the whole video). A sample's name is its video's file stem, so two
    videos of one stem are refused. `kinds`: head -> what its label is (class
    where not given).

    Raises:
        DataError: listing every bad line (file:line and the reason).
    """
    path = Path(path)
    lines = [
        (number, cells)
        for number, cells in csv_rows(read_text(path, "manifest"), path)
        if any(cell.strip() for cell in cells)
    ]
    if not lines:
        raise DataError(f"{path}: an empty manifest (expected a header: path,...)")
    header_line, header = lines[0]
    columns = _manifest_columns(header, heads, f"{path}:{header_line}")
    rows, errors, names = [], [], {}
    for number, cells in lines[1:]:
        where = f"{path}:{number}"
        try:
            row = _manifest_row(
                cells,
                columns,
                len(header),
                {head: (kinds or {}).get(head, "class") for head in heads},
                where,
                path.parent,
            )
            if row.name in names:
                raise DataError(
                    f"{where}: video {row.video} has the name {row.name} of the video "
                    f"at {names[row.name]}; a sample's name is its file stem, so "
                    "give the videos different names"
                )
            names[row.name] = where
            rows.append(row)
        except DataError as error:
            errors.append(str(error))
    if errors:
        more = len(errors) - MAX_REPORTED
        tail = [f"... and {more} more bad lines"] if more > 0 else []
        raise DataError("\n".join(errors[:MAX_REPORTED] + tail))
    if not rows:
        raise DataError(f"{path}: no samples in the manifest")
    return rows
