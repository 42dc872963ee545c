"""Running a checkpoint's model over prediction inputs and writing what it gives.

`run_prediction` batches the clips of `evaluation.prediction` through the model;
`OutputWriter` writes one file per input (probabilities or embeddings, atomically)
and the two tables `predictions.csv` (top-5 classes per classification head; the
decoded gloss sequence or sentence of a sequence head) and `frames.csv` (the frames
each clip used). In the `ssvp` layout, embeddings go to
`features/0/<name[:5]>/<name>.pt` with a manifest per split,
`manifests/<split>_features.tsv` (`video_name, length, label`).

A shard of the inputs (`evaluation.shards`) writes its own tables
(`<table>.<shard>.<suffix>`) and `shards/<shard>.json` (its items);
`merge_manifests` there joins the shards' tables. Every input written is recorded
in `progress[.<shard>].jsonl` as soon as its file is in place, with the run's
fingerprint (`run_fingerprint`: the model file's SHA-256 and every setting that
changes an output), so a killed run started again skips the inputs already written,
and a run with another model or other settings writes every input again.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field, StrictInt, StrictStr
from torch.utils.data import DataLoader
from tqdm import tqdm

from evaluation.checkpoints import (
    LoadedModel,
    load_checkpoint,
    refuse_precomputed_features,
    resolve_checkpoint,
    sequence_heads,
)
from evaluation.ensemble import average_checkpoints
from evaluation.onnx_backend import load_onnx
from evaluation.output_files import spreadsheet_safe, write_rows
from evaluation.prediction import (
    ClipOptions,
    PredictionDataset,
    PredictionInput,
    check_extraction,
    check_input,
    collate_inputs,
    list_inputs,
    resolve_kind,
)
from evaluation.records import Record, validated
from evaluation.shards import (
    FRAMES_FILE,
    manifest_fields,
    ShardRequest,
    select_shard,
    write_manifests,
    write_shard_record,
)
from models.heads.sequence import SequenceOutputs
from utils.errors import DataError, UserError, quote
from utils.files import (
    NOT_FOUND,
    path_problem,
    prepare_output,
    write_error,
    write_output,
)
from utils.item_results import ItemResult, report_failures

TOP_K = 5
PREDICTIONS_FILE = "predictions.csv"
PROGRESS_FILE = "progress.jsonl"
LAYOUTS = ("flat", "ssvp")
#: What to do after a failed write: the inputs already written are kept.
RESUME_HINT = (
    "the inputs written before are recorded: free some space (or fix the "
    "folder), then run the same command again to resume"
)


class ProgressRecord(Record):
    """One line of `progress[.<shard>].jsonl`: an input whose file is in place, and
    its rows of the tables (see `OutputWriter.add`).

    Attributes:
        name: the input's name.
        run: the fingerprint of the run that wrote it (`run_fingerprint`); None in
            records written before runs had one.
        length: the rows of its embedding (its manifest's `length`).
        predictions: its rows of predictions.csv.
        frames: its row of frames.csv: name, source, frame count, frames used.
    """

    name: StrictStr = Field(min_length=1)
    run: StrictStr | None = None
    length: Annotated[StrictInt, Field(ge=0)]
    predictions: list[list[StrictStr]]
    frames: tuple[StrictStr, StrictStr, StrictInt, StrictStr]


@dataclass
class OutputWriter:
    """Writes each input's file and collects the rows of the two CSV files.

    Args:
        output: OUTPUT_DIR.
        kind: the embedding kind.
        label_names: head -> class names.
        heads_trained: False for a pretraining checkpoint: its heads never learned,
            so predictions.csv gets no rows.
        layout: `flat` (`<name>.npy|.npz`) or `ssvp` (`features/0/<prefix>/<name>.pt`
            and the manifests).
        shard: the shard's tag in the table names ("" for all inputs).
        manifest: name -> (label, split), for the ssvp manifests.
        run: the run's fingerprint (`run_fingerprint`): only inputs recorded with
            the same one are skipped when resuming.
        sequence_labels: the sequence heads' label kinds (`sequence`: CTC's class
            ids, written as class names; `text`: sentences), by head.
    """

    output: Path
    kind: str
    label_names: dict[str, list[str]]
    heads_trained: bool = True
    layout: str = "flat"
    shard: str = ""
    manifest: dict[str, tuple[str, str]] = field(default_factory=dict)
    run: str = ""
    sequence_labels: dict[str, str] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    #: Inputs an earlier run wrote with another model or other settings.
    stale: set[str] = field(default_factory=set)

    def path(self, name: str) -> Path:
        """The file written for input `name`."""
        if self.layout == "ssvp":
            return self.output / "features" / "0" / name[:5] / f"{name}.pt"
        suffix = ".npz" if self.kind == "probabilities" else ".npy"
        return self.output / f"{name}{suffix}"

    def table(self, name: str) -> Path:
        """A table of this writer's inputs: `name`, with the shard's tag."""
        if not self.shard:
            return self.output / name
        stem, dot, suffix = name.rpartition(".")
        return self.output / f"{stem}.{self.shard}{dot}{suffix}"

    def resume(self) -> set[str]:
        """The inputs written by an earlier run of this command with this model and
        these settings (recorded in the progress file with this `run`, their file in
        place); their rows are kept. Inputs recorded by a run with another model or
        other settings are noted in `stale` and written again.

        Raises:
            DataError: the progress file is not a regular file, or a line of it is
                JSON but not a `ProgressRecord` (naming the file and line).
        """
        path = self.table(PROGRESS_FILE)
        problem = path_problem(path)
        if problem == NOT_FOUND:
            return set()
        if problem is not None:
            raise DataError(f"{path}: the progress file {problem}")
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as error:
            raise DataError(f"{path}: cannot read ({error.strerror})") from None
        for number, line in enumerate(lines, 1):
            try:
                data = json.loads(line)
            except ValueError:  # a line a killed run was writing
                continue
            if not isinstance(data, dict):
                raise DataError(
                    f"{path}:{number}: not a progress record (a JSON object), got "
                    f"{quote(data)}; delete the file to write every input again"
                )
            record = validated(ProgressRecord, data, f"{path}:{number}").model_dump()
            if record["run"] != self.run:
                self.stale.add(record["name"])
                self.records.pop(record["name"], None)
            elif self.path(record["name"]).is_file():
                self.records[record["name"]] = record
                self.stale.discard(record["name"])
        return set(self.records)

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
            if head not in self.sequence_labels
        }
        path = self.path(meta["name"])
        length = 1
        if self.kind == "probabilities":
            arrays = {head: p.astype(np.float32) for head, p in probabilities.items()}
            write_output(path, lambda file: np.savez(file, **arrays), RESUME_HINT)
        else:
            key = {"spatial": "spatial", "temporal": "temporal", "CLS": "cls"}[
                self.kind
            ]
            value = outputs[key][row]
            value = value if key == "cls" else value[mask]
            length = 1 if key == "cls" else len(value)
            if self.layout == "ssvp":
                tensor = value.float().clone()
                write_output(path, lambda file: torch.save(tensor, file), RESUME_HINT)
            else:
                array = value.float().numpy()
                write_output(path, lambda file: np.save(file, array), RESUME_HINT)
        record = {
            "name": meta["name"],
            "run": self.run,
            "length": length,
            "predictions": (
                [
                    [meta["name"], head, *self._top(head, p)]
                    for head, p in probabilities.items()
                ]
                + [
                    [meta["name"], head, *self._hypothesis(head, outputs, row)]
                    for head in self.sequence_labels
                ]
                if self.heads_trained
                else []
            ),
            "frames": [
                meta["name"],
                str(meta["source"]),
                meta["num_frames"],
                " ".join(str(position) for position in meta["positions"]),
            ],
        }
        self.records[meta["name"]] = record
        # After the file is in place: a recorded input is a written one.
        progress_path = self.table(PROGRESS_FILE)
        try:
            with progress_path.open("a", encoding="utf-8") as progress:
                progress.write(json.dumps(record) + "\n")
        except OSError as error:
            raise write_error(progress_path, error, RESUME_HINT) from None

    def _top(self, head: str, probabilities: np.ndarray) -> list:
        """The top-5 class names and probabilities, padded with empty cells."""
        order = np.argsort(-probabilities, kind="stable")[:TOP_K]
        cells: list = []
        for index in order:
            cells += [self.label_names[head][index], f"{probabilities[index]:.6f}"]
        return cells + [""] * (2 * TOP_K - len(cells))

    def _hypothesis(self, head: str, outputs: dict, row: int) -> list[str]:
        """A sequence head's decoded output as a predictions.csv row's cells: the
        gloss sequence (class names) or sentence as `top1`, no probability."""
        hypothesis = outputs["logits"][head].hypotheses[row]
        if self.sequence_labels[head] == "sequence":
            names = self.label_names[head]
            hypothesis = " ".join(names[int(i)] for i in hypothesis.split())
        return [hypothesis] + [""] * (2 * TOP_K - 1)

    def finish(self, names: list[str]) -> None:
        """Write predictions.csv and frames.csv (and the ssvp manifests), rows in
        input order."""
        header = ["input", "head"]
        for rank in range(1, TOP_K + 1):
            header += [f"top{rank}", f"top{rank}_probability"]
        done = [self.records[name] for name in names if name in self.records]
        # Opened in spreadsheets: a class or input name is never run as a formula.
        write_rows(
            self.table(PREDICTIONS_FILE),
            [header]
            + [
                [spreadsheet_safe(cell) for cell in row]
                for record in done
                for row in record["predictions"]
            ],
        )
        write_rows(
            self.table(FRAMES_FILE),
            [["input", "source", "num_frames", "used_frames"]]
            + [record["frames"] for record in done],
        )
        if self.layout == "ssvp":
            write_manifests(self.table, done, self.manifest)


def run_prediction(
    loaded: LoadedModel,
    inputs: list[PredictionInput],
    writer: OutputWriter,
    *,
    options: ClipOptions,
    batch_size: int = 8,
    workers: int = 0,
    names: list[str] | None = None,
) -> list[ItemResult]:
    """Run the model over every input in batches and write its outputs.

    Args:
        loaded: the model and its config.
        inputs: the inputs, in output order.
        writer: where the results go.
        options: how clips are made.
        batch_size: inputs per forward pass (padded to the longest, masked).
        workers: DataLoader processes reading inputs (0 = this process).
        names: every input of the tables, in order (default: `inputs`'; a resumed
            run passes the ones written before too).

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
    writer.finish(names if names is not None else [item.name for item in inputs])
    return [results[item.name] for item in inputs]


