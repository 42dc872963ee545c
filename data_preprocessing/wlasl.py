"""WLASL -> a dataset root: the official split and gloss names, with landmark files.

Usage::

    python3 -m data_preprocessing.wlasl --split_file nslt_100.json
        --class_list wlasl_class_list.txt (--landmarks LANDMARKS | --videos DIR)
        --output ROOT [--workers N] [--sentences N [--val_sentences M]]

``--split_file`` is one of the WLASL start kit's files: ``nslt_N.json``
(``{video_id: {"subset": "train"|"val"|"test", "action": [class, start, end]}}``) or
``WLASL_v0.3.json`` (a list of ``{"gloss", "instances": [{"video_id", "split",
"signer_id", "frame_start", "frame_end", ...}]}``; class = the gloss's position, and
``--num_classes N`` keeps the first N glosses, e.g. 100 for WLASL100).
``--class_list`` is ``wlasl_class_list.txt`` (``class_id<TAB>gloss``; not needed with
``WLASL_v0.3.json``, which names its glosses).

``LANDMARKS`` is either an ``.npz`` holding one ``(T, H, 21, 3)`` array of hand
landmarks per video id (H hands in detection order, NaN = no hand; an infinite value
is refused), or a folder of per-video landmark files as ``extract_landmarks`` writes
them (``ID/ID.npz`` or ``ID.npz``, or ``.pose``), or of ``ID.npy`` hand arrays as
the public WLASL hand landmarks are published (a hand slot of -1.0 = no hand, read as
NaN, stored as float16 like the shared ``.npz``). ``--videos DIR`` instead starts from
WLASL's videos themselves (``VIDEO_ID.mp4`` and the other video suffixes, as the start
kit's ``preprocess.py`` names them): signpipe's MediaPipe Hands tracker follows every
frame of each video of the split (``datasets.clip_landmarks.extract_item``, what
``extract_landmarks --tracker hands`` runs, with the settings WLASL's published
landmarks were made with) and writes ``ROOT/ID/ID.npz``; a video that cannot be
decoded is listed at the end and makes the exit status 1. Videos without landmarks
(or without a video file) are skipped and counted. A video id must be a name the
annotation file reads back (``utils.annotations.annotation_name_problem``), and every
file is written inside ``ROOT`` (its path resolved and checked before writing).

``ROOT`` gets ``ID/ID.npz`` (or ``.pose``) per clip (an ``.npz`` source's arrays are
written as ``hands`` with ``coordinates="normalized"``: MediaPipe's own points, the
landmark convention of docs/landmarks.md), ``test_gloss.txt``
(``name start end gloss split [signer]``, signer `UNKNOWN_SIGNER` where a clip has
none) and ``glosses.txt``. Frame ranges: WLASL's are 1-based video frames with -1 =
the last frame. A range that starts at the first frame and ends within
`WHOLE_CLIP_TOLERANCE` of the landmark file's length covers the whole file (the counts
differ when the landmarks were taken at another frame rate); any other range selects
rows ``start - 1 .. end - 1``, cut to the file.

``--sentences N`` then strings the imported clips together into sign sequences in
``ROOT/sentences`` (``data_preprocessing.sentences``: N sequences of 2-6 train clips
and ``--val_sentences M``, default N // 4, of val clips; concatenated isolated signs,
not natural signing).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.npyio import NpzFile
from pydantic import BaseModel, ValidationError
from tqdm import tqdm

from data_preprocessing.batch import add_workers_argument, run_batch
from data_preprocessing.sentences import (
    add_sentence_arguments,
    build_sentences,
    sentence_counts,
    summary,
)
from datasets.clip_landmarks import extract_item
from datasets.landmarks import (
    UNREADABLE_FILE_ERRORS,
    landmark_arrays,
    landmark_file,
    read_landmarks,
)
from datasets.tracking import DEFAULT_COMPLEXITY, check_model, load_mediapipe
from datasets.video_files import find_videos
from utils.annotations import annotation_name_problem
from utils.cli import run_cli
from utils.errors import DataError, UserError, quote, shorten, with_notes
from utils.files import (
    check_unique_names,
    is_inside,
    prepare_output,
    read_text,
    require_file,
    write_output,
)
from utils.item_results import ItemResult, report_failures

SPLITS = ("train", "val", "test")
#: How far (as a share of the landmark rows) a range's end may be from the file's
#: end and still mean "the whole clip".
WHOLE_CLIP_TOLERANCE = 0.25
#: The signer column of a clip without `signer_id` when others have one (an empty
#: column would shift the row's columns).
UNKNOWN_SIGNER = "none"
#: A folder source's per-video hand arrays as the public WLASL hand landmarks are
#: published (`ID.npy`, `(T, 2, 21, 3)`), and the value that fills a slot without a
#: hand there.
HAND_ARRAY_SUFFIX = ".npy"
MISSING_HAND_VALUE = -1.0
#: The tracker `--videos` runs: MediaPipe Hands, as WLASL's published landmarks.
VIDEO_TRACKER = "hands"
#: Where `--sentences` writes its sign sequences, inside ROOT.
SENTENCES_FOLDER = "sentences"


@dataclass(frozen=True)
class Clip:
    """One clip of the split file."""

    video_id: str
    label: int
    split: str
    start: int  # 1-based video frame
    end: int  # 1-based, inclusive; -1 = the last frame
    signer: str | None = None


class _NsltEntry(BaseModel):
    """A value of `nslt_N.json` (other keys are left alone)."""

    subset: str
    action: tuple[int, int, int]


class _Instance(BaseModel):
    """One video of a `WLASL_v0.3.json` gloss (other keys are left alone)."""

    video_id: str | int
    split: str
    frame_start: int = 1
    frame_end: int = -1
    signer_id: str | int | None = None


class _GlossEntry(BaseModel):
    """One gloss of `WLASL_v0.3.json`."""

    gloss: str | int
    instances: list[_Instance]


def _read_json(path: Path, what: str):
    text = read_text(path, what)  # refuses a FIFO or a device before opening it
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def _entry_error(path: Path, entry, error: ValidationError, expected: str):
    """A `DataError` naming the entry, its first bad field and what is expected."""
    first = error.errors()[0]
    field = ".".join(map(str, first["loc"]))
    return DataError(
        f"{path}: entry {quote(entry)}{' ' + field if field else ''}: {first['msg']} "
        f"(got {quote(first['input'])}); expected {expected}"
    )


def _nslt_clips(data: dict, path: Path) -> list[Clip]:
    clips = []
    for video_id, value in data.items():
        try:
            entry = _NsltEntry.model_validate(value)
        except ValidationError as error:
            raise _entry_error(
                path, video_id, error, '{"subset": ..., "action": [class, start, end]}'
            ) from None
        label, start, end = entry.action
        clips.append(Clip(str(video_id), label, entry.subset, start, end))
    return clips


def _v03_clips(data: list, path: Path, num_classes: int | None) -> tuple:
    clips, names = [], {}
    for label, value in enumerate(data[:num_classes] if num_classes else data):
        try:
            entry = _GlossEntry.model_validate(value)
        except ValidationError as error:
            raise _entry_error(
                path,
                label,
                error,
                "{'gloss': ..., 'instances': [{'video_id', 'split', ...}]}",
            ) from None
        names[label] = str(entry.gloss)
        for item in entry.instances:
            signer = None if item.signer_id is None else str(item.signer_id)
            clips.append(
                Clip(
                    str(item.video_id),
                    label,
                    item.split,
                    item.frame_start,
                    item.frame_end,
                    signer,
                )
            )
    return clips, names


def _check_text(path: Path, clips: list[Clip], names: dict[int, str]) -> None:
    """Refuse ids, signers and gloss names that the written files cannot hold."""
    for clip in clips:
        problem = annotation_name_problem(clip.video_id)
        if problem:
            raise DataError(
                f"{path}: video id {quote(clip.video_id)} is not a plain file name (it "
                f"{problem}); a video id names the clip's folder ROOT/<id>/ and is a "
                "column of test_gloss.txt, which splits on whitespace and reads '#' "
                "as a comment"
            )
        if clip.signer is not None and (
            not clip.signer or re.search(r"\s", clip.signer)
        ):
            raise DataError(
                f"{path}: video {clip.video_id} has signer {quote(clip.signer)}; a "
                "signer is one word (a column of test_gloss.txt)"
            )
    for label, name in names.items():
        if name.splitlines() != [name] or not name.strip():
            raise DataError(
                f"{path}: gloss {label} is {quote(name)}; a gloss name is one line of "
                "text (a line of glosses.txt)"
            )


def read_split_file(
    path: Path, num_classes: int | None = None
) -> tuple[list[Clip], dict[int, str]]:
    """The clips of an `nslt_N.json` or `WLASL_v0.3.json`, and the gloss names the
    file gives (none for nslt files)."""
    data = _read_json(path, "split file")
    if isinstance(data, dict):
        clips, names = _nslt_clips(data, path), {}
        if num_classes:
            clips = [clip for clip in clips if clip.label < num_classes]
    elif isinstance(data, list):
        clips, names = _v03_clips(data, path, num_classes)
    else:
        raise DataError(f"{path}: expected an nslt_N.json object or WLASL_v0.3 list")
    _check_text(path, clips, names)
    for clip in clips:
        if clip.split not in SPLITS:
            raise DataError(
                f"{path}: video {clip.video_id} has split {clip.split!r}; expected "
                f"one of {', '.join(SPLITS)}"
            )
        if clip.label < 0 or clip.start < 1 or (clip.end != -1 and clip.end < 1):
            raise DataError(
                f"{path}: video {clip.video_id} has class {clip.label} and frames "
                f"{clip.start}..{clip.end}; expected class >= 0 and frames >= 1 "
                "(end -1 = last)"
            )
    return clips, names


def read_class_list(path: Path) -> dict[int, str]:
    """`class_id<TAB>gloss` lines -> {class_id: gloss}."""
    lines = read_text(path, "class list").splitlines()
    names = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split(None, 1)
        if len(parts) != 2 or not parts[0].isascii() or not parts[0].isdigit():
            raise DataError(f"{path}:{number}: expected 'class_id<TAB>gloss'")
        names[int(parts[0])] = parts[1].strip()
    return names


def row_range(clip: Clip, rows: int) -> tuple[int, int]:
    """The clip's landmark rows `(start, end)`, inclusive (see the module docstring)."""
    end = rows if clip.end == -1 else clip.end
    if clip.start == 1 and abs(end - rows) <= WHOLE_CLIP_TOLERANCE * rows:
        return 0, rows - 1
    start = min(clip.start - 1, rows - 1)
    return start, max(start, min(end - 1, rows - 1))


