"""What an exported model looks like from outside: its input and output names, each
input's layout, and the JSON sidecar written beside `model.onnx`.

`export.py` (`evaluation.export`) writes the sidecar with `sidecar`; a consumer (the
ONNX backend, an app) reads the inputs' names, shapes and dtypes, the preprocessing
the model expects and every head's class names from it. `Sidecar` is what a reader
may rely on, checked before use.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, StrictStr, model_validator

from config.loader import config_to_dict
from config.schema import SignpipeConfig
from evaluation.checkpoints import LoadedModel
from evaluation.records import Record
from utils.errors import quote
from utils.landmark_points import COMPONENT_SIZES

#: The sidecar's format version; a consumer refuses a version it does not know.
FORMAT_VERSION = 1
#: Embedding outputs after the heads' logits, as `SignPipeline` names them.
EMBEDDING_OUTPUTS = ("spatial", "temporal", "cls")


class SidecarInput(Record):
    """One input of the graph, as the sidecar lists it."""

    name: StrictStr


class SidecarOutputs(Record):
    """The graph's outputs: every head's logits output, by head."""

    logits: dict[StrictStr, StrictStr] = Field(min_length=1)


class SidecarHead(Record):
    """One head: its logits output and its class names, in class-id order."""

    name: StrictStr
    output: StrictStr
    classes: list[StrictStr] = Field(min_length=1)


class Sidecar(Record):
    """What a reader of the sidecar relies on besides its `format_version`
    (`sidecar` writes more)."""

    inputs: list[SidecarInput] = Field(min_length=1)
    outputs: SidecarOutputs
    heads: list[SidecarHead] = Field(min_length=1)
    config: dict

    @model_validator(mode="after")
    def _heads_match_outputs(self) -> Sidecar:
        logits = self.outputs.logits
        for index, head in enumerate(self.heads):
            if logits.get(head.name) != head.output:
                raise ValueError(
                    f"heads.{index}.output: {quote(head.output)}, but "
                    f"outputs.logits gives {quote(logits.get(head.name))} for head "
                    f"{quote(head.name)}"
                )
        names = [head.name for head in self.heads]
        if sorted(names) != sorted(logits):
            raise ValueError(
                f"heads: {quote(names)}, but outputs.logits has the heads "
                f"{quote(list(logits))}"
            )
        return self


def logits_output(head: str) -> str:
    """The ONNX output name of a head's logits."""
    return f"logits_{head}"


def sidecar_path(onnx_path: Path) -> Path:
    """The JSON written beside an ONNX file: `model.onnx` -> `model.json`."""
    return Path(onnx_path).with_suffix(".json")


def input_names(config: SignpipeConfig) -> list[str]:
    """The model's inputs, in graph order: `frames` and/or `landmarks` +
    `landmark_mask`, then `mask`."""
    names = ["frames"] if config.uses_frames() else []
    if config.uses_landmarks():
        names += ["landmarks", "landmark_mask"]
    return names + ["mask"]


def frame_size(config: SignpipeConfig) -> int | None:
    """The square frame side the model sees (the centre crop), or None when the
    evaluation transform leaves it free (then height and width are dynamic too)."""
    augmentations = config.augmentations_parameters
    return augmentations.center_crop_size if augmentations.apply_center_crop else None


def num_points(config: SignpipeConfig) -> int:
    """K: the landmark points of a frame, over the config's components."""
    return sum(COMPONENT_SIZES[c] for c in config.landmarks_parameters.components)


def _layouts(config: SignpipeConfig) -> dict[str, dict]:
    """Each input's shape, dtype and meaning, as the sidecar describes them."""
    side = frame_size(config)
    size = [side, side] if side else ["height", "width"]
    points = num_points(config) if config.uses_landmarks() else None
    return {
        "frames": {
            "shape": ["batch", "time", 3, *size],
            "dtype": "uint8",
            "meaning": "RGB frames 0-255; the model scales and normalises them",
        },
        "landmarks": {
            "shape": ["batch", "time", points, 3],
            "dtype": "float32",
            "meaning": "landmark x, y, z of the components in order, normalised as "
            "landmarks_parameters says (datasets.landmarks.prepare_clip); 0 where "
            "absent",
        },
        "landmark_mask": {
            "shape": ["batch", "time", points],
            "dtype": "bool",
            "meaning": "True where a point was detected",
        },
        "mask": {
            "shape": ["batch", "time"],
            "dtype": "bool",
            "meaning": "True for real frames, False for padding at the end",
        },
    }


def sidecar(loaded: LoadedModel, onnx_file: str) -> dict:
    """What a consumer of the ONNX file needs, as a JSON-ready dict."""
    config = loaded.config
    augmentations = config.augmentations_parameters
    train = config.train_parameters
    layouts = _layouts(config)
    heads = list(loaded.label_names)
    modes = config.head_modes()
    return {
        "format_version": FORMAT_VERSION,
        "onnx_file": onnx_file,
        "inputs": [
            {"name": name, **layouts[name]} for name in input_names(loaded.config)
        ],
        "outputs": {
            "logits": {head: logits_output(head) for head in heads},
            "spatial": "spatial",
            "temporal": "temporal",
            "cls": "cls",
        },
        "preprocessing": {
            "frames": (
                {
                    "resize_shorter_side": (
                        augmentations.resize_size
                        if augmentations.apply_resize
                        else None
                    ),
                    "center_crop": frame_size(config),
                    "resize_antialias": True,
                    "color": "RGB",
                }
                if config.uses_frames()
                else None
            ),
            "landmarks": (
                config.landmarks_parameters.model_dump(mode="json")
                if config.uses_landmarks()
                else None
            ),
            "sampling": {
                "num_segments": train.num_segments,
                "time": train.time,
                "default_fps": train.default_fps,
                "rule": "num_segments frames spread evenly over the clip (or time "
                "seconds apart), as datasets.sampling samples evaluation clips",
            },
        },
        "heads": [
            {
                "name": head,
                "kind": modes.get(head, "gloss"),
                "output": logits_output(head),
                "classes": list(names),
            }
            for head, names in loaded.label_names.items()
        ],
        "config": config_to_dict(config),
    }
