"""The config schema (pydantic): every documented field of `train_config.yml`.

Unknown keys are rejected; `utils.config_loader` turns validation failures into
messages that name the dotted key, the bad value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

# Re-exported: the sections of their own modules are part of the schema here.
from utils.config_augmentations import (  # pylint: disable=unused-import
    AugmentationsParameters,
    JitterValue,
)
from utils.config_landmarks import LandmarksParameters
from utils.config_model import (
    FeatureExtractorConfig,
    HeadConfig,
    HeadsConfig,
    TransformerConfig,
)
from utils.config_section import Section
from utils.errors import quote

CLASSIFICATION_MODES = ("gloss", "hamnosys")
LANDMARKS_EXTRACTOR = "landmarks_extractor"
#: The extractors that read landmarks only (no image frames).
LANDMARK_ONLY_EXTRACTORS = (LANDMARKS_EXTRACTOR, "landmarks_conv", "landmarks_stgcn")
WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
#: The most frames sampled per clip (`num_segments`).
MAX_FRAMES_PER_CLIP = 10_000
#: The largest step count (`warmup_steps`, `checkpoint_every_n_steps`).
MAX_STEPS = 100_000_000


#: One root's annotations: a file, a file per split (`{train: ..., val: ...,
#: test: ...}`), or None for `test_<mode>.txt`.
AnnotationSource = str | dict[Literal["train", "val", "test"], str] | None


class GeneralParameters(Section):
    """Where the data is, where results go, and run-wide settings."""

    data_path: str | list[str] = "data/sample"
    annotation_file: AnnotationSource | list[AnnotationSource] = None
    annotation_separator: str | None = None
    ratio_train_test: float = Field(0.8, gt=0.0, lt=1.0)
    workers: int = Field(2, ge=0, le=256)
    gpu: int = Field(-1, ge=-1, le=255)
    path_to_save: str = "runs/default"
    seed: int = Field(42, ge=0, le=2**32 - 1)  # the range numpy and Lightning take
    neptune: bool = False
    frame_cache: bool = False
    frame_cache_dir: str = "~/.cache/signpipe/frames"

    @field_validator("path_to_save")
    @classmethod
    def _a_run_directory(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "give the run directory (e.g. runs/default) or a weights file name; "
                "an empty path would write into the current directory"
            )
        return value

    @model_validator(mode="after")
    def _one_annotation_file_per_root(self) -> GeneralParameters:
        if not self.data_paths():
            raise ValueError("data_path: the list of dataset roots is empty")
        files = self.annotation_file
        if isinstance(files, list) and len(files) != len(self.data_paths()):
            raise ValueError(
                f"annotation_file: {len(files)} files for {len(self.data_paths())} "
                "data_path roots; give one per root, a single name, or null"
            )
        for source in files if isinstance(files, list) else [files]:
            if isinstance(source, dict) and source.get("train") is None:
                raise ValueError(
                    f"annotation_file: split files {quote(dict(source))} need a train "
                    "file (val and test are optional)"
                )
        separator = self.annotation_separator
        if separator is not None and len(separator) != 1:
            raise ValueError(
                f"annotation_separator: one character (e.g. ',' or a tab), or null for "
                f"any whitespace; got {quote(separator)}"
            )
        return self

    def data_paths(self) -> list[str]:
        """The dataset roots as a list."""
        return [self.data_path] if isinstance(self.data_path, str) else self.data_path

    def run_dir(self) -> Path:
        """Where the run's files go: `path_to_save`, or for a weights file name such
        as HearAI's `saved_model.pth`, a folder of that name beside it."""
        path = Path(self.path_to_save)
        return path.with_suffix("") if path.suffix in WEIGHTS_SUFFIXES else path

    def weights_file(self) -> Path | None:
        """Where to write the final weights, when `path_to_save` names a file."""
        path = Path(self.path_to_save)
        return path if path.suffix in WEIGHTS_SUFFIXES else None

    def annotation_files(self) -> list[AnnotationSource]:
        """The annotation source of each root (None = test_<mode>.txt)."""
        files = self.annotation_file
        if isinstance(files, list):
            return files
        return [files] * len(self.data_paths())


