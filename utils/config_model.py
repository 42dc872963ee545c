"""The config sections of the model: `feature_extractor`, `transformer`, `heads`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from utils.config_section import Section
from utils.hamnosys_heads import HEAD_ORDER, NUM_CLASSES

#: The largest feature width (`representation_size`, `output_size`).
MAX_WIDTH = 16384
#: The largest `num_class` of a head.
MAX_NUM_CLASS = 1_000_000


class FeatureExtractorConfig(Section):
    """The per-frame feature extractor."""

    name: str = "cnn_extractor"
    model_path: str = "resnet18"
    pretrained_path: str | None = None
    representation_size: int = Field(256, gt=0, le=MAX_WIDTH)
    num_blocks: int = Field(
        3,
        gt=0,
        le=64,
        description="landmarks_conv / landmarks_stgcn: convolution or graph blocks.",
    )
    kernel_size: int = Field(
        17,
        gt=0,
        le=255,
        description="landmarks_conv / landmarks_stgcn: temporal kernel (odd).",
    )
    dropout_rate: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="landmarks_conv / landmarks_stgcn: dropout inside the blocks.",
    )

    @model_validator(mode="after")
    def _odd_kernel(self) -> FeatureExtractorConfig:
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        return self


class TransformerConfig(Section):
    """The temporal encoder over the per-frame features."""

    name: str = "sign_language_transformer"
    feedforward_size: int = Field(512, gt=0, le=4 * MAX_WIDTH)
    num_attention_heads: int = Field(4, gt=0, le=256)
    num_encoder_layers: int = Field(2, gt=0, le=256)
    output_size: int = Field(256, gt=0, le=MAX_WIDTH)
    dropout_rate: float = Field(0.1, ge=0.0, lt=1.0)
    pretrained_path: str | None = None
    pooling: Literal["cls", "mean"] = Field(
        "cls",
        description="sign_language_transformer: the clip embedding is the output of "
        "a learned CLS token (cls) or the masked mean of the frame outputs (mean).",
    )

    @model_validator(mode="after")
    def _heads_divide_size(self) -> TransformerConfig:
        if self.output_size % self.num_attention_heads:
            raise ValueError(
                f"output_size ({self.output_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        return self


class HeadConfig(Section):
    """One classification head."""

    num_class: Annotated[int, Field(le=MAX_NUM_CLASS)] | Literal["auto"] = "auto"
    loss_weight: float = Field(1.0, ge=0.0)

    @model_validator(mode="after")
    def _at_least_two_classes(self) -> HeadConfig:
        if self.num_class != "auto" and self.num_class < 2:
            raise ValueError(
                f"num_class must be at least 2 or 'auto', not {self.num_class}"
            )
        return self


class HeadModelConfig(Section):
    """The shape of every head: hidden layers before the classifier, dropout."""

    additional_layers: int = Field(0, ge=0, le=64)
    dropout_rate: float = Field(0.0, ge=0.0, lt=1.0)


class HeadsConfig(Section):
    """The heads, grouped by classification mode, and their shared shape."""

    model: HeadModelConfig = HeadModelConfig()
    gloss: dict[str, HeadConfig] = {"gloss": HeadConfig(num_class=2400)}
    hamnosys: dict[str, HeadConfig] = {
        head: HeadConfig(num_class=NUM_CLASSES[head], loss_weight=1 / len(HEAD_ORDER))
        for head in HEAD_ORDER
    }

    @model_validator(mode="after")
    def _unique_names(self) -> HeadsConfig:
        names = [*self.gloss, *self.hamnosys]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"head name '{duplicated[0]}' is used in both groups")
        if "model" in names:
            raise ValueError("'model' is reserved for heads.model, not a head name")
        return self

    def group(self, mode: str) -> dict[str, HeadConfig]:
        """The heads of one classification mode."""
        return getattr(self, mode)
