"""Running an exported model (`export.py`) with onnxruntime instead of torch.

`load_onnx` reads `model.onnx` and its sidecar `model.json` into a `LoadedModel`
whose `model` is an `OnnxPipeline`: called with the batch dict that `collate_clips`
makes, it returns the pipeline's outputs (`logits` per head, `spatial`, `temporal`,
`cls`) as CPU tensors, so the code that runs a torch checkpoint (predict.py's
`run_prediction`, the demo) runs the ONNX file unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from config.loader import config_from_checkpoint
from evaluation.checkpoints import LoadedModel
from evaluation.export_sidecar import (
    EMBEDDING_OUTPUTS,
    FORMAT_VERSION,
    Sidecar,
    input_names,
    sidecar_path,
)
from evaluation.records import validated
from utils.errors import DataError, UserError, quote, shorten
from utils.files import NOT_FOUND, exists, path_problem, read_text


def read_sidecar(onnx_path: Path) -> dict:
    """The sidecar JSON of an exported model, checked (`Sidecar`).

    Raises:
        UserError: the ONNX file or its sidecar is missing, or the sidecar is not
            one `export.py` wrote (or of another format version).
        DataError: the sidecar lacks a field a reader needs, or one has the wrong
            type (naming the file and the field).
    """
    onnx_path = Path(onnx_path)
    problem = path_problem(onnx_path)
    if problem is not None:
        raise UserError(
            f"{onnx_path}: no such ONNX file"
            if problem == NOT_FOUND
            else f"{onnx_path}: the ONNX file {problem}"
        )
    path = sidecar_path(onnx_path)
    if not exists(path):
        raise UserError(
            f"{path}: missing; export.py writes it beside {onnx_path.name}, and the "
            "ONNX backend needs it (class names, config)"
        )
    try:
        meta = json.loads(read_text(path, "ONNX sidecar"))
    except ValueError as error:
        raise DataError(f"{path}: not readable as JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{path}: not an export.py sidecar of format version {FORMAT_VERSION}"
        )
    validated(Sidecar, meta, str(path))
    return meta


def check_graph(session, meta: dict, path: Path) -> None:
    """`DataError` unless the sidecar `meta` describes the graph of `session`: the
    same inputs, every output it names, and one class name per logit of each head.

    Args:
        session: the onnxruntime session of the `.onnx` file.
        meta: its sidecar (see `read_sidecar`).
        path: the `.onnx` file, for the message.
    """
    where = f"{sidecar_path(path)} does not describe {path.name}"
    inputs = [item.name for item in session.get_inputs()]
    listed = [item["name"] for item in meta["inputs"]]
    if sorted(listed) != sorted(inputs):
        raise DataError(
            f"{where}: inputs {quote(listed)}, the graph takes {quote(inputs)}"
        )
    shapes = {item.name: item.shape for item in session.get_outputs()}
    wanted = list(meta["outputs"]["logits"].values()) + list(EMBEDDING_OUTPUTS)
    unknown = [name for name in wanted if name not in shapes]
    if unknown:
        raise DataError(
            f"{where}: no output {quote(unknown[0])} in the graph (its outputs: "
            f"{shorten(', '.join(shapes))})"
        )
    for head in meta["heads"]:
        shape = shapes[head["output"]]
        logits = shape[-1] if shape else None
        if isinstance(logits, int) and logits != len(head["classes"]):
            raise DataError(
                f"{where}: head {quote(head['name'])} has {len(head['classes'])} "
                f"class name(s) for the {logits} logits of {head['output']}"
            )


class OnnxPipeline:
    """An exported pipeline run by onnxruntime, called like `SignPipeline`.

    Args:
        path: the `.onnx` file.
        meta: its sidecar (see `read_sidecar`).
        threads: onnxruntime's intra-op threads; None takes `OMP_NUM_THREADS`
            when set, else onnxruntime's default.
    """

    def __init__(self, path: Path, meta: dict, threads: int | None = None) -> None:
        # pylint: disable-next=import-outside-toplevel
        import onnxruntime

        options = onnxruntime.SessionOptions()
        threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # pylint: disable=broad-exception-caught
            # onnxruntime raises its own exception types for a bad file.
            raise UserError(f"{path}: onnxruntime cannot load it ({error})") from None
        check_graph(self.session, meta, Path(path))
        self.inputs = [item["name"] for item in meta["inputs"]]
        self.heads = dict(meta["outputs"]["logits"])
        self.outputs = list(self.heads.values()) + list(EMBEDDING_OUTPUTS)

    def __call__(self, batch: dict) -> dict:
        """The outputs of one batch.

        Args:
            batch: the tensors of `collate_clips` (`mask` and the model's inputs;
                other keys are ignored).

        Returns:
            `{"logits": {head: (B, C)}, "spatial": (B, T, D), "temporal": (B, T, D'),
            "cls": (B, D')}` float32 CPU tensors.
        """
        missing = [name for name in self.inputs if name not in batch]
        if missing:
            raise UserError(f"the ONNX model needs {', '.join(missing)} in the batch")
        feed = {name: _numpy(batch[name]) for name in self.inputs}
        values = dict(zip(self.outputs, self.session.run(self.outputs, feed)))
        result = {
            "logits": {
                head: torch.from_numpy(values[name])
                for head, name in self.heads.items()
            }
        }
        result.update(
            {name: torch.from_numpy(values[name]) for name in EMBEDDING_OUTPUTS}
        )
        return result


def _numpy(value) -> np.ndarray:
    """A batch tensor as the contiguous CPU array onnxruntime takes."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value)


def load_onnx(path: Path, threads: int | None = None) -> LoadedModel:
    """An exported model as a `LoadedModel` (CPU): its `model` is an `OnnxPipeline`,
    its config and class names come from the sidecar.

    Raises:
        UserError: the file or its sidecar is missing or unreadable.
        DataError: the sidecar does not describe the graph (`check_graph`), or
            lists other inputs than its config's model reads.
    """
    path = Path(path)
    meta = read_sidecar(path)
    config = config_from_checkpoint(meta["config"], source=f"in {sidecar_path(path)}")
    listed, reads = [item["name"] for item in meta["inputs"]], input_names(config)
    if sorted(listed) != sorted(reads):
        raise DataError(
            f"{sidecar_path(path)}: inputs {quote(listed)}, but its config's model "
            f"reads {quote(reads)}"
        )
    label_names = {head["name"]: list(head["classes"]) for head in meta["heads"]}
    model = OnnxPipeline(path, meta, threads)
    return LoadedModel(model, config, label_names, torch.device("cpu"))
