"""Image CNN feature extractors: all frames of all clips go through as one batch."""

from __future__ import annotations

import contextlib
import difflib
import logging
from collections.abc import Iterator

import torch
from pydantic import Field
from torch import nn

from config.section import Section
from models.registry import FEATURE_EXTRACTORS
from models.weights import WEIGHTS_KEY, check_weights_file, load_weights_file
from utils.errors import ConfigError
from utils.files import describe_load_error

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrameFeatureExtractor(nn.Module):
    """Runs an image backbone over the real frames of a batch of clips.

    Frames arrive as uint8 and are scaled and normalised here, on the model's device,
    with the backbone's own mean/std. Padded frames are skipped and get zero features.

    Args:
        backbone: maps `(N, 3, H, W)` float images to `(N, num_features)`.
        num_features: the backbone's output size.
        representation_size: the size of the per-frame features returned.
        mean: per-channel mean of the backbone's expected input (0-1 scale).
        std: per-channel std of the backbone's expected input (0-1 scale).
        backbone_name: the backbone's name, for messages.
        pretrained: whether the backbone's weights came from a file.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        num_features: int,
        representation_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        backbone_name: str = "backbone",
        pretrained: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.backbone_name = backbone_name
        self.pretrained = pretrained
        self.projection = nn.Linear(num_features, representation_size)
        self.out_dim = representation_size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255.0)

    def forward(self, batch: dict) -> torch.Tensor:
        """Per-frame features.

        Args:
            batch: with `frames` `(B, T, C, H, W)` uint8 (or float on the 0-255 scale)
                and `mask` `(B, T)` bool, True for real frames.

        Returns:
            `(B, T, representation_size)` features, zero at padded positions.
        """
        mask = batch["mask"]
        real = batch["frames"][mask]
        images = (real.float() - self.mean) / self.std
        images = images.contiguous(memory_format=torch.channels_last)
        features = self.projection(self.backbone(images))
        out = features.new_zeros(*mask.shape, self.out_dim)
        out[mask] = features
        return out

    def prepare_for_training(self, *, channels_last: bool, compile_model: bool) -> None:
        """Put the 2-D backbone in channels_last (its inputs already are) and compile
        it in place (checkpoint keys stay the same), with dynamic shapes since the
        number of real frames varies per batch."""
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        if compile_model:
            self.backbone.compile(dynamic=True)


# timm loads a pretrained file without `strict` when the classifier is dropped
# (num_classes=0), and only logs the backbone tensors the file lacked, at INFO level.
_TIMM_BUILDER_LOGGER = "timm.models._builder"
_TIMM_MISSING = "Missing keys ("


@contextlib.contextmanager
def _timm_missing_keys() -> Iterator[list[str]]:
    """Collects the names of the tensors that timm's `load_pretrained` did not find
    in the weights file (its INFO message), without printing that message."""
    logger = logging.getLogger(_TIMM_BUILDER_LOGGER)
    shown_from = logger.getEffectiveLevel()
    missing: list[str] = []

    def catch(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_TIMM_MISSING):
            missing.extend(message[len(_TIMM_MISSING) :].split(")")[0].split(", "))
        return record.levelno >= shown_from

    previous = logger.level
    logger.setLevel(min(shown_from, logging.INFO))
    logger.addFilter(catch)
    try:
        yield missing
    finally:
        logger.removeFilter(catch)
        logger.setLevel(previous)


class TimmSettings(Section):
    """`cnn_extractor`'s own settings: which timm model."""

    model_path: str = Field(
        "resnet18",
        description="A timm model name, for example `resnet10t`, `resnet18` or "
        "`efficientnet_b0` (`timm.list_models()` lists them); an unknown name is an "
        "error with close-match suggestions.",
    )


@FEATURE_EXTRACTORS.register(
    "cnn_extractor",
    settings=TimmSettings,
    summary="any timm image model (`model_path`), created with `num_classes=0` "
    "(pooled features), then a linear projection; frames normalised with the "
    "model's own mean and std",
    weights="a file timm can load as the model's pretrained weights (passed as "
    'timm\'s `pretrained_cfg_overlay={"file": ...}`)',
)
def cnn_extractor(
    *, model_path: str, representation_size: int, pretrained_path: str | None = None
) -> FrameFeatureExtractor:
    """Any timm image model (by name), optionally with weights from a local file."""
    # timm and torchvision take seconds to import: only models that use them do.
    import timm  # pylint: disable=import-outside-toplevel

    if not timm.is_model(model_path):
        close = difflib.get_close_matches(model_path, timm.list_models(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"feature_extractor.model_path: '{model_path}' is not a timm model{hint} "
            "(timm.list_models() lists them)"
        )
    check_weights_file(pretrained_path)
    overlay = {"file": pretrained_path} if pretrained_path else None
    try:
        # timm reads the file with weights_only=True (or as safetensors).
        with _timm_missing_keys() as missing:
            backbone = timm.create_model(
                model_path,
                pretrained=pretrained_path is not None,
                pretrained_cfg_overlay=overlay,
                num_classes=0,
            )
    except Exception as error:  # pylint: disable=broad-exception-caught
        if pretrained_path is None:
            raise
        raise ConfigError(
            f"{WEIGHTS_KEY}: cannot load {pretrained_path} as {model_path} weights "
            f"({describe_load_error(error)})"
        ) from None
    if missing:
        raise ConfigError(
            f"{WEIGHTS_KEY}: '{pretrained_path}' does not hold {model_path} weights "
            f"({len(missing)} of its {len(backbone.state_dict())} tensors are not in "
            f"it, e.g. {missing[0]})"
        )
    config = backbone.pretrained_cfg
    return FrameFeatureExtractor(
        backbone=backbone,
        num_features=backbone.num_features,
        representation_size=representation_size,
        mean=tuple(config.get("mean", IMAGENET_MEAN)),
        std=tuple(config.get("std", IMAGENET_STD)),
        backbone_name=model_path,
        pretrained=pretrained_path is not None,
    )


@FEATURE_EXTRACTORS.register(
    "resnet50_extractor",
    summary="torchvision ResNet-50, `fc` removed, then a linear projection",
    weights="a torchvision ResNet-50 state dict (optionally under a `state_dict` "
    "key). Only `fc.*` keys may be missing.",
)
def resnet50_extractor(
    *, representation_size: int, pretrained_path: str | None = None
) -> FrameFeatureExtractor:
    """torchvision's ResNet-50, optionally with weights from a local file."""
    check_weights_file(pretrained_path)
    import torchvision  # pylint: disable=import-outside-toplevel

    backbone = torchvision.models.resnet50(weights=None)
    if pretrained_path is not None:
        state = load_weights_file(pretrained_path)
        state = state.get("state_dict", state) if isinstance(state, dict) else {}
        try:
            missing, _ = backbone.load_state_dict(state, strict=False)
        except (TypeError, RuntimeError):  # not tensors, or tensors of other shapes
            missing = list(backbone.state_dict())
        if any(not key.startswith("fc.") for key in missing):
            raise ConfigError(
                f"{WEIGHTS_KEY}: '{pretrained_path}' does not hold ResNet-50 weights"
            )
    num_features = backbone.fc.in_features
    backbone.fc = nn.Identity()
    return FrameFeatureExtractor(
        backbone=backbone,
        num_features=num_features,
        representation_size=representation_size,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        backbone_name="resnet50",
        pretrained=pretrained_path is not None,
    )
