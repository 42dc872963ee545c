"""The config sections of the model: `feature_extractor`, `transformer`, `heads`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from config.hamnosys_heads import HEAD_ORDER, NUM_CLASSES
from config.section import Section

#: A model section: besides its fields, the chosen model's own settings (declared by
#: its registration, `config.registry`) are written flat in it and checked against
#: that model's `settings` class.
MODEL_SECTION = ConfigDict(**{**Section.model_config, "extra": "allow"})

#: The largest feature width (`representation_size`, `output_size`).
MAX_WIDTH = 16384
#: The largest `num_class` of a head.
MAX_NUM_CLASS = 1_000_000


class FeatureExtractorConfig(Section):
    """The feature extractor: it turns every real (not padded) frame of a batch
    into `representation_size` features, all frames at once (a video network:
    every clip into tokens of a few frames each).

    The registered extractors (`name`):

    - `cnn_extractor`: any timm image model (its own setting `model_path`), pooled,
      then a linear projection; frames are normalised with the model's own mean and
      std.
    - `resnet50_extractor`: torchvision's ResNet-50 without its classifier, then a
      linear projection.
    - `landmarks_extractor`: landmarks only (no image frames are read), an MLP over
      each frame's points. Needs `train_parameters.landmarks: true`.
    - `landmarks_conv`: landmarks only, each frame's points embedded, then
      `num_blocks` residual blocks with a depthwise temporal convolution of
      `kernel_size` frames (the 1-D blocks of the Kaggle ISLR winners); its own
      settings are `num_blocks`, `kernel_size` and `dropout_rate`.
    - `landmarks_stgcn`: landmarks only, a spatial-temporal graph convolution network
      over the skeleton, `num_blocks` blocks, pooled over the points; the same own
      settings as `landmarks_conv`.
    - `precomputed`: precomputed feature rows in the SSVP-SLT layout (no frames or
      landmarks are read), a linear projection from its own required setting
      `feature_dim` times a learned per-channel scale. Needs
      `train_parameters.landmarks: false`.

    - `s3d`, `r3d_18`, `r2plus1d_18`, `mc3_18`, `swin3d_t`, `swin3d_s`,
      `swin3d_b`, `mvit_v1_b`, `mvit_v2_s`: torchvision's video networks, run over
      the whole clip; they pool over space only and give `T' = T / stride` tokens
      (stride 8 for S3D, R3D and R(2+1)D, 2 for Swin3D and MViT, 1 for MC3), each
      projected to `representation_size`. Frames are normalised with the mean and
      std of the network's torchvision Kinetics-400 weights. MViT needs exactly
      16 frames of 224x224 (`train_parameters.num_segments`,
      `augmentations_parameters.center_crop_size`), S3D frames of at least 17x17;
      the config is checked for both. No landmark fusion or `pre_training`.

    With `train_parameters.landmarks: true` and an image extractor, each frame's
    image features and landmark features (the `landmarks_extractor` MLP) are
    concatenated and projected back to `representation_size`. A key below that
    the chosen extractor does not read, set to a non-default value, gets a note at
    the start.

    An extractor may declare settings of its own (see "Model settings" below);
    they are written flat in this section and checked against that extractor's
    settings. Another extractor's setting is an error naming the extractors that
    read it, and so is any other key. A config saved in a checkpoint is read
    leniently: older checkpoints hold every extractor's settings, and those the
    chosen one does not read are dropped.
    """

    model_config = MODEL_SECTION

    name: str = Field(
        "cnn_extractor",
        description="A registered extractor (above); an unknown name is an error "
        "that lists the valid ones.",
    )
    pretrained_path: str | None = Field(
        None,
        description="Image extractors and video networks: a local weights file "
        "for the backbone (nothing is downloaded); for a video network, "
        "torchvision's weights file of that network (a state_dict, `.pth`). null = "
        "random initialisation, with a warning for the image extractors.",
    )
    representation_size: int = Field(
        256,
        gt=0,
        le=MAX_WIDTH,
        description="The size of each frame's features (a video network's tokens), "
        "the input of the temporal encoder.",
    )


class TransformerConfig(Section):
    """The temporal encoder: it reads the `(B, T, representation_size)` frame
    features and their mask, and gives each clip an `output_size` embedding for the
    heads. Padded frames are masked out. Its input size comes from the extractor.

    The registered encoders (`name`):

    - `sign_language_transformer`: a pre-norm transformer encoder (GELU) with
      sinusoidal positions and a learned CLS token (or mean pooling, its own
      setting `pooling`).
    - `hubert_transformer`: the encoder of HuBERT (`transformers`), convolutional
      positions, over the projected frame features, with a learned CLS token; its
      own setting `pretrained_path` starts it from a saved HuBERT model.
    - `fake_transformer`: a baseline, a per-frame linear layer then the mean over
      the real frames; it reads `output_size` only.

    An encoder may declare settings of its own (see "Model settings" below), written
    flat in this section; another encoder's setting is an error, except in a config
    saved in a checkpoint (as for `feature_extractor`).
    """

    model_config = MODEL_SECTION

    name: str = Field(
        "sign_language_transformer",
        description="A registered encoder (above); an unknown name is an error that "
        "lists the valid ones.",
    )
    feedforward_size: int = Field(
        512,
        gt=0,
        le=4 * MAX_WIDTH,
        description="The hidden size of each layer's feed-forward block.",
    )
    num_attention_heads: int = Field(
        4,
        gt=0,
        le=256,
        description="Attention heads per layer; `output_size` must be divisible by "
        "it.",
    )
    num_encoder_layers: int = Field(
        2, gt=0, le=256, description="The number of encoder layers."
    )
    output_size: int = Field(
        256,
        gt=0,
        le=MAX_WIDTH,
        description="The encoder width, and the size of the clip embedding the "
        "heads read.",
    )
    dropout_rate: float = Field(
        0.1, ge=0.0, lt=1.0, description="Dropout inside the encoder layers."
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
    """One head: a name chosen under `heads.gloss` or `heads.hamnosys`, mapped to
    these keys. A `classification` head (the default kind) is
    `heads.model.additional_layers` hidden layers, then dropout and a linear layer
    to `num_class` logits, trained with cross-entropy on the samples that have its
    label.

    A head kind may declare settings of its own (see "Model settings" below); they
    are written flat in the head's section, next to these keys, and checked against
    its kind's settings (any other key is an error)."""

    model_config = MODEL_SECTION

    kind: str = Field(
        "classification",
        description="A registered head kind: what the head outputs, its loss, its "
        "metrics and its prediction (see docs/guide/models.md); an unknown kind is "
        "an error that lists the valid ones.",
    )

    num_class: Annotated[int, Field(le=MAX_NUM_CLASS)] | Literal["auto"] = Field(
        "auto",
        description="The number of classes, at least 2; `auto` = 1 + the largest "
        "label in the data of all roots (at least 2). A label >= `num_class` is a "
        "data error.",
    )
    loss_weight: float = Field(
        1.0,
        ge=0.0,
        description="The head's weight in the loss: the weighted mean over the heads "
        "with labels in the batch.",
    )

    @model_validator(mode="after")
    def _at_least_two_classes(self) -> HeadConfig:
        if self.num_class != "auto" and self.num_class < 2:
            raise ValueError(
                f"num_class must be at least 2 or 'auto', not {self.num_class}"
            )
        return self


