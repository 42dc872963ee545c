"""Sign sequences from a clip root: 2-6 real clips of one split strung together.

Usage::

    python3 -m data_preprocessing.sentences --root ROOT --output OUT
        --sentences N [--val_sentences M] [--seed S]

**What this data is, and is not.** There is no freely redistributable corpus of
signed sentences to ship, so this builds an honest stand-in from a corpus of
isolated signs (a root as ``data_preprocessing.wlasl`` writes it): each "sentence"
is a few isolated clips, each signed on its own by its own signer, played one
after the other with a short gap without hands between them. That is
**concatenated isolated signs, not natural signing**: there is no co-articulation
between signs, no grammar (the order of the glosses is random), no non-manual
markers, and a signer may change between two signs. A recognizer that reads these
sequences has learnt to find and read signs in a stream; it has not learnt to read
signed sentences.

``ROOT`` holds ``test_gloss.txt`` (``name start end gloss split``: the split column
is required) and ``glosses.txt`` (``id gloss``), and a landmark file
``ROOT/<name>/<name>.npz`` (or ``.pose``) per clip. A sentence of split S draws its
length L uniformly from 2..6 and L distinct clips of split S only (train sentences
from train clips, val sentences from val clips: no clip of one split reaches
another), reads each clip's rows ``start..end`` (its hands put on their sides clip
by clip, as training reads a clip), and joins them with gaps of 3..8 rows of NaN
(no hand seen). Everything is drawn from ``--seed``; the sentences of a split do not
depend on how many the other split gets.

``OUT`` gets::

    OUT/<name>/<name>.npz   left_hand, right_hand (T, 21, 3), coordinates="normalized"
    OUT/sentences.tsv       name start end glosses text split   (tab-separated)
    OUT/glosses.txt         copied from ROOT
    OUT/tokenizer/          a word tokenizer of every gloss name's words

``<name>`` is ``<split>_<index:05d>``. ``glosses`` is the sequence of class ids
(``27+82+5``, the CTC target) and ``text`` the glosses' names lower-cased, joined by
spaces (``book drink chair``, the translation target). The tokenizer knows every
gloss of ``glosses.txt``, not only those of the train sentences: the vocabulary is
known before any clip is drawn. Files are written only inside ``OUT``, atomically.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datasets.index import GLOSS_NAMES_FILE, read_gloss_names
from datasets.landmarks import landmark_arrays, landmark_file, read_landmarks
from utils.annotations import AnnotationRow, read_annotation_file
from utils.cli import non_negative_int, run_cli
from utils.errors import DataError, UserError
from utils.files import is_inside, prepare_output, read_text, write_output
from utils.landmark_points import HAND_POINTS
from utils.tokenizer import build_word_tokenizer

#: The clip root's annotation file, and what this command writes in `OUT`.
CLIPS_FILE = "test_gloss.txt"
SENTENCES_FILE = "sentences.tsv"
TOKENIZER_FOLDER = "tokenizer"
HEADER = ("name", "start", "end", "glosses", "text", "split")
SPLITS = ("train", "val", "test")
HANDS = ["left_hand", "right_hand"]
#: The defaults: clips per sentence and gap rows between two clips (inclusive
#: ranges), the seed, and val sentences per train sentence.
LENGTHS = (2, 6)
GAP = (3, 8)
SEED = 0
VAL_SHARE = 4  # --val_sentences defaults to N // 4


@dataclass(frozen=True)
class Sentence:
    """One written sequence: its clips (names), their class ids, the sentence's
    text and its landmark rows."""

    name: str
    split: str
    rows: int
    clips: tuple[str, ...]
    glosses: tuple[int, ...]
    text: str


def _check_ranges(lengths: tuple[int, int], gap: tuple[int, int]) -> None:
    if not 1 <= lengths[0] <= lengths[1]:
        raise UserError(f"clips per sentence {lengths}: expected 1 <= low <= high")
    if not 0 <= gap[0] <= gap[1]:
        raise UserError(f"gap rows {gap}: expected 0 <= low <= high")


def _clips_by_split(root: Path) -> dict[str, list[AnnotationRow]]:
    """The labelled clips of the root's annotation file, per split."""
    path = root / CLIPS_FILE
    rows = read_annotation_file(path, ["gloss"])
    unsplit = [row for row in rows if row.split is None]
    if unsplit:
        raise DataError(
            f"{unsplit[0].source}: clip {unsplit[0].name} has no split; sentences "
            "are drawn from the clips of one split, so the file needs a split column "
            "(as data_preprocessing.wlasl writes it)"
        )
    clips: dict[str, list[AnnotationRow]] = {split: [] for split in SPLITS}
    for row in rows:
        if row.labels["gloss"] >= 0:
            clips[row.split].append(row)
    return clips


