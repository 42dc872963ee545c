"""WLASL -> a dataset root: the official split and gloss names, with landmark files.

Usage::

    python3 -m data_preprocessing.wlasl --split_file nslt_100.json
        --class_list wlasl_class_list.txt --landmarks LANDMARKS --output ROOT

``--split_file`` is one of the WLASL start kit's files: ``nslt_N.json``
(``{video_id: {"subset": "train"|"val"|"test", "action": [class, start, end]}}``) or
``WLASL_v0.3.json`` (a list of ``{"gloss", "instances": [{"video_id", "split",
"signer_id", "frame_start", "frame_end", ...}]}``; class = the gloss's position, and
``--num_classes N`` keeps the first N glosses, e.g. 100 for WLASL100).
``--class_list`` is ``wlasl_class_list.txt`` (``class_id<TAB>gloss``; not needed with
``WLASL_v0.3.json``, which names its glosses).

``LANDMARKS`` is either an ``.npz`` holding one ``(T, H, 21, 3)`` array of hand
landmarks per video id (H hands in detection order, NaN = no hand), or a folder of
per-video landmark files as ``extract_landmarks`` writes them (``ID/ID.npz`` or
``ID.npz``, or ``.pose``). Videos without landmarks are skipped and counted.

``ROOT`` gets ``ID/ID.npz`` (or ``.pose``) per clip (an ``.npz`` source's arrays are
written as ``hands`` with ``coordinates="normalized"``: MediaPipe's own points, the
landmark convention of docs/landmarks.md), ``test_gloss.txt``
(``name start end gloss split [signer]``, signer `UNKNOWN_SIGNER` where a clip has
none) and ``glosses.txt``. Frame ranges: WLASL's are 1-based video frames with -1 =
the last frame. A range that starts at the first frame and ends within
`WHOLE_CLIP_TOLERANCE` of the landmark file's length covers the whole file (the counts
differ when the landmarks were taken at another frame rate); any other range selects
rows ``start - 1 .. end - 1``, cut to the file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.landmarks import (
    UNREADABLE_FILE_ERRORS,
    landmark_arrays,
    landmark_file,
    read_landmarks,
)
from utils.cli import run_cli
from utils.errors import DataError, UserError
from utils.file_io import write_atomically

SPLITS = ("train", "val", "test")
#: How far (as a share of the landmark rows) a range's end may be from the file's
#: end and still mean "the whole clip".
WHOLE_CLIP_TOLERANCE = 0.25
#: The signer column of a clip without `signer_id` when others have one (an empty
#: column would shift the row's columns).
UNKNOWN_SIGNER = "none"


@dataclass(frozen=True)
class Clip:
    """One clip of the split file."""

    video_id: str
    label: int
    split: str
    start: int  # 1-based video frame
    end: int  # 1-based, inclusive; -1 = the last frame
    signer: str | None = None


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {what} {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None


def _nslt_clips(data: dict, path: Path) -> list[Clip]:
    clips = []
    for video_id, entry in data.items():
        try:
            label, start, end = entry["action"]
            split = entry["subset"]
            clips.append(Clip(str(video_id), int(label), split, int(start), int(end)))
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f'{path}: entry {video_id!r} is not {{"subset": ..., "action": '
                "[class, start, end]}"
            ) from None
    return clips


def _v03_clips(data: list, path: Path, num_classes: int | None) -> tuple:
    clips, names = [], {}
    for label, entry in enumerate(data[:num_classes] if num_classes else data):
        try:
            names[label] = str(entry["gloss"])
            for item in entry["instances"]:
                signer = item.get("signer_id")
                clips.append(
                    Clip(
                        str(item["video_id"]),
                        label,
                        item["split"],
                        int(item.get("frame_start", 1)),
                        int(item.get("frame_end", -1)),
                        None if signer is None else str(signer),
                    )
                )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise DataError(
                f"{path}: entry {label} is not {{'gloss': ..., 'instances': "
                "[{'video_id', 'split', ...}]}"
            ) from None
    return clips, names


def _plain_name(name: str) -> bool:
    """Whether `name` is usable as one file name under the output root."""
    return (
        bool(name)
        and name not in (".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and Path(name).name == name
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
    for clip in clips:
        if not _plain_name(clip.video_id):
            raise DataError(
                f"{path}: video id {clip.video_id!r} is not a plain file name (a "
                "clip's files are written under ROOT/<video id>/)"
            )
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
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read class list {path}: {error}") from None
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


class _Source:
    """Landmarks per video id, from one `.npz` of hand arrays or a folder of files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive = None
        if path.is_file() and path.suffix == ".npz":
            try:
                self.archive = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise DataError(f"{path}: cannot read ({error})") from None
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
        return None

    def has(self, video_id: str) -> bool:
        """Whether the source has landmarks for this video."""
        if self.archive is not None:
            return video_id in self.ids
        return self.file_for(video_id) is not None

    def write(self, video_id: str, target: Path) -> int:
        """Write the video's landmark file under `target`; return its row count."""
        target.mkdir(parents=True, exist_ok=True)
        if self.archive is None:
            source = self.file_for(video_id)
            destination = target / f"{video_id}{source.suffix}"
            with source.open("rb") as file:
                write_atomically(destination, lambda out: shutil.copyfileobj(file, out))
            return len(read_landmarks(destination, ["left_hand", "right_hand"])[0])
        try:
            hands = self.archive[video_id]
        except UNREADABLE_FILE_ERRORS as error:
            raise DataError(
                f"{self.path}: cannot read array {video_id} ({error})"
            ) from None
        if hands.ndim != 4 or hands.shape[2:] != (21, 3) or len(hands) == 0:
            raise DataError(
                f"{self.path}: array {video_id} has shape {hands.shape}; expected "
                "(T, hands, 21, 3) with T >= 1"
            )
        # WLASL's hand files hold MediaPipe's normalised points (frame size unknown).
        arrays = landmark_arrays({"hands": hands}, frame_size=None)
        write_atomically(
            target / f"{video_id}.npz",
            lambda out: np.savez_compressed(out, **arrays),
        )
        return len(hands)


