"""A trained checkpoint -> its pipeline, config and class names (test.py, predict.py).

A checkpoint that `train.py` wrote carries everything needed: the config, the class
count and names of every head, and the weights. The pipeline is rebuilt from the config
and loaded with the weights; starting weights named in the config are not needed.

A checkpoint is data from elsewhere: its metadata is checked (`CheckpointMeta`) before
anything is built from it, so a class count that is not a whole number, or one that
would allocate gigabytes, is a `DataError` naming the file and the field.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import torch
from pydantic import (
    Field,
    InstanceOf,
    StrictInt,
    StrictStr,
    model_validator,
)

from config.loader import config_from_checkpoint, with_changes
from config.model import MAX_NUM_CLASS
from config.registry import ENCODER_FACTS, model_settings
from config.schema import SignpipeConfig
from evaluation.records import Record, validated
from models.pipeline import SignPipeline, build_pipeline
from models.transformers.hubert import HubertSettings, save_encoder_shape
from models.zoo import resolve
from utils.errors import DataError, UserError, quote
from utils.files import load_data_only

_STATE_PREFIX = "model."

#: A head's class count in a checkpoint: 1 to `MAX_NUM_CLASS` (the config's limit).
ClassCount = Annotated[StrictInt, Field(ge=1, le=MAX_NUM_CLASS)]


class HyperParameters(Record):
    """What `train.py` saves as a checkpoint's `hyper_parameters`.

    Attributes:
        config: the run's config (validated by `config_from_checkpoint` afterwards).
        num_classes: head -> class count, in head order.
        label_names: head -> its class names, one per class; None in checkpoints
            that have none (the class ids are used).
    """

    config: dict
    num_classes: dict[StrictStr, ClassCount] = Field(min_length=1)
    label_names: dict[StrictStr, list[StrictStr]] | None = None

    @model_validator(mode="after")
    def _a_name_per_class(self) -> HyperParameters:
        for head, names in (self.label_names or {}).items():
            if head not in self.num_classes:
                raise ValueError(
                    f"label_names: {quote(head)} is not a head of num_classes "
                    f"({', '.join(self.num_classes)})"
                )
            if len(names) != self.num_classes[head]:
                raise ValueError(
                    f"label_names.{head}: {len(names)} class name(s) for "
                    f"{self.num_classes[head]} classes (num_classes.{head})"
                )
        return self


class CheckpointMeta(Record):
    """What `load_checkpoint` reads of a signpipe checkpoint (the weights' shapes
    are checked against the model when they are loaded)."""

    hyper_parameters: HyperParameters
    state_dict: dict[StrictStr, InstanceOf[torch.Tensor]]
    val_metrics: dict[StrictStr, float] | None = None
    hubert_config: dict | None = None


@dataclass
class LoadedModel:
    """A checkpoint's pipeline (eval mode, on its device) and what it was trained with.

    Attributes:
        model: the pipeline (`model(batch)` gives logits and embeddings).
        config: the checkpoint's validated config.
        label_names: head -> class names, in class-id order, for every head.
        device: where the model runs.
        val_metrics: the validation metrics logged before the checkpoint was saved
            (`val/loss`, `val/<head>/top1`, ...); empty for older checkpoints.
        best_val_loss: the ModelCheckpoint callback's best `val/loss`, if recorded.
    """

    model: SignPipeline
    config: SignpipeConfig
    label_names: dict[str, list[str]]
    device: torch.device
    val_metrics: dict[str, float] = field(default_factory=dict)
    best_val_loss: float | None = None


def _best_val_loss(checkpoint: dict) -> float | None:
    """The ModelCheckpoint callback's `best_model_score` when it monitors `val/loss`."""
    callbacks = checkpoint.get("callbacks")
    for name, state in (callbacks if isinstance(callbacks, dict) else {}).items():
        if (
            name.startswith("ModelCheckpoint")
            and isinstance(state, dict)
            and state.get("monitor") == "val/loss"
        ):
            score = state.get("best_model_score")
            if torch.is_tensor(score) and score.numel() == 1:
                return float(score)
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                return float(score)
    return None


def choose_device(config: SignpipeConfig) -> torch.device:
    """CUDA when the config's `gpu` is >= 0 and CUDA is available, else the CPU."""
    gpu = config.general_parameters.gpu
    if gpu >= 0 and torch.cuda.is_available():
        return torch.device("cuda", gpu if gpu < torch.cuda.device_count() else 0)
    return torch.device("cpu")


def _model_config(
    config: SignpipeConfig, source: str
) -> tuple[SignpipeConfig, str | None]:
    """The saved config without pretrained weight paths the checkpoint makes needless.

    The checkpoint's weights replace the extractor's starting weights, so its file is
    not needed. A HuBERT directory (`hubert_transformer`'s own `pretrained_path`)
    sets the encoder's shape, so it is kept while it exists; a dropped one is
    returned (rebuilt from the checkpoint's `hubert_config` when it has one, else
    named in the error message).
    """
    changes: dict[str, str | None] = {}
    if config.feature_extractor.pretrained_path:
        changes["feature_extractor.pretrained_path"] = None
    encoder = model_settings(
        config.transformer, ENCODER_FACTS, config.general_parameters.plugins
    )
    dropped = None
    if (
        isinstance(encoder, HubertSettings)
        and encoder.pretrained_path
        and not Path(encoder.pretrained_path).is_dir()
    ):
        dropped = encoder.pretrained_path
        changes["transformer.pretrained_path"] = None
    return (with_changes(config, changes, source) if changes else config), dropped


