"""A labels CSV and a folder of videos -> a dataset root signpipe trains on.

Usage::

    python3 -m data_preprocessing.labels_csv --labels labels.csv --videos VIDEO_DIR
        --output ROOT [--manifest] [--frames] [--landmarks [--tracker hands]]
        [--workers N]

``labels.csv`` needs a header naming its columns: ``video`` and ``label``, and
optionally ``split`` (``train``, ``val`` or ``test``; any case) and ``signer``
(any text), in any order. ``video`` is a video file: absolute, or relative to
``VIDEO_DIR`` or else to the CSV's folder. ``label`` is the class as text (a gloss
word; spaces allowed; one line, not starting with a spreadsheet formula's ``=``,
``+``, ``-`` or ``@``, as class names reach ``predictions.csv``). Each clip's name
is its file stem (whitespace made ``_``), a name the annotation file reads back;
its files are written only inside ``ROOT``.

``ROOT`` gets::

    ROOT/test_gloss.txt    name start end gloss [split] [signer]  (whole videos)
    ROOT/glosses.txt       id gloss   (class ids: the labels in sorted order)

and with ``--frames`` the frame folders ``ROOT/NAME/NAME_<idx>.jpg`` with
``NAME_properties.json`` (as ``videos_to_frames`` writes them), with
``--landmarks`` the MediaPipe Holistic (``--tracker hands``: Hands) files
``ROOT/NAME/NAME.npz`` (as
``extract_landmarks`` writes them; skipped with a note when mediapipe is not
installed). Without either, the videos are decoded once to count their frames.

With ``--manifest`` it writes ``ROOT/manifest.csv`` instead of ``test_gloss.txt``
(``path,gloss[,split][,signer]``, the videos' paths relative to ``ROOT``): a video
manifest that trains on the videos as they are (``data_path: ROOT`` with
``annotation_file: manifest.csv``);
each video's container is read, not decoded. ``--frames`` or ``--landmarks`` with it
write ``test_gloss.txt`` and their files as well.

Videos that cannot be read are left out of the annotation file (and the manifest),
listed at the end, and make the exit status 1. Every file is written atomically.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from data_preprocessing.batch import add_workers_argument, run_batch
from data_preprocessing.videos_to_frames import DEFAULT_QUALITY, convert_video
from datasets.clip_landmarks import extract_item
from datasets.index import GLOSS_NAMES_FILE
from datasets.tracking import DEFAULT_COMPLEXITY, TRACKERS, check_model, load_mediapipe
from datasets.videos import VideoReader, probe_video
from utils.annotations import (
    MAX_REPORTED,
    SPLITS,
    annotation_name_problem,
    csv_rows,
)
from utils.cli import run_cli
from utils.errors import DataError, UserError, quote
from utils.files import (
    FORMULA_STARTS,
    is_inside,
    prepare_output,
    read_text,
    write_output,
)
from utils.item_results import ItemResult, report_failures

#: The annotation file written (the default config reads `test_<mode>.txt`).
ANNOTATION_FILE = "test_gloss.txt"
#: The video manifest written with `--manifest`.
MANIFEST_FILE = "manifest.csv"
REQUIRED_COLUMNS = ("video", "label")
OPTIONAL_COLUMNS = ("split", "signer")


@dataclass(frozen=True)
class LabelRow:
    """One clip of the labels CSV.

    Attributes:
        name: the clip's name in the dataset root (the video's stem).
        video: the video file.
        label: the class as text.
        split: train, val or test, or None.
        signer: the signer, or None.
        where: `labels.csv:line`.
    """

    name: str
    video: Path
    label: str
    split: str | None
    signer: str | None
    where: str


def _raise_all(problems: list[str]) -> None:
    """One `DataError` listing the problems (the first `MAX_REPORTED`)."""
    if problems:
        more = len(problems) - MAX_REPORTED
        tail = [f"... and {more} more"] if more > 0 else []
        raise DataError("\n".join(problems[:MAX_REPORTED] + tail))


def _header(fields: list[str] | None, path: Path) -> dict[str, int]:
    """Column name -> index, from the header line; `DataError` when it is wrong."""
    allowed = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
    titles = [field.strip().lower() for field in fields or []]
    unknown = [title for title in titles if title not in allowed.split(", ")]
    missing = [title for title in REQUIRED_COLUMNS if title not in titles]
    if not fields or missing or unknown:
        got = ",".join(fields) if fields else "an empty file"
        raise DataError(
            f"{path}:1: the first line must be a header naming the columns "
            f"video,label (and optionally split,signer); got {got!r}"
            + (
                f" (unknown: {', '.join(unknown)}; allowed: {allowed})"
                if unknown
                else ""
            )
        )
    repeated = sorted(title for title, count in Counter(titles).items() if count > 1)
    if repeated:
        raise DataError(f"{path}:1: column {repeated[0]!r} appears twice")
    return {title: index for index, title in enumerate(titles)}


def _find_video(cell: str, videos: Path, csv_dir: Path) -> Path | None:
    """The video a cell names: absolute, in `videos`, or beside the CSV."""
    path = Path(cell)
    candidates = [path] if path.is_absolute() else [videos / path, csv_dir / path]
    return next((found for found in candidates if found.is_file()), None)


def _label_problem(label: str) -> str | None:
    """What keeps a (non-empty) label from being a class name, if anything."""
    if label.splitlines() != [label]:
        return (
            f"label {quote(label)} holds a line break; a label is one line of text "
            "(a line of glosses.txt)"
        )
    if label.startswith(FORMULA_STARTS):
        return (
            f"label {quote(label)} starts with {label[0]!r}, which spreadsheets run "
            "as a formula (class names reach predict.py's predictions.csv); rename "
            "the class"
        )
    return None


def _cell_problem(values: dict[str, str]) -> str | None:
    """What is wrong with a line's cells (empty, bad split, spaced signer, a label
    with a line break or a formula), if any."""
    if not values["video"]:
        return "empty video cell"
    if not values["label"]:
        return f"empty label for video {values['video']}"
    label_problem = _label_problem(values["label"])
    if label_problem:
        return label_problem
    split = values.get("split", "")
    if split and split.lower() not in SPLITS:
        return f"split {split!r} is not one of {', '.join(SPLITS)} (or empty)"
    signer = values.get("signer", "")
    if re.search(r"\s", signer):
        suggestion = re.sub(r"\s+", "_", signer)
        return (
            f"signer {signer!r} contains whitespace, which the annotation file's "
            f"columns cannot hold; use e.g. {suggestion!r}"
        )
    return None


def _parse_row(
    cells: list[str], columns: dict[str, int], where: str, videos: Path, csv_dir: Path
) -> LabelRow | str:
    """One data line as a `LabelRow`, or what is wrong with it."""
    if len(cells) > len(columns):
        return f"{where}: {len(cells)} cells but the header has {len(columns)} columns"
    values = {
        title: cells[index].strip() if index < len(cells) else ""
        for title, index in columns.items()
    }
    problem = _cell_problem(values)
    if problem:
        return f"{where}: {problem}"
    video = _find_video(values["video"], videos, csv_dir)
    if video is None:
        return (
            f"{where}: video {values['video']} not found (looked in {videos}"
            + (f" and {csv_dir}" if csv_dir.resolve() != videos.resolve() else "")
            + ")"
        )
    name = re.sub(r"\s+", "_", video.stem)
    problem = annotation_name_problem(name)
    if problem:
        return (
            f"{where}: clip name {quote(name)} (the stem of {video.name}) {problem}, "
            "which test_gloss.txt cannot hold; rename the video"
        )
    return LabelRow(
        name=name,
        video=video,
        label=values["label"],
        split=values.get("split", "").lower() or None,
        signer=values.get("signer") or None,
        where=where,
    )


def read_labels(path: Path, videos: Path | None = None) -> list[LabelRow]:
    """The clips of a labels CSV (`video,label[,split,signer]`, header required).

    Args:
        path: the CSV file.
        videos: the folder relative video paths start from (tried first); the
            CSV's folder when None.

    Raises:
        UserError: the video folder is not a folder.
        DataError: the CSV is not a readable UTF-8 file (a FIFO, a folder); every
            bad line (missing video, empty label, bad split, a name used twice or
            not writable, a split or signer given for some rows only), as
            `file:line`.
    """
    csv_dir = path.parent
    videos = csv_dir if videos is None else videos
    if not videos.is_dir():
        raise UserError(f"--videos {videos}: not a folder")
    # read_text refuses a FIFO or a device before opening it; csv_rows keeps a
    # quoted line break inside its cell, and names the line of a cell too long.
    lines = csv_rows(read_text(path, "labels file"), path)
    columns = _header(next((cells for _, cells in lines), None), path)
    rows: list[LabelRow] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for number, cells in lines:
        if not any(cell.strip() for cell in cells):
            continue
        found = _parse_row(cells, columns, f"{path}:{number}", videos, csv_dir)
        if isinstance(found, str):
            problems.append(found)
        elif found.name in seen:
            problems.append(
                f"{found.where}: clip name {found.name} (from {found.video.name}) is "
                f"also used at {seen[found.name]}; each video needs its own file name"
            )
        else:
            seen[found.name] = found.where
            rows.append(found)
    for key in OPTIONAL_COLUMNS:
        given = [row for row in rows if getattr(row, key) is not None]
        if given and len(given) < len(rows):
            empty = next(row for row in rows if getattr(row, key) is None)
            problems.append(
                f"{empty.where}: empty {key} while {len(given)} other rows have one; "
                f"give every row a {key}, or none"
            )
    _raise_all(problems)
    if not rows:
        raise DataError(f"{path}: no clips (only a header)")
    return rows


def class_ids(labels: list[str]) -> dict[str, int]:
    """Label text -> class id: the labels sorted (numbers by value, first)."""

    def key(label: str) -> tuple:
        return (0, int(label), "") if label.isdigit() else (1, 0, label)

    return {label: index for index, label in enumerate(sorted(set(labels), key=key))}


def count_frames(name: str, source: Path) -> ItemResult:
    """Decode a video to count its frames (what videos_to_frames would write)."""
    with VideoReader(source) as reader:
        count = sum(1 for _ in reader)
    return ItemResult(name, str(source), frames=count)


def probe_frames(name: str, source: Path) -> ItemResult:
    """Read a video's frame count from its container (nothing decoded)."""
    return ItemResult(name, str(source), frames=probe_video(source).frames)