def _confined(path: Path, root: Path, video_id: str) -> Path:
    """`path`, once it is known to resolve inside the output `root` (a video id is
    input, and a folder in ROOT may be a symbolic link)."""
    if not is_inside(path, root):
        raise DataError(
            f"video id {quote(video_id)}: {path} resolves to {path.resolve()}, "
            f"outside --output {root}; refused"
        )
    return path


def _refuse_infinite(points: np.ndarray, where: Path, video_id: str) -> None:
    """NaN is a missing point; an infinite coordinate is a broken file."""
    count = int(np.isinf(points).sum())
    if count:
        raise DataError(
            f"{where}: the landmarks of video {video_id} hold {count} infinite "
            "value(s); a missing point must be NaN"
        )


class _Source:
    """Landmarks per video id, from one `.npz` of hand arrays or a folder of files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive = None
        if path.is_file() and path.suffix == ".npz":
            try:
                archive = np.load(path, allow_pickle=False)
            except UNREADABLE_FILE_ERRORS as error:
                reason = str(error) or type(error).__name__
                raise DataError(f"{path}: cannot read ({shorten(reason)})") from None
            if not isinstance(archive, NpzFile):
                raise DataError(
                    f"{path}: holds one array, not an .npz of hand arrays per video id"
                )
            self.archive = archive
            self.ids = set(self.archive.files)
        elif path.is_dir():
            self.ids = None
        else:
            raise UserError(
                f"--landmarks {path}: expected an .npz of hand arrays or a folder of "
                "landmark files (as extract_landmarks writes them)"
            )

    def file_for(self, video_id: str) -> Path | None:
        """The folder source's landmark file of a video, if any."""
        for folder in (self.path / video_id, self.path):
            found = landmark_file(folder, video_id)
            if found is not None:
                return found
        found = self.path / f"{video_id}{HAND_ARRAY_SUFFIX}"
        return found if found.is_file() else None

    def has(self, video_id: str) -> bool:
        """Whether the source has landmarks for this video."""
        if self.archive is not None:
            return video_id in self.ids
        return self.file_for(video_id) is not None

    def write(self, video_id: str, root: Path) -> int:
        """Write the video's landmark file in `root/<video id>/`; return its row
        count."""
        folder = root / video_id
        if self.archive is None:
            source = self.file_for(video_id)
            if source.suffix == HAND_ARRAY_SUFFIX:
                return _write_hands(_read_hand_array(source), source, video_id, root)
            # Read before copying: a FIFO or a damaged file is refused, naming it.
            points = read_landmarks(source, ["left_hand", "right_hand"])[0]
            _refuse_infinite(points, source, video_id)
            destination = _confined(
                folder / f"{video_id}{source.suffix}", root, video_id
            )
            with source.open("rb") as file:
                write_output(destination, lambda out: shutil.copyfileobj(file, out))
            return len(points)
        try:
            hands = self.archive[video_id]
        except UNREADABLE_FILE_ERRORS as error:
            raise DataError(
                f"{self.path}: cannot read array {video_id} ({error})"
            ) from None
        return _write_hands(hands, self.path, video_id, root)


