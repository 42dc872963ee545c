"""A checkpoint's whole pipeline as ONNX, a JSON sidecar beside it, and its self-check.

`export_checkpoint` writes `model.onnx` (feature extractor, temporal encoder and every
head in one graph, batch and time axes dynamic) with torch's `torch.export`-based
exporter, and `model.json` with what a consumer needs: the inputs (names, layout,
dtype), the preprocessing the model expects (frame size, landmark options, temporal
sampling), the outputs, and every head's class names (gloss words, HamNoSys symbol
names). It then runs the exported file with onnxruntime on generated clips of two
sizes and compares it with torch: the largest logit difference and the top-1
agreement are reported, and a difference above the tolerance is an error. The graph's
input and output names, the input layouts and the sidecar itself are
`evaluation.export_sidecar`'s.
"""

from __future__ import annotations

import copy
import json
import os
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from config.schema import SignpipeConfig
from evaluation.checkpoints import (
    LoadedModel,
    load_checkpoint,
    refuse_precomputed_features,
    refuse_sequence_heads,
)
from evaluation.export_sidecar import (
    EMBEDDING_OUTPUTS,
    frame_size,
    input_names,
    logits_output,
    num_points,
    sidecar,
    sidecar_path,
)
from models.feature_extractors.cnn import FrameFeatureExtractor
from models.feature_extractors.landmark_encoders import PointEncoder, point_inputs
from models.feature_extractors.landmarks import FusedExtractor
from utils.errors import UserError
from utils.files import prepare_output, write_output

#: Largest allowed |logit difference| between onnxruntime and torch.
DEFAULT_TOLERANCE = 1e-4
#: ONNX operator set of the exported graph.
OPSET = 18


class DenseFrameFeatures(nn.Module):
    """A `FrameFeatureExtractor` that runs its backbone over every frame, padding too,
    and zeroes the padded frames' features afterwards.

    The extractor picks the real frames with a boolean mask, a shape known only at
    run time that the exporter cannot trace; in eval mode each image goes through the
    backbone alone, so the real frames' features are the same either way.

    Args:
        extractor: the trained extractor (its backbone, projection, mean and std).
    """

    def __init__(self, extractor: FrameFeatureExtractor) -> None:
        super().__init__()
        self.extractor = extractor
        self.out_dim = extractor.out_dim

    def forward(self, batch: dict) -> torch.Tensor:
        """`(B, T, out_dim)` features of `frames` `(B, T, C, H, W)`, zero where
        `mask` `(B, T)` is False."""
        frames, mask = batch["frames"], batch["mask"]
        extractor = self.extractor
        images = (frames.flatten(0, 1).float() - extractor.mean) / extractor.std
        features = extractor.projection(extractor.backbone(images))
        features = features.reshape(frames.shape[0], frames.shape[1], -1)
        return features * mask.unsqueeze(-1).to(features.dtype)


def _dense_standardised_inputs(self: PointEncoder, batch: dict) -> torch.Tensor:
    """`PointEncoder.standardised_inputs` over every frame: in eval mode the batch
    norm uses its running statistics, so normalising the padded frames too and
    zeroing them afterwards gives the real frames the same values, without the
    boolean selection the exporter cannot trace."""
    inputs = point_inputs(batch, self.velocities, self.hands)
    flat = inputs.flatten(2)
    normed = self.input_norm(flat.flatten(0, 1)).view(flat.shape).to(flat.dtype)
    return (normed * batch["mask"].unsqueeze(-1).to(flat.dtype)).view(inputs.shape)


def exportable(model: nn.Module) -> nn.Module:
    """A CPU copy of the pipeline in eval mode that the exporter can trace: its image
    extractor (alone or in a fused one) is `DenseFrameFeatures`, and the landmark
    point encoders standardise every frame (`_dense_standardised_inputs`)."""
    model = copy.deepcopy(model).cpu().eval()
    extractor = model.feature_extractor
    if isinstance(extractor, FrameFeatureExtractor):
        model.feature_extractor = DenseFrameFeatures(extractor)
    elif isinstance(extractor, FusedExtractor) and isinstance(
        extractor.frames, FrameFeatureExtractor
    ):
        extractor.frames = DenseFrameFeatures(extractor.frames)
    for module in model.modules():
        if isinstance(module, PointEncoder):
            module.standardised_inputs = types.MethodType(
                _dense_standardised_inputs, module
            )
    return model


