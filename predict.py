"""Embeddings and top-5 predictions of a checkpoint for videos and frame folders.

python3 predict.py CHECKPOINT INPUT_DIR OUTPUT_DIR
                   [--embedding_kind spatial|temporal|CLS|probabilities]
                   [--batch_size 8] [--all_frames] [--workers 0] [--layout flat|ssvp]
                   [--backend torch|onnx] [--ensemble CHECKPOINT ...]
                   [--num_shards N --shard_id I | --items_per_shard K [--shard_id I]]
python3 predict.py --merge_manifests OUTPUT_DIR

Inputs: every video file (.mp4, .avi, .mov, .mkv, .webm, ...) and every frame folder
directly in INPUT_DIR; a frame folder is `<name>/<name>_<idx>.<img>` or any images,
taken in numeric order of their names. INPUT_DIR may also be one video file or one
frame folder. Inputs may have any number of frames; batches of different lengths are
padded and masked, so an input's outputs do not depend on the others in its batch.
A dataset root (INPUT_DIR holds the annotation file(s) of the checkpoint's config,
`test_<mode>.txt` by default) is read as training reads it: one input per annotated
sample, its clip made from the annotated start..end frames exactly as test.py
makes it (a note on stderr names the files read).

Everything else comes from the checkpoint: the model, the evaluation transform (resize,
centre crop; the model normalises), the class names, and the temporal sampling:
`num_segments` frames spread evenly and deterministically (or `time` seconds apart),
as validation clips are sampled. With `--all_frames` every frame of the input goes
into the model instead (per-frame embeddings then cover the whole input; a long input
makes a long clip, and the encoder sees longer clips than in training). Models that
read landmarks (`train_parameters.landmarks`) use `<name>.npz|.pose` in a frame folder
(or beside a video, or in `<name>/` beside it), else MediaPipe Holistic is run on the
input as `data_preprocessing.extract_landmarks` does.

With `--ensemble` (and `--embedding_kind probabilities`), the class probabilities of
more checkpoints are averaged with CHECKPOINT's, as `test.py --ensemble` averages
them: other seeds, or streams of one recipe (joints and `bone_inputs`), trained on
the same heads and classes and sampling clips alike. Each costs a forward pass per
input; the clips (and any landmark extraction) are made once.

With `--backend onnx`, CHECKPOINT is a `model.onnx` that export.py wrote (its
`model.json` beside it) and the model runs with onnxruntime on the CPU; the inputs,
clips and outputs are those of the torch checkpoint it was exported from.

Outputs in OUTPUT_DIR, one file per input named after it (video stem, folder name):

    spatial        <name>.npy  float32 (N, D): feature-extractor output per frame,
                   D = feature_extractor.representation_size
    temporal       <name>.npy  float32 (N, D'): encoder output per frame,
                   D' = the encoder width (transformer.output_size)
    CLS            <name>.npy  float32 (D',): the clip embedding the heads read
    probabilities  <name>.npz  one float32 (num_class,) softmax array per head,
                   keyed by head name (np.load(path)["gloss"])

N is the number of frames used (padding removed): min(num_segments, frames) (with
`time`: at most num_segments), or every frame with --all_frames.

For every kind, `predictions.csv` holds one row per input and head: `input, head,
top1, top1_probability, ..., top5, top5_probability` with class names from the
checkpoint (a head with fewer than 5 classes leaves the rest empty; a cell starting
with = + - @, a tab or a carriage return gets a leading ' so that spreadsheets show
it as text), and `frames.csv` one row per input: `input, source, num_frames,
used_frames` (the 0-based frame positions of the N rows, space-separated).

With `--layout ssvp` the embeddings go to `features/0/<name[:5]>/<name>.pt` (torch
tensors) and `manifests/<split>_features.tsv` lists `video_name, length, label` (the
split and the gloss label of an annotated sample; `all` and no label for bare inputs).

Sharding: `--num_shards N --shard_id I` processes the I-th of N contiguous blocks of
the inputs; `--items_per_shard K` blocks of K, the index from `--shard_id` or
SLURM_ARRAY_TASK_ID. A shard writes its tables as `<table>.shard-I-of-N.<suffix>`
and `shards/shard-I-of-N.json`. Inputs already written by an earlier run into
OUTPUT_DIR (recorded in `progress[.shard-...].jsonl`) are skipped, so a killed run
resumes. `--merge_manifests OUTPUT_DIR` joins the shards' tables, checking that
every input is there exactly once.

Exit status: 0 when every input was written; 1 when some could not be read (listed
at the end, the others are written); 2 on a bad checkpoint or ONNX sidecar, a
missing or empty INPUT_DIR (or one that is neither a folder nor a file: a FIFO, a
device), an unknown embedding kind, an output that cannot be written (a full disk),
or a bad progress or shard record.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.cli import add_ensemble_option, non_negative_int, positive_int, run_cli
from utils.constants import EMBEDDING_KINDS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 predict.py",
        description=__doc__.splitlines()[0],
        epilog="Output formats and details: see the docstring of predict.py.",
    )
    parser.add_argument("checkpoint", type=Path, nargs="?", metavar="CHECKPOINT")
    parser.add_argument(
        "input",
        type=Path,
        nargs="?",
        metavar="INPUT_DIR",
        help="a folder of videos and/or frame folders, or one video or frame folder",
    )
    parser.add_argument("output", type=Path, nargs="?", metavar="OUTPUT_DIR")
    parser.add_argument(
        "--embedding_kind",
        metavar="KIND",
        default="CLS",
        help=f"one of {', '.join(EMBEDDING_KINDS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--batch_size",
        type=positive_int,
        default=8,
        metavar="N",
        help="inputs per forward pass (default: %(default)s)",
    )
    parser.add_argument(
        "--all_frames",
        action="store_true",
        help="use every frame of each input instead of num_segments sampled frames",
    )
    parser.add_argument(
        "--workers",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="processes decoding inputs (default: %(default)s = in this process)",
    )
    parser.add_argument(
        "--layout",
        choices=("flat", "ssvp"),
        default="flat",
        help="flat: <name>.npy|.npz; ssvp: features/0/<prefix>/<name>.pt and "
        "manifests/<split>_features.tsv (default: %(default)s)",
    )
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="torch: CHECKPOINT is a train.py checkpoint; onnx: CHECKPOINT is an "
        "export.py model.onnx (its model.json beside it), run with onnxruntime on "
        "the CPU (default: %(default)s)",
    )
    add_ensemble_option(
        parser,
        "more train.py checkpoints (or zoo names) whose class probabilities are "
        "averaged with CHECKPOINT's; needs --embedding_kind probabilities",
    )
    shards = parser.add_argument_group("shards (one machine or array task each)")
    shards.add_argument(
        "--num_shards", type=positive_int, metavar="N", help="cut the inputs in N"
    )
    shards.add_argument(
        "--items_per_shard",
        type=positive_int,
        metavar="K",
        help="shards of K inputs; the index from SLURM_ARRAY_TASK_ID",
    )
    shards.add_argument(
        "--shard_id", type=non_negative_int, metavar="I", help="this shard's index"
    )
    shards.add_argument(
        "--merge_manifests",
        type=Path,
        metavar="OUTPUT_DIR",
        help="join the shards' manifests and tables in OUTPUT_DIR, and exit",
    )
    args = parser.parse_args(argv)
    positional = (args.checkpoint, args.input, args.output)
    if args.merge_manifests is not None:
        if any(value is not None for value in positional):
            parser.error(
                "--merge_manifests takes no CHECKPOINT, INPUT_DIR or OUTPUT_DIR"
            )
        return args
    if any(value is None for value in positional):
        parser.error("CHECKPOINT, INPUT_DIR and OUTPUT_DIR are required")
    if args.ensemble and args.embedding_kind != "probabilities":
        parser.error(
            "--ensemble averages class probabilities: it needs --embedding_kind "
            "probabilities (an embedding belongs to one model)"
        )
    if args.ensemble and args.backend != "torch":
        parser.error("--ensemble takes train.py checkpoints: drop --backend onnx")
    if args.num_shards is not None and args.items_per_shard is not None:
        parser.error("give --num_shards or --items_per_shard, not both")
    if args.num_shards is not None and args.shard_id is None:
        parser.error("--num_shards needs --shard_id")
    return args


def predict(args: argparse.Namespace) -> int:
    """Run the command; the library (and torch) loads only now, so --help answers at
    once and a missing dependency is a one-line error."""
    # pylint: disable=import-outside-toplevel
    from evaluation.shards import ShardRequest, merge_manifests
    from evaluation.writers import PredictOptions, predict_command

    if args.merge_manifests is not None:
        return merge_manifests(args.merge_manifests)
    shard = ShardRequest(
        num_shards=args.num_shards,
        items_per_shard=args.items_per_shard,
        shard_id=args.shard_id,
    )
    return predict_command(
        PredictOptions(
            checkpoint=args.checkpoint,
            input=args.input,
            output=args.output,
            embedding_kind=args.embedding_kind,
            batch_size=args.batch_size,
            all_frames=args.all_frames,
            workers=args.workers,
            layout=args.layout,
            backend=args.backend,
            shard=shard,
            ensemble=tuple(args.ensemble),
        )
    )


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: arguments without the program name; `sys.argv[1:]` if None.

    Returns:
        0 when every input was written, 1 when some failed (listed on stderr), 2 on
        a user error (bad checkpoint, missing or empty input, unknown kind).
    """
    args = parse_args(argv)
    return run_cli(lambda: predict(args))


if __name__ == "__main__":
    sys.exit(main())