class TrainParameters(Section):
    """What to train and for how long."""

    classification_mode: (
        Literal["gloss", "hamnosys"] | list[Literal["gloss", "hamnosys"]]
    ) = "hamnosys"
    epochs: int = Field(10, gt=0, le=1_000_000)
    batch_size: int = Field(8, gt=0, le=65_536)
    lr: float = Field(3.0e-4, gt=0.0)
    num_segments: int = Field(8, gt=0, le=MAX_FRAMES_PER_CLIP)
    time: float | None = Field(None, gt=0.0, le=3600.0)
    fast_dev_run: bool = False
    pre_training: bool = False
    landmarks: bool = False
    warmup_steps: int = Field(20, ge=0, le=MAX_STEPS)
    multiply_lr_step: float = Field(0.999, gt=0.0, le=1.0)
    default_fps: float | None = Field(None, gt=0.0, le=10_000.0)
    accumulate_grad_batches: int = Field(1, gt=0, le=10_000)
    checkpoint_every_n_steps: int | None = Field(50, gt=0, le=MAX_STEPS)
    lr_schedule: Literal["exponential", "cosine", "one_cycle"] = Field(
        "exponential",
        description="After the linear warm-up over warmup_steps: exponential "
        "(lr *= multiply_lr_step every step), cosine (to 0 at the last step) or "
        "one_cycle (half a cosine up from lr/25 over warmup_steps, then down to "
        "lr/10000 at the last step).",
    )
    weight_decay: float = Field(
        0.01, ge=0.0, le=10.0, description="AdamW's decoupled weight decay."
    )
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Cross-entropy label smoothing of every head (0 = none).",
    )
    gradient_clip_norm: float | None = Field(
        None,
        gt=0.0,
        le=1.0e6,
        description="Clip the gradients' global L2 norm to this before every "
        "optimizer step. null = no clipping.",
    )
    ema_decay: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Keep an exponential moving average of the weights with this "
        "decay per step (e.g. 0.999); validation, checkpoints and test.py then use "
        "the averaged weights. null = off.",
    )

    @field_validator("classification_mode")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError(
                "give gloss, hamnosys or a list of both, not an empty list"
            )
        return value

    def modes(self) -> list[str]:
        """The classification modes as a list without duplicates, in the given order."""
        mode = self.classification_mode
        modes = [mode] if isinstance(mode, str) else mode
        if not modes:
            raise ValueError("classification_mode: the list is empty")
        return list(dict.fromkeys(modes))


class FreezeSchedulerConfig(Section):
    """Which submodules are frozen when (True = frozen)."""

    model_params: dict[str, list[bool]]
    freeze_pattern_repeats: list[int]
    freeze_mode: Literal["epoch", "step"] = "epoch"
    verbose: bool = True

    @model_validator(mode="after")
    def _equal_lengths(self) -> FreezeSchedulerConfig:
        if not self.model_params:
            raise ValueError("model_params: name at least one submodule")
        if any(repeat <= 0 for repeat in self.freeze_pattern_repeats):
            raise ValueError(
                f"freeze_pattern_repeats: every entry must be positive, "
                f"got {quote(self.freeze_pattern_repeats)}"
            )
        expected = len(self.freeze_pattern_repeats)
        for name, pattern in self.model_params.items():
            if len(pattern) != expected:
                raise ValueError(
                    f"model_params.{name} has {len(pattern)} entries but "
                    f"freeze_pattern_repeats has {expected}; the lists must be "
                    "equally long"
                )
        return self


class TransferConfig(Section):
    """Starting from another run's weights, with parts frozen until a plateau."""

    checkpoint: str | None = None
    freeze_parts: list[str] = []
    freeze_until_convergence: bool = False
    patience: int = Field(3, gt=0, le=10_000)
    lr_after_unfreeze: float | None = Field(None, gt=0.0)
    keep_frozen: bool = False

    @model_validator(mode="after")
    def _parts_for_freezing(self) -> TransferConfig:
        if (
            self.freeze_until_convergence or self.keep_frozen
        ) and not self.freeze_parts:
            raise ValueError(
                "freeze_parts: name the parts to freeze (e.g. [feature_extractor]) for "
                "freeze_until_convergence / keep_frozen"
            )
        return self


class TrainerConfig(Section):
    """Passed through to Lightning's Trainer (several devices and machines)."""

    devices: Annotated[int, Field(le=4096)] | str | list[int] | None = None
    num_nodes: int = Field(1, gt=0, le=10_000)
    strategy: str = "auto"
    compile: bool = False
    channels_last: bool = True
    precision: Literal[
        "32-true",
        "32",
        "16-mixed",
        "bf16-mixed",
        "16-true",
        "bf16-true",
        "64-true",
        "64",
        "transformer-engine",
    ] = "32-true"


