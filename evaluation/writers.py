"""Running a checkpoint's model over prediction inputs and writing what it gives.

`run_prediction` batches the clips of `evaluation.prediction` through the model;
`OutputWriter` writes one file per input (probabilities or embeddings, atomically)
and the two tables `predictions.csv` (top-5 classes per head) and `frames.csv` (the
frames each clip used).
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

from data_preprocessing.video_io import ItemResult, prepare_output, report_failures
from evaluation.checkpoints import LoadedModel, load_checkpoint
from evaluation.prediction import (
    ClipOptions,
    PredictionDataset,
    PredictionInput,
    check_extraction,
    collate_inputs,
    list_inputs,
    resolve_kind,
)
from utils.errors import UserError
from utils.file_io import write_atomically

TOP_K = 5
PREDICTIONS_FILE = "predictions.csv"
FRAMES_FILE = "frames.csv"


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


def predict_command(args: argparse.Namespace) -> int:
    """`predict.py`: every input through the checkpoint's model, the files written;
    0 when every input was written, 1 when some failed (listed on stderr)."""
    kind = resolve_kind(args.embedding_kind)
    if not args.input.exists():
        raise UserError(f"input {args.input} does not exist")
    loaded = load_checkpoint(args.checkpoint)
    inputs = list_inputs(args.input, loaded.config)
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