class _VideoSource:
    """WLASL's videos (`VIDEO_ID.mp4`, ...) in one folder, followed by signpipe's
    MediaPipe Hands tracker into the output root (`extract`, then `write`)."""

    def __init__(self, folder: Path, workers: int) -> None:
        if not folder.is_dir():
            raise UserError(
                f"--videos {folder}: not a folder; expected WLASL's videos, named "
                "VIDEO_ID.mp4 as the start kit's preprocess.py writes them"
            )
        self.path = folder
        videos = find_videos(folder)
        check_unique_names(videos, [video.stem for video in videos])
        self.videos = {video.stem: video for video in videos}
        self.workers = workers
        self.rows: dict[str, int] = {}

    def has(self, video_id: str) -> bool:
        """Whether the folder has the video."""
        return video_id in self.videos

    def extract(self, video_ids: list[str], root: Path) -> list[ItemResult]:
        """Write `root/<id>/<id>.npz` for each video; the failed ones' results."""
        check_model(load_mediapipe(), VIDEO_TRACKER, DEFAULT_COMPLEXITY)
        jobs = [(video_id, self.videos[video_id]) for video_id in video_ids]
        args = (root, DEFAULT_COMPLEXITY, None, VIDEO_TRACKER)
        results = run_batch(
            extract_item, jobs, args, workers=self.workers, unit="video"
        )
        for result in results:
            if result.error is None and result.frames == 0:
                result.error = "no frame could be decoded"
        self.rows = {r.name: r.frames for r in results if r.error is None}
        return [result for result in results if result.error is not None]

    # pylint: disable-next=unused-argument
    def write(self, video_id: str, root: Path) -> int:
        """The row count of the video's landmark file (written by `extract`)."""
        return self.rows[video_id]


