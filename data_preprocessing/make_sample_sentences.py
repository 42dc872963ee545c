"""A small synthetic corpus of sign sequences, for tests and first runs.

Usage::

    python3 -m data_preprocessing.make_sample_sentences OUTPUT_DIR [--glosses G]
        [--clips_per_gloss C] [--sentences N] [--val_sentences M] [--seed S]
        [--features D]

First a clip root in the layout ``data_preprocessing.wlasl`` writes, in
``OUTPUT_DIR/clips``: G glosses, each a right hand of its own shape (the fingers
spread by a gloss's own amount) moving along its own trajectory (a direction and a
curve), C clips per gloss of 8-14 frames with seeded noise on every point and a
seeded offset per clip, the last third of each gloss's clips in the val split.
Then ``data_preprocessing.sentences`` on it writes the sentence root in
``OUTPUT_DIR`` (``sentences.tsv``, ``glosses.txt``, ``tokenizer/``, one landmark file
per sequence). Everything is drawn from ``--seed``.

With ``--features D`` it also writes the same sentences in SSVP-SLT's feature
layout, for features-only runs (no landmarks, no video network)::

    OUTPUT_DIR/ssvp/manifests/{train,val}_features.tsv   video_name  length  label
    OUTPUT_DIR/ssvp/features/0/<name[:5]>/<name>.pt      (length, D) float32

where each gloss of a sequence is 2-3 rows of the gloss's own random direction plus
noise, a gap between glosses one row of noise, and ``label`` the sentence's text.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
import torch

from data_preprocessing.sentences import (
    SEED,
    Sentence,
    build_sentences,
    sentence_counts,
    summary,
)
from datasets.landmarks import landmark_arrays
from utils.cli import non_negative_int, positive_int, run_cli
from utils.errors import UserError
from utils.files import prepare_output, write_output
from utils.landmark_points import HAND_POINTS

#: Gloss names of the sample (a gloss past the list is `gloss<N>`).
GLOSS_NAMES = (
    "book",
    "drink",
    "computer",
    "before",
    "chair",
    "go",
    "clothes",
    "who",
    "candy",
    "cousin",
    "deaf",
    "fine",
)
CLIPS_FOLDER = "clips"
SSVP_FOLDER = "ssvp"
FRAMES = (8, 14)
#: Points' noise and a clip's offset (shares of the frame).
NOISE = 0.004
OFFSET = 0.03


def gloss_name(gloss: int) -> str:
    """The sample's name of a gloss id."""
    return GLOSS_NAMES[gloss] if gloss < len(GLOSS_NAMES) else f"gloss{gloss}"


def _hand_shape(gloss: int, count: int) -> np.ndarray:
    """`(21, 3)` points around the wrist (0, 0): five fingers of four joints, fanned
    out by an angle of the gloss's own."""
    spread = 0.15 + 0.6 * gloss / max(count - 1, 1)
    points = np.zeros((HAND_POINTS, 3), np.float32)
    for finger in range(5):
        angle = -np.pi / 2 + (finger - 2) * spread / 2
        for joint in range(4):
            length = 0.02 * (joint + 1)
            points[1 + 4 * finger + joint] = (
                length * np.cos(angle),
                length * np.sin(angle),
                -0.01 * joint,
            )
    return points


def clip_hands(
    gloss: int, count: int, frames: int, rng: np.random.Generator
) -> np.ndarray:
    """`(frames, 2, 21, 3)` hands of one clip: the gloss's right hand on its
    trajectory (a direction and a bend of the gloss's own), no second hand."""
    direction = 2 * np.pi * gloss / count
    bend = 0.1 if gloss % 2 else -0.1
    start = np.array([0.5, 0.55]) + rng.uniform(-OFFSET, OFFSET, 2)
    progress = np.linspace(0.0, 1.0, frames)
    path = np.stack(
        [
            np.cos(direction) * 0.2 * progress - np.sin(direction) * bend * progress**2,
            np.sin(direction) * 0.2 * progress + np.cos(direction) * bend * progress**2,
        ],
        axis=1,
    )
    hands = np.full((frames, 2, HAND_POINTS, 3), np.nan, np.float32)
    wrists = np.concatenate([start + path, np.zeros((frames, 1))], axis=1)
    hands[:, 0] = wrists[:, None, :] + _hand_shape(gloss, count)[None]
    hands[:, 0] += rng.normal(0.0, NOISE, hands[:, 0].shape)
    return hands