class _ClipReader:
    """Each clip's hands `(rows, 42, 3)`, read once (a clip joins many sentences)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[str, np.ndarray] = {}

    def __call__(self, clip: AnnotationRow) -> np.ndarray:
        if clip.name not in self.cache:
            path = landmark_file(self.root / clip.name, clip.name)
            if path is None:
                raise DataError(
                    f"{clip.source}: clip {clip.name} has no landmark file "
                    f"{self.root / clip.name / clip.name}.npz (or .pose)"
                )
            points = read_landmarks(path, HANDS)[0]
            end = len(points) - 1 if clip.end is None else clip.end
            if not 0 <= clip.start <= end < len(points):
                raise DataError(
                    f"{clip.source}: clip {clip.name} asks for rows {clip.start}.."
                    f"{end}, but {path} has {len(points)}"
                )
            self.cache[clip.name] = points[clip.start : end + 1]
        return self.cache[clip.name]


def _draw(  # pylint: disable=too-many-arguments
    rng: np.random.Generator,
    clips: list[AnnotationRow],
    read: _ClipReader,
    lengths: tuple[int, int],
    gap: tuple[int, int],
) -> tuple[list[AnnotationRow], np.ndarray]:
    """One sentence's clips and its `(T, 42, 3)` points, gaps of NaN between clips."""
    count = int(rng.integers(lengths[0], min(lengths[1], len(clips)) + 1))
    chosen = [clips[index] for index in rng.choice(len(clips), count, replace=False)]
    pieces = []
    for number, clip in enumerate(chosen):
        if number:
            rows = int(rng.integers(gap[0], gap[1] + 1))
            pieces.append(np.full((rows, 2 * HAND_POINTS, 3), np.nan, np.float32))
        pieces.append(read(clip))
    return chosen, np.concatenate(pieces)


def build_sentences(  # pylint: disable=too-many-arguments,too-many-locals
    clip_root: Path,
    output: Path,
    *,
    counts: dict[str, int],
    seed: int = SEED,
    lengths: tuple[int, int] = LENGTHS,
    gap: tuple[int, int] = GAP,
) -> list[Sentence]:
    """Write sign sequences of the clips of `clip_root` to `output` (see the
    module docstring).

    Args:
        clip_root: a root with `test_gloss.txt` (with a split column),
            `glosses.txt` and a landmark file per clip.
        output: the sentence root to write (not `clip_root` itself).
        counts: sentences per split, e.g. `{"train": 1500, "val": 400}`.
        seed: seeds every draw.
        lengths: the fewest and most clips of a sentence.
        gap: the fewest and most rows without hands between two clips.

    Returns:
        The sentences written, in `sentences.tsv`'s order.

    Raises:
        UserError: bad counts or ranges, a split with too few clips, an output that
            is the clip root or cannot be written; `DataError` for bad input files.
    """
    _check_ranges(lengths, gap)
    unknown = sorted(set(counts) - set(SPLITS))
    if unknown or any(count < 0 for count in counts.values()):
        raise UserError(
            f"sentences per split {counts}: expected counts >= 0 of {SPLITS}"
        )
    if not sum(counts.values()):
        raise UserError("no sentences asked for (--sentences 0 and --val_sentences 0)")
    if output.resolve() == clip_root.resolve():
        raise UserError(
            f"--output {output} is the clip root; write the sentences to another "
            "folder (e.g. ROOT/sentences)"
        )
    clips = _clips_by_split(clip_root)
    names = read_gloss_names([str(clip_root)])
    if not names:
        raise DataError(
            f"{clip_root / GLOSS_NAMES_FILE}: no gloss names (`id gloss` lines); the "
            "text targets are the glosses' names"
        )
    for split, count in counts.items():
        if count and len(clips[split]) < lengths[0]:
            raise UserError(
                f"{clip_root / CLIPS_FILE}: {len(clips[split])} labelled {split} "
                f"clips, too few for {count} {split} sentences of {lengths[0]}+ clips"
            )
        unnamed = sorted({c.labels["gloss"] for c in clips[split]} - set(names))
        if count and unnamed:
            raise DataError(
                f"{clip_root / GLOSS_NAMES_FILE}: no name for gloss(es) "
                f"{', '.join(map(str, unnamed[:10]))}"
            )
    prepare_output(output)
    read = _ClipReader(clip_root)
    sentences = []
    progress = tqdm(total=sum(counts.values()), desc="sentences", disable=None)
    for split in SPLITS:
        # One generator per split: the val sentences do not move with --sentences.
        rng = np.random.default_rng([seed, SPLITS.index(split)])
        for index in range(counts.get(split, 0)):
            chosen, points = _draw(rng, clips[split], read, lengths, gap)
            name = f"{split}_{index:05d}"
            path = output / name / f"{name}.npz"
            if not is_inside(path, output):
                raise UserError(f"{path} resolves outside --output {output}; refused")
            parts = {
                "left_hand": points[:, :HAND_POINTS],
                "right_hand": points[:, HAND_POINTS:],
            }
            arrays = landmark_arrays(parts, frame_size=None)
            write_output(path, lambda out, a=arrays: np.savez_compressed(out, **a))
            glosses = tuple(clip.labels["gloss"] for clip in chosen)
            text = " ".join(" ".join(names[g].lower().split()) for g in glosses)
            sentences.append(
                Sentence(
                    name,
                    split,
                    len(points),
                    tuple(clip.name for clip in chosen),
                    glosses,
                    text,
                )
            )
            progress.update()
    progress.close()
    _write_tables(clip_root, output, sentences, names)
    return sentences