def _read_hand_array(path: Path) -> np.ndarray:
    """A `.npy` of `(T, hands, 21, 3)` MediaPipe Hands points in which a hand slot
    filled with -1.0 means "no hand" (the public WLASL hand landmarks' layout), with
    those slots as NaN and the points as float16, as the shared `.npz` holds them."""
    require_file(path, "landmark file")
    try:
        hands = np.load(path, allow_pickle=False)
    except UNREADABLE_FILE_ERRORS as error:
        reason = str(error) or type(error).__name__
        raise DataError(f"{path}: cannot read ({shorten(reason)})") from None
    if hands.ndim == 4 and hands.dtype.kind == "f":
        hands = hands.copy()
        hands[(hands == MISSING_HAND_VALUE).all(axis=(2, 3))] = np.nan
        hands = hands.astype(np.float16)
    return hands


def _write_hands(hands: np.ndarray, where: Path, video_id: str, root: Path) -> int:
    """Check a `(T, hands, 21, 3)` array and write it as `root/<id>/<id>.npz`; its
    row count."""
    if (
        hands.ndim != 4
        or hands.shape[2:] != (21, 3)
        or len(hands) == 0
        or hands.dtype.kind not in "fiu"
    ):
        raise DataError(
            f"{where}: array {video_id} has shape {hands.shape} of "
            f"{hands.dtype}; expected (T, hands, 21, 3) numbers with T >= 1"
        )
    _refuse_infinite(hands, where, video_id)
    # WLASL's hand files hold MediaPipe's normalised points (frame size unknown).
    arrays = landmark_arrays({"hands": hands}, frame_size=None)
    write_output(
        _confined(root / video_id / f"{video_id}.npz", root, video_id),
        lambda out: np.savez_compressed(out, **arrays),
    )
    return len(hands)