def make_clip_root(
    root: Path, *, glosses: int, clips_per_gloss: int, seed: int
) -> dict[str, int]:
    """Write the synthetic clip root (module docstring); clips per split."""
    rng = np.random.default_rng(seed)
    prepare_output(root)
    rows = ["name start end gloss split"]
    counts = {"train": 0, "val": 0}
    val_from = clips_per_gloss - max(1, clips_per_gloss // 3)
    for gloss in range(glosses):
        for clip in range(clips_per_gloss):
            name = f"{gloss_name(gloss).upper()}_{clip:03d}"
            frames = int(rng.integers(FRAMES[0], FRAMES[1] + 1))
            arrays = landmark_arrays(
                {"hands": clip_hands(gloss, glosses, frames, rng)}, frame_size=None
            )
            write_output(
                root / name / f"{name}.npz",
                lambda out, a=arrays: np.savez_compressed(out, **a),
            )
            split = "val" if clip >= val_from else "train"
            counts[split] += 1
            rows.append(f"{name} 0 {frames - 1} {gloss} {split}")
    names = "id gloss\n" + "".join(f"{g} {gloss_name(g)}\n" for g in range(glosses))
    for file, text in (
        ("test_gloss.txt", "\n".join(rows) + "\n"),
        ("glosses.txt", names),
    ):
        write_output(root / file, lambda out, t=text: out.write(t.encode()))
    return counts


def write_ssvp_features(
    output: Path, sentences: list[Sentence], *, dim: int, glosses: int, seed: int
) -> Path:
    """Write the sentences in SSVP-SLT's feature layout under `output` (module
    docstring); returns `output`."""
    rng = np.random.default_rng([seed, dim])
    directions = rng.normal(size=(glosses, dim)).astype(np.float32)
    manifests: dict[str, list[str]] = {}
    for sentence in sentences:
        rows = []
        for number, gloss in enumerate(sentence.glosses):
            if number:
                rows.append(rng.normal(0.0, 0.3, (1, dim)))
            repeat = int(rng.integers(2, 4))
            rows.append(directions[gloss] + rng.normal(0.0, 0.3, (repeat, dim)))
        features = torch.from_numpy(np.concatenate(rows).astype(np.float32))
        buffer = io.BytesIO()
        torch.save(features, buffer)
        path = output / "features" / "0" / sentence.name[:5] / f"{sentence.name}.pt"
        write_output(path, lambda out, b=buffer: out.write(b.getvalue()))
        manifests.setdefault(sentence.split, ["video_name\tlength\tlabel"]).append(
            f"{sentence.name}\t{len(features)}\t{sentence.text}"
        )
    for split, lines in manifests.items():
        text = "\n".join(lines) + "\n"
        write_output(
            output / "manifests" / f"{split}_features.tsv",
            lambda out, t=text: out.write(t.encode()),
        )
    return output


def make_sample_sentences(  # pylint: disable=too-many-arguments
    output: Path,
    *,
    glosses: int = 6,
    clips_per_gloss: int = 6,
    sentences: int = 40,
    val_sentences: int | None = None,
    seed: int = SEED,
    features: int | None = None,
) -> list[Sentence]:
    """Write the sample corpus to `output` (module docstring); its sentences."""
    if glosses < 2:
        raise UserError(f"--glosses {glosses}: a sentence corpus needs 2 or more")
    if clips_per_gloss < 2:
        raise UserError(
            f"--clips_per_gloss {clips_per_gloss}: 2 or more (train and val clips)"
        )
    make_clip_root(
        output / CLIPS_FOLDER,
        glosses=glosses,
        clips_per_gloss=clips_per_gloss,
        seed=seed,
    )
    written = build_sentences(
        output / CLIPS_FOLDER,
        output,
        counts=sentence_counts(sentences, val_sentences),
        seed=seed,
    )
    if features is not None:
        write_ssvp_features(
            output / SSVP_FOLDER, written, dim=features, glosses=glosses, seed=seed
        )
    return written


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.make_sample_sentences",
        description="Write a small synthetic corpus of sign sequences (and, with "
        "--features, the same sequences as SSVP-SLT features).",
    )
    parser.add_argument("output", type=Path, metavar="OUTPUT_DIR")
    parser.add_argument("--glosses", type=positive_int, default=6, metavar="G")
    parser.add_argument("--clips_per_gloss", type=positive_int, default=6, metavar="C")
    parser.add_argument("--sentences", type=non_negative_int, default=40, metavar="N")
    parser.add_argument("--val_sentences", type=non_negative_int, metavar="M")
    parser.add_argument("--seed", type=int, default=SEED, metavar="S")
    parser.add_argument(
        "--features",
        type=positive_int,
        metavar="D",
        help="also write the SSVP-SLT feature layout with D-dimensional features",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 on a user error."""
    args = _build_parser().parse_args(argv)

    def command() -> int:
        written = make_sample_sentences(
            args.output,
            glosses=args.glosses,
            clips_per_gloss=args.clips_per_gloss,
            sentences=args.sentences,
            val_sentences=args.val_sentences,
            seed=args.seed,
            features=args.features,
        )
        for line in summary(written):
            print(line)
        print(f"wrote {args.output}")
        return 0

    return run_cli(command)


if __name__ == "__main__":
    sys.exit(main())
