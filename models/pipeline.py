"""The recognition pipeline: feature extractor -> temporal encoder -> named heads."""

from __future__ import annotations

import inspect
from typing import Callable

import torch
from torch import nn

from config.registry import (
    ENCODER_FACTS,
    EXTRACTOR_FACTS,
    HEAD_KIND_FACTS,
    model_settings,
    section_with_settings,
)
from config.schema import SignpipeConfig, model_problems
import models.feature_extractors  # noqa: F401  pylint: disable=unused-import
from models.feature_extractors.landmarks import FusedExtractor, LandmarksEncoder
from models.heads import MultiHeadClassifier
from models.registry import (
    FEATURE_EXTRACTORS,
    TRANSFORMERS,
    ClipFeatureExtractor,
    FeatureExtractor,
    TemporalEncoder,
    missing_members,
)
import models.transformers  # noqa: F401  pylint: disable=unused-import
from utils.errors import ConfigError
from utils.landmark_points import COMPONENT_SIZES

SUBMODULES = ("feature_extractor", "transformer", "heads")


class SignPipeline(nn.Module):
    """A plain `nn.Module`: frames in, per-head logits and embeddings out.

    Submodules can be frozen by name (see `set_frozen`): a frozen submodule gets no
    gradients and stays in eval mode (BatchNorm statistics do not move) even when
    `train()` is called on the whole pipeline.

    Args:
        feature_extractor: a batch (frames and/or landmarks, mask) -> `(B, T, D)`,
            or `(B, T', D)` tokens for a video network.
        transformer: `(B, T, D)` + mask -> `(B, D')` clip, `(B, T, D')` frame outputs.
        heads: `(B, D')` -> `{head: (B, ...)}`, each head by its kind.
    """

    def __init__(
        self, *, feature_extractor: nn.Module, transformer: nn.Module, heads: nn.Module
    ) -> None:
        super().__init__()
        self.feature_extractor = feature_extractor
        self.transformer = transformer
        self.heads = heads
        self._frozen: set[str] = set()

    def forward(self, batch: dict) -> dict:
        """Run the pipeline.

        Args:
            batch: `mask` `(B, T)` bool (True = real frame), with `frames`
                `(B, T, C, H, W)` uint8 and/or `landmarks` `(B, T, K, 3)` and
                `landmark_mask` `(B, T, K)`, or `features` `(B, T, D)` float
                (precomputed rows), as `collate_clips` makes them.

        Returns:
            `{"logits": {head: (B, C)}, "spatial": (B, T, D), "temporal": (B, T, D'),
            "cls": (B, D')}`; `logits` are each head's raw outputs (its kind's
            `predict` turns them into the prediction output, see `predict`; a
            sequence head's are `SequenceOutputs`, given the encoder's per-frame
            outputs, or per-token outputs of a video network, and the batch's
            `labels` and `texts`).
            With a video network (`ClipFeatureExtractor`) the encoder reads its
            `T'` tokens; `spatial` and `temporal` give each frame the token whose
            window holds it (`spatial` zero at padded frames).
        """
        tokens = self.feature_extractor(batch)
        mask = batch["mask"]
        if not isinstance(self.feature_extractor, ClipFeatureExtractor):
            cls, temporal = self.transformer(tokens, mask)
            return {
                "logits": self._heads(cls, temporal, mask, batch),
                "spatial": tokens,
                "temporal": temporal,
                "cls": cls,
            }
        # A video network's T' tokens: masked by the real frames they hold, and
        # spread back over the T frames for the per-frame outputs.
        positions = self.feature_extractor.token_positions(
            mask.shape[1], tokens.shape[1]
        )
        real_frames = tokens.new_zeros(
            mask.shape[0], tokens.shape[1], dtype=torch.float
        )
        token_mask = real_frames.index_add_(1, positions, mask.float()) > 0
        cls, temporal = self.transformer(tokens, token_mask)
        return {
            "logits": self._heads(cls, temporal, token_mask, batch),
            "spatial": tokens[:, positions].masked_fill(~mask[..., None], 0.0),
            "temporal": temporal[:, positions],
            "cls": cls,
        }

    def _heads(self, cls, temporal, mask, batch: dict) -> dict:
        """The heads' outputs; heads that read the per-frame (per-token) outputs
        get them, their mask, and the batch's labels and texts (teacher forcing)."""
        if not getattr(self.heads, "reads_frames", False):
            return self.heads(cls)
        return self.heads(cls, temporal, mask, batch.get("labels"), batch.get("texts"))

    def predict(self, outputs: dict) -> dict[str, torch.Tensor]:
        """Each head's prediction output (its kind's) from `forward`'s outputs."""
        return self.heads.predict(outputs["logits"])

    def submodule(self, name: str, config_key: str | None = None) -> nn.Module:
        """A submodule by (dotted) name; `ConfigError` naming `config_key` and the
        top-level names otherwise."""
        try:
            module = self.get_submodule(name)
        except AttributeError:
            module = None
        if module is None or name.split(".")[0] not in SUBMODULES:
            raise ConfigError(
                f"{config_key or 'freeze_scheduler.model_params.' + name}: unknown "
                f"module '{name}'; allowed: "
                f"{', '.join(SUBMODULES)} or a dotted path inside them "
                "(e.g. feature_extractor.backbone)"
            )
        return module

    def set_frozen(self, name: str, frozen: bool) -> None:
        """Freeze or unfreeze a submodule by (dotted) name."""
        module = self.submodule(name)
        for parameter in module.parameters():
            parameter.requires_grad_(not frozen)
        if frozen:
            self._frozen.add(name)
            module.eval()
        else:
            self._frozen.discard(name)
            module.train(self.training)

    def prepare_for_training(self, *, channels_last: bool, compile_model: bool) -> None:
        """The extractor's training-time preparation (see `FeatureExtractor`)."""
        self.feature_extractor.prepare_for_training(
            channels_last=channels_last, compile_model=compile_model
        )

    def is_frozen(self, name: str) -> bool:
        """Whether a submodule was frozen by name."""
        return name in self._frozen

    def train(self, mode: bool = True) -> SignPipeline:
        """Set train/eval mode; frozen submodules stay in eval mode."""
        super().train(mode)
        for name in self._frozen:
            self.get_submodule(name).eval()
        return self