class TensorPipeline(nn.Module):
    """The pipeline with tensors in and a tuple out, as the ONNX graph has them.

    Args:
        model: the pipeline (`model(batch)` as `SignPipeline`).
        inputs: the input names, in the order `forward` takes them.
        heads: the head names, in output order.
    """

    def __init__(self, model: nn.Module, inputs: list[str], heads: list[str]) -> None:
        super().__init__()
        self.model = model
        self.inputs = list(inputs)
        self.heads = list(heads)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every head's `(B, C)` logits, then `spatial` `(B, T, D)`, `temporal`
        `(B, T, D')` and `cls` `(B, D')`."""
        outputs = self.model(dict(zip(self.inputs, tensors)))
        return tuple(outputs["logits"][head] for head in self.heads) + tuple(
            outputs[name] for name in EMBEDDING_OUTPUTS
        )


def generated_inputs(
    config: SignpipeConfig, batch: int, time: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Random inputs of the model's layout: `batch` clips of up to `time` frames, the
    last one padded to half its length (so that masking is exercised)."""
    generator = torch.Generator().manual_seed(seed)
    inputs: dict[str, torch.Tensor] = {}
    if config.uses_frames():
        side = frame_size(config) or config.augmentations_parameters.resize_size
        inputs["frames"] = torch.randint(
            0, 256, (batch, time, 3, side, side), dtype=torch.uint8, generator=generator
        )
    if config.uses_landmarks():
        points = num_points(config)
        inputs["landmarks"] = torch.randn(batch, time, points, 3, generator=generator)
        inputs["landmark_mask"] = (
            torch.rand(batch, time, points, generator=generator) > 0.2
        )
    mask = torch.ones(batch, time, dtype=torch.bool)
    mask[-1, max(1, time // 2) :] = False
    inputs["mask"] = mask
    return inputs


def _dynamic_shapes(config: SignpipeConfig, names: list[str]) -> tuple:
    """Batch and time dynamic on every input; height and width on `frames` too when
    the config fixes no frame size."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    time = torch.export.Dim("time", min=1, max=65536)
    shapes = []
    for name in names:
        axes = {0: batch, 1: time}
        if name == "frames" and frame_size(config) is None:
            axes.update(
                {
                    3: torch.export.Dim("height", min=16, max=8192),
                    4: torch.export.Dim("width", min=16, max=8192),
                }
            )
        shapes.append(axes)
    return (tuple(shapes),)


@dataclass
class ExportReport:
    """What the self-check measured.

    Attributes:
        onnx_path: the ONNX file written.
        sidecar_path: the JSON written beside it.
        max_abs_diff: the largest |logit difference| over heads and checked sizes.
        top1_agreement: the fraction of (clip, head) pairs with the same top-1 class.
        sizes: the `(batch, time)` sizes checked.
        per_head: head -> its largest |logit difference|.
    """

    onnx_path: Path
    sidecar_path: Path
    max_abs_diff: float
    top1_agreement: float
    sizes: list[tuple[int, int]]
    per_head: dict[str, float] = field(default_factory=dict)


def compare_with_torch(
    wrapper: TensorPipeline,
    config: SignpipeConfig,
    session,
    sizes: list[tuple[int, int]],
) -> tuple[float, float, dict[str, float]]:
    """onnxruntime vs torch on generated inputs of each `(batch, time)` size.

    Returns:
        The largest |logit difference|, the top-1 agreement over (clip, head) pairs,
        and each head's largest difference.
    """
    per_head = {head: 0.0 for head in wrapper.heads}
    agree = total = 0
    for index, (batch, time) in enumerate(sizes):
        inputs = generated_inputs(config, batch, time, seed=index)
        with torch.inference_mode():
            expected = wrapper(*(inputs[name] for name in wrapper.inputs))
        got = session.run(
            [logits_output(head) for head in wrapper.heads],
            {name: inputs[name].numpy() for name in wrapper.inputs},
        )
        for head, reference, actual in zip(wrapper.heads, expected, got):
            reference = reference.numpy()
            per_head[head] = max(
                per_head[head], float(np.abs(reference - actual).max())
            )
            agree += int((reference.argmax(-1) == actual.argmax(-1)).sum())
            total += len(reference)
    return max(per_head.values()), agree / max(total, 1), per_head


def _export_program(
    wrapper: TensorPipeline, config: SignpipeConfig, example: dict
) -> "torch.onnx.ONNXProgram":
    """torch.export -> ONNX, quietly (its progress lines and warnings go nowhere)."""
    output_names = [logits_output(head) for head in wrapper.heads] + list(
        EMBEDDING_OUTPUTS
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.onnx.export(
                wrapper,
                tuple(example[name] for name in wrapper.inputs),
                dynamo=True,
                input_names=wrapper.inputs,
                output_names=output_names,
                dynamic_shapes=_dynamic_shapes(config, wrapper.inputs),
                opset_version=OPSET,
                verbose=False,
            )
        except Exception as error:  # pylint: disable=broad-exception-caught
            # The exporter's errors are long reports; the first line says what failed.
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UserError(
                f"the model ({config.feature_extractor.name} + "
                f"{config.transformer.name}) could not be exported to ONNX: "
                f"{type(error).__name__}: {first}"
            ) from None


def export_model(
    loaded: LoadedModel,
    output: Path,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    sizes: list[tuple[int, int]] | None = None,
) -> ExportReport:
    """Export a loaded checkpoint to `output` (+ its sidecar) and check it.

    Args:
        loaded: the checkpoint's model, config and class names.
        output: the `.onnx` file to write (the sidecar goes beside it as `.json`).
        tolerance: the largest allowed |logit difference| against torch.
        sizes: the `(batch, time)` sizes checked; default two different ones.

    Raises:
        UserError: the export failed, a file cannot be written (no permission, a
            full disk: naming it and the cause), or onnxruntime disagrees with
            torch (logits differ by more than `tolerance`, or a top-1 class
            differs); the files are written anyway, so that they can be inspected.
    """
    # pylint: disable-next=import-outside-toplevel
    import onnxruntime

    output = Path(output)
    if output.suffix.lower() != ".onnx":
        raise UserError(f"--output {output}: the file name must end in .onnx")
    if output.is_dir():
        raise UserError(f"--output {output} is a folder; name the .onnx file to write")
    prepare_output(output.parent)
    if not os.access(output.parent, os.W_OK | os.X_OK):
        # Said now, not after the minutes the export takes.
        raise UserError(f"--output {output}: cannot write in {output.parent}")
    config = loaded.config
    segments = config.train_parameters.num_segments
    sizes = sizes or [(2, segments), (3, segments + 3)]
    wrapper = TensorPipeline(
        exportable(loaded.model), input_names(config), list(loaded.label_names)
    ).eval()
    program = _export_program(wrapper, config, generated_inputs(config, *sizes[0]))
    proto = program.model_proto
    write_output(output, lambda file: file.write(proto.SerializeToString()))
    meta = json.dumps(sidecar(loaded, output.name), indent=2, ensure_ascii=False)
    write_output(sidecar_path(output), lambda file: file.write(meta.encode()))
    session = onnxruntime.InferenceSession(
        str(output), providers=["CPUExecutionProvider"]
    )
    max_diff, agreement, per_head = compare_with_torch(wrapper, config, session, sizes)
    report = ExportReport(
        output, sidecar_path(output), max_diff, agreement, sizes, per_head
    )
    if max_diff > tolerance or agreement < 1.0:
        raise UserError(
            f"{output}: onnxruntime disagrees with torch on generated input (max "
            f"|logit difference| {max_diff:.3g} > {tolerance:g} or top-1 agreement "
            f"{agreement:.3f} < 1); the files are kept for inspection"
        )
    return report


def export_checkpoint(
    checkpoint: Path, output: Path, *, tolerance: float = DEFAULT_TOLERANCE
) -> ExportReport:
    """`export.py`: load a `train.py` checkpoint on the CPU and export it (see
    `export_model`)."""
    loaded = load_checkpoint(Path(checkpoint), torch.device("cpu"))
    if loaded.config.train_parameters.pre_training:
        raise UserError(
            f"{checkpoint}: a pretraining checkpoint has no trained heads; fine-tune "
            "it first (train.py --checkpoint), then export that"
        )
    for refuse in (refuse_sequence_heads, refuse_precomputed_features):
        refuse(loaded.config, checkpoint, "export; test.py evaluates the checkpoint")
    return export_model(loaded, output, tolerance=tolerance)


def export_command(checkpoint: Path, output: Path, tolerance: float | None) -> int:
    """Run `export.py` and print what it wrote and measured; 0 when it checks out.
    `tolerance` None is `DEFAULT_TOLERANCE`."""
    report = export_checkpoint(
        checkpoint, output, tolerance=tolerance or DEFAULT_TOLERANCE
    )
    sizes = ", ".join(f"{batch}x{time}" for batch, time in report.sizes)
    print(
        f"wrote {report.onnx_path} ({report.onnx_path.stat().st_size / 1e6:.1f} MB) "
        f"and {report.sidecar_path}"
    )
    print(
        f"onnxruntime vs torch on generated clips (batch x time: {sizes}): max |logit "
        f"difference| {report.max_abs_diff:.3g}, top-1 agreement "
        f"{report.top1_agreement:.3f}"
    )
    return 0