def import_wlasl(
    split_file: Path,
    landmarks: Path | None,
    output: Path,
    *,
    class_list: Path | None = None,
    num_classes: int | None = None,
    videos: Path | None = None,
    workers: int = 1,
) -> dict:
    """Write a dataset root for the clips of `split_file` that have landmarks (or,
    with `videos` instead of `landmarks`, a video to extract them from).

    Returns:
        `{"clips": {split: count}, "classes": {split: count}, "skipped": count,
        "failed": [ItemResult of each video that could not be followed]}`.
    """
    if (landmarks is None) == (videos is None):
        raise UserError("give either --landmarks or --videos (one of the two)")
    clips, names = read_split_file(split_file, num_classes)
    if class_list is not None:
        names = {**read_class_list(class_list), **names}
    if not names:
        raise UserError(
            f"{split_file} names no glosses: give --class_list wlasl_class_list.txt"
        )
    source = _Source(landmarks) if videos is None else _VideoSource(videos, workers)
    unnamed = sorted({clip.label for clip in clips} - set(names))
    if unnamed:
        raise DataError(
            f"{class_list or split_file}: no gloss for class(es) "
            f"{', '.join(map(str, unnamed[:10]))}"
        )
    present = [clip for clip in clips if source.has(clip.video_id)]
    if not present:
        where = (
            f"landmarks in {landmarks}" if videos is None else f"a video in {videos}"
        )
        raise UserError(f"none of the {len(clips)} videos of {split_file} has {where}")
    prepare_output(output)
    for clip in present:  # every clip's folder, before anything is written
        _confined(output / clip.video_id, output, clip.video_id)
    failed = []
    if isinstance(source, _VideoSource):
        failed = source.extract([clip.video_id for clip in present], output)
        broken = {result.name for result in failed}
        present = [clip for clip in present if clip.video_id not in broken]
    signers = any(clip.signer is not None for clip in present)
    rows = ["name start end gloss split" + (" signer" if signers else "")]
    for clip in tqdm(present, desc="clips", unit="clip", disable=None):
        start, end = row_range(clip, source.write(clip.video_id, output))
        row = f"{clip.video_id} {start} {end} {clip.label} {clip.split}"
        rows.append(row + (f" {clip.signer or UNKNOWN_SIGNER}" if signers else ""))
    if len(rows) == 1:
        raise UserError(
            f"none of the {len(failed)} videos found could be "
            "followed: "
            + "; ".join(f"{result.source}: {result.error}" for result in failed[:3])
        )
    labels = sorted({clip.label for clip in present})
    glosses = "id gloss\n" + "".join(f"{label} {names[label]}\n" for label in labels)
    for name, text in (
        ("glosses.txt", glosses),
        ("test_gloss.txt", "\n".join(rows) + "\n"),
    ):
        write_output(output / name, lambda out, text=text: out.write(text.encode()))
    return {
        "clips": Counter(clip.split for clip in present),
        "classes": {
            split: len({c.label for c in present if c.split == split})
            for split in SPLITS
        },
        "skipped": len(clips) - len(present) - len(failed),
        "failed": failed,
    }


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.wlasl",
        description="Write a signpipe dataset root for WLASL with its official split.",
    )
    parser.add_argument("--split_file", type=Path, required=True, metavar="JSON")
    parser.add_argument("--class_list", type=Path, metavar="TXT")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--landmarks",
        type=Path,
        metavar="NPZ_OR_FOLDER",
        help="hand landmarks per video id: an .npz, or a folder of .npy/.npz files",
    )
    source.add_argument(
        "--videos",
        type=Path,
        metavar="DIR",
        help="WLASL's videos (VIDEO_ID.mp4): follow each video of the split with "
        "MediaPipe Hands (needs requirements-landmarks.txt)",
    )
    parser.add_argument("--output", type=Path, required=True, metavar="ROOT")
    add_workers_argument(parser)
    parser.add_argument(
        "--num_classes",
        type=int,
        metavar="N",
        help="keep classes 0..N-1 only (e.g. 100 with WLASL_v0.3.json)",
    )
    add_sentence_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 on a user error."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.val_sentences is not None and args.sentences is None:
        parser.error("--val_sentences needs --sentences")
    if args.sentences is not None and not any(
        sentence_counts(args.sentences, args.val_sentences).values()
    ):
        parser.error("--sentences 0 (and no --val_sentences) builds no sentences")

    def command() -> int:
        if args.num_classes is not None and args.num_classes < 1:
            raise UserError(f"--num_classes must be >= 1, got {args.num_classes}")
        imported = import_wlasl(
            args.split_file,
            args.landmarks,
            args.output,
            class_list=args.class_list,
            num_classes=args.num_classes,
            videos=args.videos,
            workers=args.workers,
        )
        for split in SPLITS:
            print(
                f"{split}: {imported['clips'][split]} clips, "
                f"{imported['classes'][split]} classes"
            )
        missing = "landmarks" if args.videos is None else f"a video in {args.videos}"
        print(
            f"skipped {imported['skipped']} videos without {missing}; wrote "
            f"{args.output}"
        )
        if args.sentences is not None:
            try:
                sentences = build_sentences(
                    args.output,
                    args.output / SENTENCES_FOLDER,
                    counts=sentence_counts(args.sentences, args.val_sentences),
                )
            except UserError as error:
                raise with_notes(
                    error,
                    [
                        f"the clips are imported in {args.output}; build the "
                        "sentences with python3 -m data_preprocessing.sentences "
                        f"--root {args.output} --output "
                        f"{args.output / SENTENCES_FOLDER} --sentences N"
                    ],
                ) from None
            for line in summary(sentences):
                print(line)
            print(f"wrote {args.output / SENTENCES_FOLDER}")
        return report_failures(imported["failed"], "videos")

    return run_cli(command)


if __name__ == "__main__":
    sys.exit(main())