def _label_names(hparams: HyperParameters) -> dict[str, list[str]]:
    """Every head's class names; the class ids as text where the checkpoint has none."""
    saved = hparams.label_names or {}
    return {
        head: list(saved[head]) if head in saved else [str(i) for i in range(count)]
        for head, count in hparams.num_classes.items()
    }


def _check_heads(
    path: Path, num_classes: dict[str, int], config: SignpipeConfig
) -> None:
    """`DataError` unless every head of `num_classes` is one its config trains."""
    heads = config.active_heads()
    unknown = [head for head in num_classes if head not in heads]
    if unknown:
        raise DataError(
            f"checkpoint {path}: hyper_parameters.num_classes: {quote(unknown[0])} "
            f"is not a head its config trains ({', '.join(heads)})"
        )


def sequence_heads(config: SignpipeConfig) -> dict[str, str]:
    """The active heads whose label is not one class per clip (a gloss sequence,
    a sentence: `ctc`, `t5` heads), with their kind's name, in head order."""
    heads = config.active_heads()
    return {
        name: heads[name].kind
        for name, label in config.head_labels().items()
        if label != "class"
    }


def refuse_sequence_heads(config: SignpipeConfig, source: object, what: str) -> None:
    """`UserError` naming the first sequence head of `config` (see
    `sequence_heads`), for the tools that only handle classification heads.

    Args:
        config: the checkpoint's config.
        source: the checkpoint, as the message names it.
        what: the end of the message: what only classification heads do, and
            what to do instead (`"export; test.py evaluates it"`).
    """
    for head, kind in sequence_heads(config).items():
        raise UserError(
            f"{source}: head {head} is a {kind} head: only classification heads "
            f"{what}"
        )


def refuse_precomputed_features(
    config: SignpipeConfig, source: object, what: str
) -> None:
    """`UserError` when `config`'s extractor reads precomputed features (the SSVP-SLT
    layout, `datasets.ssvp`), for the tools that read videos, frames or landmarks.

    Args:
        config: the checkpoint's config.
        source: the checkpoint, as the message names it.
        what: the end of the message: what such a model does not do, and what to
            do instead (`"export; test.py evaluates it"`).
    """
    if config.uses_features():
        raise UserError(
            f"{source}: its extractor {config.feature_extractor.name} reads "
            f"precomputed features, not videos, frames or landmarks, so it does not "
            f"{what}"
        )


#: A checkpoint path or a model zoo name -> its file (`models.zoo.resolve`).
resolve_checkpoint = resolve


def load_checkpoint(path: Path, device: torch.device | None = None) -> LoadedModel:
    """Rebuild a `train.py` checkpoint's pipeline from its config and load its weights.

    Args:
        path: a checkpoint `train.py` wrote (`checkpoints/best.ckpt`, `last.ckpt`),
            or a model zoo name (`wlasl300_hands`).
        device: where to run; None chooses from the config (see `choose_device`).

    Raises:
        UserError: the file is missing, not a PyTorch checkpoint, not a signpipe
            checkpoint, or its weights do not fit the model its config describes.
        DataError: its metadata is not what train.py writes (`CheckpointMeta`: e.g.
            a class count that is not a whole number from 1 to `MAX_NUM_CLASS`, or
            class names that do not match the count), naming the file and field.
    """
    path = resolve_checkpoint(path)
    checkpoint = load_data_only(path, "checkpoint")
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else {}
    if (
        not isinstance(hparams, dict)
        or not isinstance(hparams.get("config"), dict)
        or not isinstance(hparams.get("num_classes"), dict)
        or not isinstance(checkpoint.get("state_dict"), dict)
    ):
        raise UserError(
            f"checkpoint {path}: not a signpipe checkpoint (expected hyper_parameters "
            "with config and num_classes, and a state_dict, as train.py writes them)"
        )
    meta = validated(CheckpointMeta, checkpoint, f"checkpoint {path}")
    source = f"in checkpoint {path}"
    config, dropped = _model_config(
        config_from_checkpoint(meta.hyper_parameters.config, source), source
    )
    num_classes = dict(meta.hyper_parameters.num_classes)
    _check_heads(path, num_classes, config)
    hubert = meta.hubert_config
    if dropped and hubert is not None:
        # The HuBERT directory the run started from is gone; the checkpoint keeps
        # the encoder's shape, and its weights replace the directory's anyway.
        with tempfile.TemporaryDirectory(prefix="signpipe-hubert-") as folder:
            shape = str(save_encoder_shape(hubert, Path(folder)))
            shaped = with_changes(
                config, {"transformer.pretrained_path": shape}, source
            )
            model = build_pipeline(shaped, num_classes)
        dropped = None
    else:
        model = build_pipeline(config, num_classes)
    state = {
        key[len(_STATE_PREFIX) :]: value
        for key, value in meta.state_dict.items()
        if key.startswith(_STATE_PREFIX)
    }
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        hint = (
            f"; it was trained from the HuBERT model in {dropped}, which no longer "
            "exists and sets the encoder's shape"
            if dropped
            else ""
        )
        first = str(error).strip().splitlines()
        raise UserError(
            f"checkpoint {path}: its weights do not fit the model its config "
            f"describes{hint} ({' '.join(line.strip() for line in first[:2])})"
        ) from None
    device = device or choose_device(config)
    model.to(device).eval()
    return LoadedModel(
        model,
        config,
        _label_names(meta.hyper_parameters),
        device,
        val_metrics=dict(meta.val_metrics or {}),
        best_val_loss=_best_val_loss(checkpoint),
    )