def _landmarks_available(tracker: str = "holistic") -> str | None:
    """None when the MediaPipe tracker can run; else why not."""
    try:
        check_model(load_mediapipe(), tracker, DEFAULT_COMPLEXITY)
    except UserError as error:
        return str(error)
    return None


def import_labels(
    labels: Path,
    videos: Path | None,
    output: Path,
    *,
    frames: bool = False,
    landmarks: bool = False,
    tracker: str = "holistic",
    workers: int = 1,
    manifest: bool = False,
) -> dict:
    """Write a dataset root for the clips of a labels CSV (with `manifest`, a video
    manifest of them; `test_gloss.txt` then only with `frames` or `landmarks`).

    Returns:
        `{"clips": Counter of splits (None = no split), "classes": count,
        "results": [ItemResult per video], "landmarks_skipped": reason or None}`.

    Raises:
        UserError: unreadable CSV, missing video folder, or no video decoded.
        DataError: bad lines of the CSV (all listed, as `file:line`).
    """
    rows = read_labels(labels, videos)
    prepare_output(output)
    if frames or landmarks:
        _check_confined(rows, output)
    jobs = [(row.name, row.video) for row in rows]
    skipped = _landmarks_available(tracker) if landmarks else None
    if skipped:
        print(f"note: no landmarks written: {skipped}", file=sys.stderr)
    results = None
    if frames:
        results = run_batch(
            convert_video,
            jobs,
            (output, None, None, DEFAULT_QUALITY),
            workers=workers,
            unit="video",
        )
    if landmarks and not skipped:
        extracted = run_batch(
            extract_item,
            jobs,
            (output, DEFAULT_COMPLEXITY, None, tracker),
            workers=workers,
            unit="video",
        )
        results = extracted if results is None else _merge(results, extracted)
    if results is None:
        count = probe_frames if manifest else count_frames
        results = run_batch(count, jobs, (), workers=workers, unit="video")
    good = {result.name: result.frames for result in results if result.error is None}
    kept = [row for row in rows if good.get(row.name)]
    if not kept:
        raise UserError(f"none of the {len(rows)} videos of {labels} could be read")
    ids = class_ids([row.label for row in kept])
    _write_root(
        output, kept, good, ids, annotations=frames or landmarks or not manifest
    )
    if manifest:
        write_manifest(output, kept, ids)
    return {
        "clips": Counter(row.split for row in kept),
        "classes": len(ids),
        "results": results,
        "landmarks_skipped": skipped,
    }