def import_wlasl(
    split_file: Path,
    landmarks: Path,
    output: Path,
    *,
    class_list: Path | None = None,
    num_classes: int | None = None,
) -> dict:
    """Write a dataset root for the clips of `split_file` that have landmarks.

    Returns:
        `{"clips": {split: count}, "classes": {split: count}, "skipped": count}`.
    """
    clips, names = read_split_file(split_file, num_classes)
    if class_list is not None:
        names = {**read_class_list(class_list), **names}
    if not names:
        raise UserError(
            f"{split_file} names no glosses: give --class_list wlasl_class_list.txt"
        )
    source = _Source(landmarks)
    unnamed = sorted({clip.label for clip in clips} - set(names))
    if unnamed:
        raise DataError(
            f"{class_list or split_file}: no gloss for class(es) "
            f"{', '.join(map(str, unnamed[:10]))}"
        )
    output.mkdir(parents=True, exist_ok=True)
    present = [clip for clip in clips if source.has(clip.video_id)]
    signers = any(clip.signer is not None for clip in present)
    rows = ["name start end gloss split" + (" signer" if signers else "")]
    for clip in tqdm(present, desc="clips", unit="clip", disable=None):
        start, end = row_range(
            clip, source.write(clip.video_id, output / clip.video_id)
        )
        row = f"{clip.video_id} {start} {end} {clip.label} {clip.split}"
        rows.append(row + (f" {clip.signer or UNKNOWN_SIGNER}" if signers else ""))
    if len(rows) == 1:
        raise UserError(
            f"none of the {len(clips)} videos of {split_file} has landmarks in "
            f"{landmarks}"
        )
    labels = sorted({clip.label for clip in present})
    glosses = "id gloss\n" + "".join(f"{label} {names[label]}\n" for label in labels)
    for name, text in (
        ("glosses.txt", glosses),
        ("test_gloss.txt", "\n".join(rows) + "\n"),
    ):
        write_atomically(output / name, lambda out, text=text: out.write(text.encode()))
    return {
        "clips": Counter(clip.split for clip in present),
        "classes": {
            split: len({c.label for c in present if c.split == split})
            for split in SPLITS
        },
        "skipped": len(clips) - len(present),
    }


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.wlasl",
        description="Write a signpipe dataset root for WLASL with its official split.",
    )
    parser.add_argument("--split_file", type=Path, required=True, metavar="JSON")
    parser.add_argument("--class_list", type=Path, metavar="TXT")
    parser.add_argument(
        "--landmarks", type=Path, required=True, metavar="NPZ_OR_FOLDER"
    )
    parser.add_argument("--output", type=Path, required=True, metavar="ROOT")
    parser.add_argument(
        "--num_classes",
        type=int,
        metavar="N",
        help="keep classes 0..N-1 only (e.g. 100 with WLASL_v0.3.json)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 on a user error."""
    args = _build_parser().parse_args(argv)

    def command() -> int:
        if args.num_classes is not None and args.num_classes < 1:
            raise UserError(f"--num_classes must be >= 1, got {args.num_classes}")
        summary = import_wlasl(
            args.split_file,
            args.landmarks,
            args.output,
            class_list=args.class_list,
            num_classes=args.num_classes,
        )
        for split in SPLITS:
            print(
                f"{split}: {summary['clips'][split]} clips, "
                f"{summary['classes'][split]} classes"
            )
        print(
            f"skipped {summary['skipped']} videos without landmarks; wrote "
            f"{args.output}"
        )
        return 0

    return run_cli(command)


if __name__ == "__main__":
    sys.exit(main())
