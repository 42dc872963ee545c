"""Embeddings and top-5 predictions of a checkpoint for videos and frame folders.

python3 predict.py CHECKPOINT INPUT_DIR OUTPUT_DIR
                   --embedding_kind spatial|temporal|CLS|probabilities
                   [--batch_size 8] [--all_frames] [--workers 0]

Inputs: every video file (.mp4, .avi, .mov, .mkv, .webm, ...) and every frame folder
directly in INPUT_DIR; a frame folder is `<name>/<name>_<idx>.<img>` or any images,
taken in numeric order of their names. INPUT_DIR may also be one video file or one
frame folder. Inputs may have any number of frames; batches of different lengths are
padded and masked, so an input's outputs do not depend on the others in its batch.

Everything else comes from the checkpoint: the model, the evaluation transform (resize,
centre crop; the model normalises), the class names, and the temporal sampling:
`num_segments` frames spread evenly and deterministically (or `time` seconds apart),
as validation clips are sampled. With `--all_frames` every frame of the input goes
into the model instead (per-frame embeddings then cover the whole input; a long input
makes a long clip, and the encoder sees longer clips than in training). Models that
read landmarks (`train_parameters.landmarks`) use `<name>.npz|.pose` in a frame folder
(or beside a video, or in `<name>/` beside it), else MediaPipe Holistic is run on the
input as `data_preprocessing.extract_landmarks` does.

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
checkpoint (a head with fewer than 5 classes leaves the rest empty), and `frames.csv`
one row per input: `input, source, num_frames, used_frames` (the 0-based frame
positions of the N rows, space-separated).

Exit status: 0 when every input was written; 1 when some could not be read (listed
at the end, the others are written); 2 on a bad checkpoint, a missing or empty
INPUT_DIR, or an unknown embedding kind.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from data_preprocessing.video_io import (
    ItemResult,
    positive_int,
    prepare_output,
    report_failures,
)
from utils.checkpoints import LoadedModel, load_checkpoint
from utils.cli import run_cli
from utils.errors import UserError
from utils.file_io import write_atomically
from utils.prediction import (
    EMBEDDING_KINDS,
    ClipOptions,
    PredictionDataset,
    PredictionInput,
    check_extraction,
    collate_inputs,
    list_inputs,
    resolve_kind,
)

TOP_K = 5
PREDICTIONS_FILE = "predictions.csv"
FRAMES_FILE = "frames.csv"


def _non_negative_int(text: str) -> int:
    """argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 predict.py",
        description=__doc__.splitlines()[0],
        epilog="Output formats and details: see the docstring of predict.py.",
    )
    parser.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    parser.add_argument(
        "input",
        type=Path,
        metavar="INPUT_DIR",
        help="a folder of videos and/or frame folders, or one video or frame folder",
    )
    parser.add_argument("output", type=Path, metavar="OUTPUT_DIR")
    parser.add_argument(
        "--embedding_kind",
        required=True,
        metavar="KIND",
        help=f"one of {', '.join(EMBEDDING_KINDS)}",
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
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="processes decoding inputs (default: %(default)s = in this process)",
    )
    return parser.parse_args(argv)


@dataclass
class OutputWriter:
    """Writes each input's file and collects the rows of the two CSV files.

    Args:
        output: OUTPUT_DIR.
        kind: the embedding kind.
        label_names: head -> class names.
        heads_trained: False for a pretraining checkpoint: its heads never learned,
            so predictions.csv gets no rows.
    """

    output: Path
    kind: str
    label_names: dict[str, list[str]]
    heads_trained: bool = True
    predictions: dict[str, list[list]] = field(default_factory=dict)
    frames: dict[str, list] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        """The file written for input `name`."""
        suffix = ".npz" if self.kind == "probabilities" else ".npy"
        return self.output / f"{name}{suffix}"

    def add(self, meta: dict, outputs: dict, row: int, mask: torch.Tensor) -> None:
        """Write one input's file from row `row` of CPU `outputs`; keep its CSV rows.

        Args:
            meta: the clip's `name`, `source`, `positions`, `num_frames`.
            outputs: the model's outputs (`logits`, `spatial`, `temporal`, `cls`).
            row: the input's row in the batch.
            mask: `(T,)` bool, True for the input's real frames.
        """
        probabilities = {
            head: torch.softmax(logits[row].float(), dim=-1).numpy()
            for head, logits in outputs["logits"].items()
        }
        if self.kind == "probabilities":
            arrays = {head: p.astype(np.float32) for head, p in probabilities.items()}
            write_atomically(
                self.path(meta["name"]), lambda file: np.savez(file, **arrays)
            )
        else:
            key = {"spatial": "spatial", "temporal": "temporal", "CLS": "cls"}[
                self.kind
            ]
            value = outputs[key][row]
            value = value if key == "cls" else value[mask]
            array = value.float().numpy()
            write_atomically(self.path(meta["name"]), lambda file: np.save(file, array))
        self.predictions[meta["name"]] = [
            [meta["name"], head, *self._top(head, p)]
            for head, p in probabilities.items()
            if self.heads_trained
        ]
        self.frames[meta["name"]] = [
            meta["name"],
            meta["source"],
            meta["num_frames"],
            " ".join(str(position) for position in meta["positions"]),
        ]

    def _top(self, head: str, probabilities: np.ndarray) -> list:
        """The top-5 class names and probabilities, padded with empty cells."""
        order = np.argsort(-probabilities, kind="stable")[:TOP_K]
        cells: list = []
        for index in order:
            cells += [self.label_names[head][index], f"{probabilities[index]:.6f}"]
        return cells + [""] * (2 * TOP_K - len(cells))

    def finish(self, names: list[str]) -> None:
        """Write predictions.csv and frames.csv, rows in input order."""
        header = ["input", "head"]
        for rank in range(1, TOP_K + 1):
            header += [f"top{rank}", f"top{rank}_probability"]
        tables = {
            PREDICTIONS_FILE: [header]
            + [row for name in names for row in self.predictions.get(name, [])],
            FRAMES_FILE: [["input", "source", "num_frames", "used_frames"]]
            + [self.frames[name] for name in names if name in self.frames],
        }
        for file_name, rows in tables.items():
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(rows)
            data = text.getvalue().encode("utf-8")
            write_atomically(
                self.output / file_name, lambda file, data=data: file.write(data)
            )