def _to_cpu(outputs: dict) -> dict:
    """The model's outputs (tensors and a dict of them) on the CPU; a sequence
    head's outputs keep only their hypotheses."""
    return {
        key: (
            {
                head: (
                    logits.cpu()
                    if isinstance(logits, torch.Tensor)
                    else SequenceOutputs(None, logits.lengths.cpu(), logits.hypotheses)
                )
                for head, logits in value.items()
            }
            if isinstance(value, dict)
            else value.cpu()
        )
        for key, value in outputs.items()
    }


def _load_model(path: Path, backend: str) -> LoadedModel:
    """The model of CHECKPOINT for `--backend`: a train.py checkpoint (torch) or an
    export.py `.onnx` file (onnxruntime).

    Raises:
        UserError: the file does not suit the backend, or cannot be loaded.
    """
    is_onnx = Path(path).suffix.lower() == ".onnx"
    if backend == "onnx" and not is_onnx:
        raise UserError(
            f"--backend onnx: {path} is not an .onnx file; give the model.onnx that "
            "export.py wrote, or drop --backend onnx for a train.py checkpoint"
        )
    if backend != "onnx" and is_onnx:
        raise UserError(
            f"{path} is an ONNX model: add --backend onnx to run it with onnxruntime"
        )
    return load_onnx(path) if backend == "onnx" else load_checkpoint(path)


