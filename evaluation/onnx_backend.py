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

from evaluation.checkpoints import LoadedModel
from evaluation.export_sidecar import EMBEDDING_OUTPUTS, FORMAT_VERSION, sidecar_path
from utils.config_loader import parse_config
from utils.errors import UserError


def read_sidecar(onnx_path: Path) -> dict:
    """The sidecar JSON of an exported model.

    Raises:
        UserError: the ONNX file or its sidecar is missing, or the sidecar is not
            one `export.py` wrote (or of another format version).
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise UserError(f"{onnx_path}: no such ONNX file")
    path = sidecar_path(onnx_path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(
            f"{path}: missing; export.py writes it beside {onnx_path.name}, and the "
            "ONNX backend needs it (class names, config)"
        ) from None
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not readable as JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{path}: not an export.py sidecar of format version {FORMAT_VERSION}"
        )
    return meta


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
    """
    path = Path(path)
    meta = read_sidecar(path)
    config = parse_config(meta["config"], source=f"in {sidecar_path(path)}")
    label_names = {head["name"]: list(head["classes"]) for head in meta["heads"]}
    model = OnnxPipeline(path, meta, threads)
    return LoadedModel(model, config, label_names, torch.device("cpu"))