def run_prediction(
    loaded: LoadedModel,
    inputs: list[PredictionInput],
    writer: OutputWriter,
    *,
    options: ClipOptions,
    batch_size: int = 8,
    workers: int = 0,
) -> list[ItemResult]:
    """Run the model over every input in batches and write its outputs.

    Args:
        loaded: the model and its config.
        inputs: the inputs, in output order.
        writer: where the results go.
        options: how clips are made.
        batch_size: inputs per forward pass (padded to the longest, masked).
        workers: DataLoader processes reading inputs (0 = this process).

    Returns:
        One result per input, in input order; broken inputs carry an `error`.

    Raises:
        UserError: landmarks must be extracted but mediapipe is missing, or the
            output folder cannot be created.
    """
    check_extraction(inputs, options)
    prepare_output(writer.output)
    loader = DataLoader(
        PredictionDataset(inputs, options),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_inputs,
    )
    results: dict[str, ItemResult] = {}
    with (
        tqdm(
            total=len(inputs), unit="clip", file=sys.stderr, dynamic_ncols=True
        ) as progress,
        torch.inference_mode(),
    ):
        for batches, failed in loader:
            for item in failed:
                results[item["name"]] = ItemResult(
                    item["name"], item["source"], error=item["error"]
                )
            for metas, batch in batches:
                tensors = {
                    key: value.to(loaded.device, non_blocking=True)
                    for key, value in batch.items()
                    if isinstance(value, torch.Tensor)
                }
                outputs = _to_cpu(loaded.model(tensors))
                for row, meta in enumerate(metas):
                    writer.add(meta, outputs, row, batch["mask"][row])
                    results[meta["name"]] = ItemResult(
                        meta["name"], meta["source"], frames=len(meta["positions"])
                    )
            progress.update(len(failed) + sum(len(metas) for metas, _ in batches))
    writer.finish([item.name for item in inputs])
    return [results[item.name] for item in inputs]


def _to_cpu(outputs: dict) -> dict:
    """The model's outputs (tensors and a dict of them) on the CPU."""
    return {
        key: (
            {head: logits.cpu() for head, logits in value.items()}
            if isinstance(value, dict)
            else value.cpu()
        )
        for key, value in outputs.items()
    }


def _run(args: argparse.Namespace) -> int:
    kind = resolve_kind(args.embedding_kind)
    inputs = list_inputs(args.input)
    loaded = load_checkpoint(args.checkpoint)
    pretraining = loaded.config.train_parameters.pre_training
    if pretraining and kind == "probabilities":
        raise UserError(
            f"{args.checkpoint}: a pretraining checkpoint has no trained heads, so no "
            "probabilities; export spatial, temporal or CLS embeddings, or fine-tune "
            "it first (train.py --checkpoint)"
        )
    if pretraining:
        print(
            "note: a pretraining checkpoint has no trained heads: "
            f"{PREDICTIONS_FILE} gets no rows",
            file=sys.stderr,
        )
    options = ClipOptions.from_config(loaded.config, all_frames=args.all_frames)
    writer = OutputWriter(
        args.output, kind, loaded.label_names, heads_trained=not pretraining
    )
    start = time.perf_counter()
    results = run_prediction(
        loaded,
        inputs,
        writer,
        options=options,
        batch_size=args.batch_size,
        workers=args.workers,
    )
    seconds = time.perf_counter() - start
    done = [result for result in results if result.error is None]
    print(
        f"wrote {kind} outputs of {len(done)} of {len(results)} inputs to "
        f"{args.output} ({PREDICTIONS_FILE}, {FRAMES_FILE}); {len(done)} clips in "
        f"{seconds:.1f} s ({len(done) / max(seconds, 1e-9):.1f} clips/s) on "
        f"{loaded.device}"
    )
    return report_failures(results, "inputs")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: arguments without the program name; `sys.argv[1:]` if None.

    Returns:
        0 when every input was written, 1 when some failed (listed on stderr), 2 on
        a user error (bad checkpoint, missing or empty input, unknown kind).
    """
    return run_cli(lambda: _run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