def run_fingerprint(model_file: Path, settings: dict) -> str:
    """What makes two predict runs write the same outputs: the model file's content
    (SHA-256; an ONNX model's sidecar too) and the settings that change an output."""
    digest = hashlib.sha256()
    files = [Path(model_file)]
    if files[0].suffix.lower() == ".onnx":
        files.append(files[0].with_suffix(".json"))
    for path in files:
        try:
            with path.open("rb") as file:
                for block in iter(lambda file=file: file.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            digest.update(str(path).encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PredictOptions:
    """What `predict.py` asks for (its options, see its docstring).

    Attributes:
        checkpoint: a train.py checkpoint, a model zoo name, or (`backend` onnx)
            an export.py model.onnx.
        input: a folder of inputs, or one video or frame folder.
        output: the output folder.
        embedding_kind: probabilities, spatial, temporal or CLS.
        batch_size: inputs per forward pass.
        all_frames: every frame of each input instead of num_segments sampled ones.
        workers: processes decoding inputs (0: in this process).
        layout: flat or ssvp.
        backend: torch or onnx.
        shard: the shard of the inputs to predict.
        ensemble: more checkpoints whose class probabilities are averaged with
            `checkpoint`'s (`embedding_kind` probabilities, torch backend).
    """

    checkpoint: Path
    input: Path
    output: Path
    embedding_kind: str = "CLS"
    batch_size: int = 8
    all_frames: bool = False
    workers: int = 0
    layout: str = "flat"
    backend: str = "torch"
    shard: ShardRequest = field(default_factory=ShardRequest)
    ensemble: tuple[Path, ...] = ()


def _averaged(loaded: LoadedModel, request: PredictOptions) -> LoadedModel:
    """`loaded` with its model replaced by the average of its and the ensemble
    members' class probabilities (`evaluation.ensemble.average_checkpoints`)."""
    if request.embedding_kind != "probabilities" or request.backend != "torch":
        raise UserError(
            "--ensemble needs --embedding_kind probabilities and train.py checkpoints"
        )
    averaged = average_checkpoints(
        loaded,
        str(request.checkpoint),
        request.ensemble,
        "average (--ensemble); predict with each alone",
    )
    count = 1 + len(request.ensemble)
    print(
        f"note: averaging the class probabilities of {count} checkpoints: "
        f"{count} forward passes per input",
        file=sys.stderr,
    )
    return averaged


def _ensemble_fingerprint(ensemble: tuple[Path, ...]) -> dict:
    """The ensemble members' part of a run's fingerprint: their files' digests, so a
    resumed run skips only what the same members wrote."""
    if not ensemble:
        return {}
    return {
        "ensemble": [run_fingerprint(resolve_checkpoint(path), {}) for path in ensemble]
    }


def predict_command(request: PredictOptions) -> int:
    """`predict.py`: every input (of the shard) through the checkpoint's model, the
    files written; 0 when every input was written, 1 when some failed (listed on
    stderr)."""
    kind = resolve_kind(request.embedding_kind)
    if request.layout == "ssvp" and kind == "probabilities":
        raise UserError(
            "--layout ssvp writes embeddings: choose --embedding_kind spatial, "
            "temporal or CLS"
        )
    check_input(request.input)
    loaded = _load_model(request.checkpoint, request.backend)
    refuse_precomputed_features(
        loaded.config,
        request.checkpoint,
        "predict; test.py evaluates it on a features root",
    )
    labels = loaded.config.head_labels()
    sequence_labels = {head: labels[head] for head in sequence_heads(loaded.config)}
    if kind == "probabilities" and len(sequence_labels) == len(loaded.label_names):
        raise UserError(
            f"{request.checkpoint}: every head is a sequence head ("
            f"{', '.join(sequence_labels)}), so there are no class probabilities; "
            "choose --embedding_kind spatial, temporal or CLS (predictions.csv "
            "holds the decoded outputs with any kind)"
        )
    inputs = list_inputs(request.input, loaded.config)
    if request.ensemble:
        loaded = _averaged(loaded, request)
    pretraining = loaded.config.train_parameters.pre_training
    if pretraining and kind == "probabilities":
        raise UserError(
            f"{request.checkpoint}: a pretraining checkpoint has no trained heads, so "
            "no probabilities; export spatial, temporal or CLS embeddings, or "
            "fine-tune it first (train.py --checkpoint)"
        )
    if pretraining:
        print(
            "note: a pretraining checkpoint has no trained heads: "
            f"{PREDICTIONS_FILE} gets no rows",
            file=sys.stderr,
        )
    shard = select_shard(request.shard, len(inputs))
    if shard is not None:
        inputs = inputs[shard.start : shard.end]
        write_shard_record(request.output, shard, [item.name for item in inputs])
    options = ClipOptions.from_config(loaded.config, all_frames=request.all_frames)
    model_file = (
        request.checkpoint
        if request.backend == "onnx"
        else resolve_checkpoint(request.checkpoint)
    )
    run = run_fingerprint(
        model_file,
        {
            "kind": kind,
            "all_frames": request.all_frames,
            "layout": request.layout,
            **_ensemble_fingerprint(request.ensemble),
        },
    )
    writer = OutputWriter(
        request.output,
        kind,
        loaded.label_names,
        heads_trained=not pretraining,
        layout=request.layout,
        shard=shard.tag if shard is not None else "",
        manifest=manifest_fields(inputs, loaded.label_names, sequence_labels),
        run=run,
        sequence_labels=sequence_labels,
    )
    done = writer.resume()
    again = writer.stale & {item.name for item in inputs}
    if again:
        print(
            f"note: {len(again)} of {len(inputs)} inputs were written by an earlier "
            "run with another model or other settings: written again",
            file=sys.stderr,
        )
    todo = [item for item in inputs if item.name not in done]
    if done:
        print(
            f"note: {len(inputs) - len(todo)} of {len(inputs)} inputs were written by "
            "an earlier run: skipped",
            file=sys.stderr,
        )
    start = time.perf_counter()
    results = run_prediction(
        loaded,
        todo,
        writer,
        options=options,
        batch_size=request.batch_size,
        workers=request.workers,
        names=[item.name for item in inputs],
    )
    seconds = time.perf_counter() - start
    done_now = [result for result in results if result.error is None]
    where = (
        f"{request.output} ({shard.tag})" if shard is not None else str(request.output)
    )
    print(
        f"wrote {kind} outputs of {len(done_now)} of {len(results)} inputs to "
        f"{where}; {len(done_now)} clips in "
        f"{seconds:.1f} s ({len(done_now) / max(seconds, 1e-9):.1f} clips/s) on "
        f"{loaded.device}"
    )
    return report_failures(results, "inputs")