def _check_confined(rows: list[LabelRow], output: Path) -> None:
    """Refuse (before writing anything) clips whose folder `ROOT/NAME` would resolve
    outside ROOT: a name is input, and a folder in ROOT may be a symbolic link."""
    _raise_all(
        [
            f"{row.where}: clip {row.name}: {output / row.name} resolves to "
            f"{(output / row.name).resolve()}, outside --output {output}"
            for row in rows
            if not is_inside(output / row.name, output)
        ]
    )


def _write(path: Path, data: bytes) -> None:
    """Write `data` atomically (`write_output`: an OS error is one message)."""
    write_output(path, lambda out: out.write(data))


def _merge(first: list[ItemResult], second: list[ItemResult]) -> list[ItemResult]:
    """Frame results, with the landmark results' errors where the frames had none."""
    return [
        a if a.error is not None or b.error is None else b
        for a, b in zip(first, second)
    ]


def write_manifest(output: Path, rows: list[LabelRow], ids: dict[str, int]) -> None:
    """Write `ROOT/manifest.csv`: `path,gloss[,split][,signer]`, a video's path
    relative to `ROOT` when it lies inside `ROOT` (the two move together), else
    absolute (so moving `ROOT` alone breaks nothing; no `../` paths)."""
    splits = rows[0].split is not None
    signers = rows[0].signer is not None
    root = output.resolve()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(
        ["path", "gloss"]
        + (["split"] if splits else [])
        + (["signer"] if signers else [])
    )
    for row in rows:
        video = row.video.resolve()
        path = video.relative_to(root) if video.is_relative_to(root) else video
        cells = [path.as_posix(), str(ids[row.label])]
        cells += [row.split] if splits else []
        cells += [row.signer] if signers else []
        writer.writerow(cells)
    _write(output / MANIFEST_FILE, text.getvalue().encode("utf-8"))