def _write_tables(
    clip_root: Path, output: Path, sentences: list[Sentence], names: dict[int, str]
) -> None:
    """`sentences.tsv`, `glosses.txt` and the tokenizer."""
    lines = ["\t".join(HEADER)] + [
        "\t".join(
            (
                s.name,
                "0",
                str(s.rows - 1),
                "+".join(map(str, s.glosses)),
                s.text,
                s.split,
            )
        )
        for s in sentences
    ]
    table = "\n".join(lines) + "\n"
    write_output(output / SENTENCES_FILE, lambda out: out.write(table.encode()))
    glosses = read_text(clip_root / GLOSS_NAMES_FILE, "gloss names file")
    write_output(output / GLOSS_NAMES_FILE, lambda out: out.write(glosses.encode()))
    build_word_tokenizer(names.values(), output / TOKENIZER_FOLDER)


def summary(sentences: list[Sentence]) -> list[str]:
    """One line per split: sentences, clips per sentence, rows per sentence."""
    lines = []
    for split in SPLITS:
        chosen = [s for s in sentences if s.split == split]
        if chosen:
            glosses = np.mean([len(s.glosses) for s in chosen])
            rows = np.mean([s.rows for s in chosen])
            lines.append(
                f"{split}: {len(chosen)} sentences, {glosses:.1f} glosses and "
                f"{rows:.0f} rows on average"
            )
    return lines


def add_sentence_arguments(parser: argparse.ArgumentParser) -> None:
    """`--sentences N` and `--val_sentences M` (data_preprocessing.wlasl has them
    too)."""
    parser.add_argument(
        "--sentences",
        type=non_negative_int,
        metavar="N",
        help="train sentences to build (each 2-6 train clips)",
    )
    parser.add_argument(
        "--val_sentences",
        type=non_negative_int,
        metavar="M",
        help=f"val sentences to build from val clips (default: N // {VAL_SHARE})",
    )


def sentence_counts(train: int, val: int | None) -> dict[str, int]:
    """`{"train": N, "val": M}`, M defaulting to N // `VAL_SHARE`."""
    return {"train": train, "val": train // VAL_SHARE if val is None else val}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.sentences",
        description="String together 2-6 clips of one split of a clip root into "
        "sign sequences (concatenated isolated signs, not natural signing).",
    )
    parser.add_argument("--root", type=Path, required=True, metavar="ROOT")
    parser.add_argument("--output", type=Path, required=True, metavar="OUT")
    add_sentence_arguments(parser)
    parser.add_argument("--seed", type=int, default=SEED, metavar="S")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 on a user error."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.sentences is None:
        parser.error("the following arguments are required: --sentences")

    def command() -> int:
        sentences = build_sentences(
            args.root,
            args.output,
            counts=sentence_counts(args.sentences, args.val_sentences),
            seed=args.seed,
        )
        for line in summary(sentences):
            print(line)
        print(f"wrote {args.output}")
        return 0

    return run_cli(command)


if __name__ == "__main__":
    sys.exit(main())