class SignpipeConfig(Section):
    """The whole `train_config.yml`."""

    general_parameters: GeneralParameters = GeneralParameters()
    augmentations_parameters: AugmentationsParameters = AugmentationsParameters()
    train_parameters: TrainParameters = TrainParameters()
    landmarks_parameters: LandmarksParameters = LandmarksParameters()
    feature_extractor: FeatureExtractorConfig = FeatureExtractorConfig()
    transformer: TransformerConfig = TransformerConfig()
    heads: HeadsConfig = HeadsConfig()
    freeze_scheduler: FreezeSchedulerConfig | None = None
    transfer: TransferConfig = TransferConfig()
    trainer: TrainerConfig = TrainerConfig()

    @model_validator(mode="after")
    def _inputs_consistent(self) -> SignpipeConfig:
        if not self.uses_frames() and not self.uses_landmarks():
            raise ValueError(
                f"feature_extractor.name: {self.feature_extractor.name} reads "
                "landmarks; set train_parameters.landmarks: true"
            )
        return self

    @model_validator(mode="after")
    def _cache_needs_fixed_size(self) -> SignpipeConfig:
        augmentations = self.augmentations_parameters
        if self.general_parameters.frame_cache and not (
            augmentations.apply_resize and augmentations.apply_center_crop
        ):
            raise ValueError(
                "general_parameters.frame_cache: needs augmentations_parameters."
                "apply_resize and apply_center_crop (cached frames have one size)"
            )
        return self

    @model_validator(mode="after")
    def _pretraining_trains_everything(self) -> SignpipeConfig:
        if self.train_parameters.pre_training and (
            self.freeze_scheduler is not None or self.transfer.freeze_parts
        ):
            raise ValueError(
                "train_parameters.pre_training: pretraining trains the extractor and "
                "encoder together; drop freeze_scheduler / transfer.freeze_parts"
            )
        return self

    @model_validator(mode="after")
    def _one_freezing_mechanism(self) -> SignpipeConfig:
        if self.freeze_scheduler is not None and self.transfer.freeze_parts:
            raise ValueError(
                "transfer.freeze_parts: use either freeze_scheduler or "
                "transfer.freeze_parts, not both"
            )
        return self

    def uses_frames(self) -> bool:
        """Whether image frames are read (any extractor but the landmark-only ones)."""
        return self.feature_extractor.name not in LANDMARK_ONLY_EXTRACTORS

    def uses_landmarks(self) -> bool:
        """Whether landmarks are read (`train_parameters.landmarks`)."""
        return self.train_parameters.landmarks

    @model_validator(mode="after")
    def _heads_for_every_mode(self) -> SignpipeConfig:
        for mode in self.train_parameters.modes():
            if not self.heads.group(mode):
                raise ValueError(
                    f"heads.{mode}: classification_mode '{mode}' needs at least one "
                    f"head under heads.{mode}"
                )
        return self

    def active_heads(self) -> dict[str, HeadConfig]:
        """The heads trained in the configured classification mode(s), in order."""
        return {
            name: head
            for mode in self.train_parameters.modes()
            for name, head in self.heads.group(mode).items()
        }

    def unused_settings(self) -> list[str]:
        """Settings given a value (not their default) that this config never reads,
        each as `key: why`, so a user sees that changing them changes nothing."""

        def changed(section: BaseModel, keys: tuple[str, ...]) -> list[str]:
            fields = type(section).model_fields
            return [
                key
                for key in keys
                if key in section.model_fields_set
                and getattr(section, key) != fields[key].default
            ]

        notes = self.augmentations_parameters.unused_settings()
        if not self.uses_landmarks():
            keys = tuple(LandmarksParameters.model_fields)
            for key in changed(self.landmarks_parameters, keys):
                notes.append(
                    f"landmarks_parameters.{key}: landmarks are not read "
                    "(train_parameters.landmarks is false)"
                )
        if self.train_parameters.time is None:
            for key in changed(self.train_parameters, ("default_fps",)):
                notes.append(
                    f"train_parameters.{key}: only used with train_parameters.time"
                )
        if not self.transfer.freeze_until_convergence:
            for key in changed(self.transfer, ("patience", "lr_after_unfreeze")):
                notes.append(
                    f"transfer.{key}: only used with transfer.freeze_until_convergence"
                )
        if not self.general_parameters.frame_cache:
            for key in changed(self.general_parameters, ("frame_cache_dir",)):
                notes.append(
                    f"general_parameters.{key}: only used with "
                    "general_parameters.frame_cache"
                )
        return notes

    def loss_weights(self) -> dict[str, float]:
        """Each active head's loss weight."""
        return {name: head.loss_weight for name, head in self.active_heads().items()}

    def head_modes(self) -> dict[str, str]:
        """Which classification mode (head group) each active head belongs to."""
        return {
            name: mode
            for mode in self.train_parameters.modes()
            for name in self.heads.group(mode)
        }