def _write_root(
    output: Path,
    rows: list[LabelRow],
    frames: dict[str, int],
    ids: dict[str, int],
    *,
    annotations: bool = True,
) -> None:
    """Write the class names and (with `annotations`) the annotation file,
    atomically."""
    splits = rows[0].split is not None
    signers = rows[0].signer is not None
    header = "name start end gloss" + (" split" if splits else "")
    lines = [header + (" signer" if signers else "")]
    for row in rows:
        cells = [row.name, "0", str(frames[row.name] - 1), str(ids[row.label])]
        cells += [row.split] if splits else []
        cells += [row.signer] if signers else []
        lines.append(" ".join(cells))
    names = "id gloss\n" + "".join(f"{index} {label}\n" for label, index in ids.items())
    files = [(GLOSS_NAMES_FILE, names)]
    if annotations:
        files.append((ANNOTATION_FILE, "\n".join(lines) + "\n"))
    for name, text in files:
        _write(output / name, text.encode("utf-8"))


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.labels_csv",
        description="Write a signpipe dataset root from a labels CSV "
        "(video,label[,split,signer]) and its videos.",
    )
    parser.add_argument("--labels", type=Path, required=True, metavar="CSV")
    parser.add_argument(
        "--videos",
        type=Path,
        metavar="VIDEO_DIR",
        help="folder the CSV's video paths are relative to (default: the CSV's)",
    )
    parser.add_argument("--output", type=Path, required=True, metavar="ROOT")
    parser.add_argument(
        "--manifest",
        action="store_true",
        help=f"write ROOT/{MANIFEST_FILE}, a video manifest to train on the videos "
        "as they are (their containers are read, not decoded)",
    )
    parser.add_argument(
        "--frames",
        action="store_true",
        help="also write ROOT/NAME/NAME_<idx>.jpg frame folders (videos_to_frames)",
    )
    parser.add_argument(
        "--landmarks",
        action="store_true",
        help="also write ROOT/NAME/NAME.npz MediaPipe landmarks (extract_landmarks)",
    )
    parser.add_argument(
        "--tracker",
        choices=TRACKERS,
        default="holistic",
        help="with --landmarks: holistic (pose, face, hands) or hands (MediaPipe "
        "Hands alone, for hands-only models; much faster) (default: %(default)s)",
    )
    add_workers_argument(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 1 when some videos failed, 2 on a user
    error."""
    args = _build_parser().parse_args(argv)

    def command() -> int:
        summary = import_labels(
            args.labels,
            args.videos,
            args.output,
            frames=args.frames,
            landmarks=args.landmarks,
            tracker=args.tracker,
            workers=args.workers,
            manifest=args.manifest,
        )
        clips = summary["clips"]
        per_split = ", ".join(
            f"{split} {clips[split]}" for split in SPLITS if clips[split]
        )
        written = [args.output / GLOSS_NAMES_FILE]
        if args.frames or args.landmarks or not args.manifest:
            written.insert(0, args.output / ANNOTATION_FILE)
        if args.manifest:
            written.insert(0, args.output / MANIFEST_FILE)
        print(
            f"{sum(clips.values())} clips ({per_split or 'no split column'}), "
            f"{summary['classes']} classes; wrote "
            + ", ".join(map(str, written[:-1]))
            + f" and {written[-1]}"
        )
        manifest = f", annotation_file: {MANIFEST_FILE}" if args.manifest else ""
        print(
            f"next: train with general_parameters.data_path: {args.output}{manifest} "
            "and train_parameters.classification_mode: [gloss] "
            "(see docs/guide/own-dataset.md)"
        )
        return report_failures(summary["results"], "videos")

    return run_cli(command)


if __name__ == "__main__":
    sys.exit(main())