class HeadModelConfig(Section):
    """The shape of every head: hidden layers before the classifier, dropout."""

    additional_layers: int = Field(
        0,
        ge=0,
        le=64,
        description="Hidden layers in every head before its classifier, each "
        "dropout, a linear layer of the clip embedding's width, and GELU. 0 = the "
        "head is one linear layer.",
    )
    dropout_rate: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout before every linear layer of a head.",
    )


class HeadsConfig(Section):
    """The classification heads, in two groups, and their shared shape.

    `gloss` and `hamnosys` each map a head name of your choice to its settings
    (below); the groups that `train_parameters.classification_mode` lists are
    trained. Head names are unique across the groups, and `model` is reserved. A
    group you write replaces that group's default heads entirely; a group you leave
    out keeps its defaults. Annotation files without a header give the label
    columns in the order the heads are listed here.
    """

    model: HeadModelConfig = Field(
        HeadModelConfig(), description="The shape shared by every head."
    )
    gloss: dict[str, HeadConfig] = Field(
        {"gloss": HeadConfig(num_class=2400)},
        description="The heads of `classification_mode: gloss`: head name -> its "
        "settings. By default one head, `gloss`.",
    )
    hamnosys: dict[str, HeadConfig] = Field(
        {
            head: HeadConfig(
                num_class=NUM_CLASSES[head], loss_weight=1 / len(HEAD_ORDER)
            )
            for head in HEAD_ORDER
        },
        description="The heads of `classification_mode: hamnosys`: head name -> its "
        "settings. By default the eight HamNoSys heads, weighted equally.",
    )

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


@dataclass(frozen=True)
class VideoNetworkInput:
    """What one of torchvision's video networks is and the clips it accepts,
    measured with torchvision 0.29 (`weights=None`).

    Attributes:
        family: `resnet3d`, `s3d`, `swin3d` or `mvit` (how its trunk is run).
        width: the channels of its last stage, before the projection to
            `representation_size`.
        frame_stride: input frames per output token; clips are padded at the end to
            a multiple of it.
        exact_frames: the only frame count it takes (its positional encoding is
            fixed), or None for any.
        min_size: the smallest frame side it runs on.
        exact_size: the only (square) frame side it takes, or None for any.
    """

    family: str
    width: int
    frame_stride: int
    exact_frames: int | None = None
    min_size: int = 1
    exact_size: int | None = None

    def requirement(self) -> str:
        """The frames and size it needs, in words."""
        if self.exact_size:
            side = f"{self.exact_size}x{self.exact_size} pixels"
        else:
            side = f"at least {self.min_size}x{self.min_size} pixels"
        if self.exact_frames:
            return f"exactly {self.exact_frames} frames of {side}"
        return f"frames of {side}"


#: torchvision's video networks, by their torchvision names: each is a
#: `feature_extractor.name`.
VIDEO_NETWORKS: dict[str, VideoNetworkInput] = {
    "s3d": VideoNetworkInput("s3d", 1024, 8, min_size=17),
    "r3d_18": VideoNetworkInput("resnet3d", 512, 8),
    "r2plus1d_18": VideoNetworkInput("resnet3d", 512, 8),
    "mc3_18": VideoNetworkInput("resnet3d", 512, 1),
    "swin3d_t": VideoNetworkInput("swin3d", 768, 2),
    "swin3d_s": VideoNetworkInput("swin3d", 768, 2),
    "swin3d_b": VideoNetworkInput("swin3d", 1024, 2),
    "mvit_v1_b": VideoNetworkInput("mvit", 768, 2, exact_frames=16, exact_size=224),
    "mvit_v2_s": VideoNetworkInput("mvit", 768, 2, exact_frames=16, exact_size=224),
}