def _call_with_known(constructor: Callable, available: dict) -> nn.Module:
    """Call a registered constructor with the config fields it declares."""
    parameters = inspect.signature(constructor).parameters
    return constructor(**{k: v for k, v in available.items() if k in parameters})


def check_interface(module: nn.Module, protocol: type, config_key: str, name: str):
    """Refuse a built extractor or encoder that does not satisfy its protocol.

    Raises:
        TypeError: naming the registered name and the missing members (a programming
            error in a registered constructor, not a config error).
    """
    if not isinstance(module, protocol):
        raise TypeError(
            f"{config_key} '{name}' built a {type(module).__name__} that lacks "
            f"{', '.join(missing_members(module, protocol))} of the "
            f"{protocol.__name__} interface (models/registry.py)"
        )


def unused_model_settings(config: SignpipeConfig) -> list[str]:
    """`feature_extractor` and `transformer` fields given a value (not their default)
    that the chosen extractor or encoder does not take, each as `key: why`."""
    notes = []
    for section_name in ("feature_extractor", "transformer"):
        section = getattr(config, section_name)
        registry = (
            FEATURE_EXTRACTORS if section_name == "feature_extractor" else TRANSFORMERS
        )
        parameters = inspect.signature(registry.get(section.name)).parameters
        fields = type(section).model_fields
        for key in sorted((section.model_fields_set & set(fields)) - {"name"}):
            if key not in parameters and getattr(section, key) != fields[key].default:
                notes.append(f"{section_name}.{key}: {section.name} does not use it")
    return notes


def build_pipeline(config: SignpipeConfig, num_classes: dict[str, int]) -> SignPipeline:
    """Build the pipeline a config describes.

    Args:
        config: the validated config.
        num_classes: head name -> class count (resolved, no `auto`), in head order.

    Raises:
        ConfigError: every problem with the chosen models (`model_problems`), after
            importing `general_parameters.plugins`.
    """
    problems = model_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))
    extractor_config = section_with_settings(config.feature_extractor, EXTRACTOR_FACTS)
    transformer_config = section_with_settings(config.transformer, ENCODER_FACTS)
    # Both names are checked before anything is built, so a typo fails fast.
    make_extractor = FEATURE_EXTRACTORS.get(extractor_config.pop("name"))
    make_transformer = TRANSFORMERS.get(transformer_config.pop("name"))
    landmarks = config.landmarks_parameters
    num_points = sum(COMPONENT_SIZES[c] for c in landmarks.components)
    extractor = _call_with_known(
        make_extractor,
        {
            **extractor_config,
            "num_points": num_points,
            "components": landmarks.components,
            "velocities": landmarks.velocities,
            "hand_shape_inputs": landmarks.hand_shape_inputs,
            "bone_inputs": landmarks.bone_inputs,
        },
    )
    check_interface(
        extractor,
        FeatureExtractor,
        "feature_extractor.name",
        config.feature_extractor.name,
    )
    if config.uses_landmarks() and config.uses_frames():
        extractor = FusedExtractor(
            frames=extractor,
            landmarks=LandmarksEncoder(
                num_points=num_points,
                representation_size=config.feature_extractor.representation_size,
                velocities=landmarks.velocities,
            ),
        )
    transformer = _call_with_known(
        make_transformer, {**transformer_config, "input_dim": extractor.out_dim}
    )
    check_interface(
        transformer, TemporalEncoder, "transformer.name", config.transformer.name
    )
    modes = config.head_modes()
    heads = MultiHeadClassifier(
        input_dim=transformer.out_dim,
        num_classes=num_classes,
        additional_layers=config.heads.model.additional_layers,
        dropout_rate=config.heads.model.dropout_rate,
        kinds={name: head.kind for name, head in config.active_heads().items()},
        settings={
            name: model_settings(
                head,
                HEAD_KIND_FACTS,
                config.general_parameters.plugins,
                name=head.kind,
                where=f"heads.{modes[name]}.{name}",
            )
            for name, head in config.active_heads().items()
        },
    )
    return SignPipeline(
        feature_extractor=extractor, transformer=transformer, heads=heads
    )
