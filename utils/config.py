"""The config schema (pydantic): every documented field of `train_config.yml`.

Unknown keys are rejected; `utils.config_loader` turns validation failures into
messages that name the dotted key, the bad value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from utils.hamnosys_heads import HEAD_ORDER, NUM_CLASSES

CLASSIFICATION_MODES = ("gloss", "hamnosys")
LANDMARKS_EXTRACTOR = "landmarks_extractor"
WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


class _Section(BaseModel):
    """A config section: unknown keys are errors, and `true` is not a number."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool):
            field = cls.model_fields.get(info.field_name)  # pylint: disable=no-member
            annotation = field.annotation if field else None
            accepted = get_args(annotation) or (annotation,)
            if bool not in accepted and any(t in accepted for t in (int, float)):
                raise ValueError(f"expected a number, got {str(value).lower()}")
        return value


#: One root's annotations: a file, a file per split (`{train: ..., val: ...,
#: test: ...}`), or None for `test_<mode>.txt`.
AnnotationSource = str | dict[Literal["train", "val", "test"], str] | None


class GeneralParameters(_Section):
    """Where the data is, where results go, and run-wide settings."""

    data_path: str | list[str] = "data/sample"
    annotation_file: AnnotationSource | list[AnnotationSource] = None
    annotation_separator: str | None = None
    ratio_train_test: float = Field(0.8, gt=0.0, lt=1.0)
    workers: int = Field(2, ge=0)
    gpu: int = Field(-1, ge=-1)
    path_to_save: str = "runs/default"
    seed: int = 42
    neptune: bool = False
    frame_cache: bool = False
    frame_cache_dir: str = "~/.cache/signpipe/frames"

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
                    f"annotation_file: split files {dict(source)} need a train file "
                    "(val and test are optional)"
                )
        separator = self.annotation_separator
        if separator is not None and len(separator) != 1:
            raise ValueError(
                f"annotation_separator: one character (e.g. ',' or a tab), or null for "
                f"any whitespace; got {separator!r}"
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


JitterValue = float | tuple[float, float]


class AugmentationsParameters(_Section):
    """Clip augmentations; train only, one random draw per clip."""

    apply_resize: bool = True
    apply_center_crop: bool = True
    apply_random_erasing: bool = False
    apply_random_rotation: bool = False
    apply_color_jitter: bool = False
    resize_size: int = Field(128, gt=0)
    center_crop_size: int = Field(112, gt=0)
    random_erasing_probability: float = Field(0.25, ge=0.0, le=1.0)
    random_rotation_degree: float = Field(5.0, ge=0.0, le=180.0)
    color_jitter_brightness: JitterValue = 0.2
    color_jitter_contrast: JitterValue = 0.2
    color_jitter_saturation: JitterValue = 0.2
    color_jitter_hue: JitterValue = 0.05

    @field_validator(
        "color_jitter_brightness", "color_jitter_contrast", "color_jitter_saturation"
    )
    @classmethod
    def _jitter_factor(cls, value: JitterValue) -> JitterValue:
        low, high = (
            value if isinstance(value, tuple) else (max(0.0, 1 - value), 1 + value)
        )
        if (not isinstance(value, tuple) and value < 0) or low < 0 or low > high:
            raise ValueError(
                f"must be a non-negative number or [min, max] with 0 <= min <= max, "
                f"got {value}"
            )
        return value

    @field_validator("color_jitter_hue")
    @classmethod
    def _jitter_hue(cls, value: JitterValue) -> JitterValue:
        low, high = value if isinstance(value, tuple) else (-value, value)
        if not -0.5 <= low <= high <= 0.5 or (
            not isinstance(value, tuple) and value < 0
        ):
            raise ValueError(
                f"must be in [0, 0.5] or [min, max] within [-0.5, 0.5], got {value}"
            )
        return value

    apply_rgb_shift: bool = False
    rgb_shift_r_shift_limit: int = Field(20, ge=0, le=255)
    rgb_shift_g_shift_limit: int = Field(20, ge=0, le=255)
    rgb_shift_b_shift_limit: int = Field(20, ge=0, le=255)
    apply_blur: bool = False
    blur_limit: int = Field(7, ge=3)


class TrainParameters(_Section):
    """What to train and for how long."""

    classification_mode: (
        Literal["gloss", "hamnosys"] | list[Literal["gloss", "hamnosys"]]
    ) = "hamnosys"
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(8, gt=0)
    lr: float = Field(3.0e-4, gt=0.0)
    num_segments: int = Field(8, gt=0)
    time: float | None = Field(None, gt=0.0)
    fast_dev_run: bool = False
    pre_training: bool = False
    landmarks: bool = False
    warmup_steps: int = Field(20, ge=0)
    multiply_lr_step: float = Field(0.999, gt=0.0, le=1.0)
    default_fps: float | None = Field(None, gt=0.0)
    accumulate_grad_batches: int = Field(1, gt=0)
    checkpoint_every_n_steps: int | None = Field(50, gt=0)

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


LandmarkComponent = Literal["pose", "face", "left_hand", "right_hand"]


class LandmarksParameters(_Section):
    """Which landmarks to read and how to prepare them (with `landmarks: true`)."""

    components: list[LandmarkComponent] = ["pose", "left_hand", "right_hand"]
    normalize: bool = True
    apply_flip: bool = False
    flip_probability: float = Field(0.5, ge=0.0, le=1.0)
    memory_cache_mb: int = Field(256, ge=0)

    @model_validator(mode="after")
    def _valid_flip(self) -> LandmarksParameters:
        if not self.components or len(set(self.components)) != len(self.components):
            raise ValueError(
                f"components: list each of pose, face, left_hand, right_hand at most "
                f"once (at least one), got {self.components}"
            )
        if self.apply_flip and "face" in self.components:
            raise ValueError(
                "apply_flip: the face mesh has no left/right point pairs here; "
                "drop 'face' from components or disable apply_flip"
            )
        if self.apply_flip and not self.normalize:
            raise ValueError("apply_flip: needs normalize: true (flips about the body)")
        return self


class FeatureExtractorConfig(_Section):
    """The per-frame feature extractor."""

    name: str = "cnn_extractor"
    model_path: str = "resnet18"
    pretrained_path: str | None = None
    representation_size: int = Field(256, gt=0)


class TransformerConfig(_Section):
    """The temporal encoder over the per-frame features."""

    name: str = "sign_language_transformer"
    feedforward_size: int = Field(512, gt=0)
    num_attention_heads: int = Field(4, gt=0)
    num_encoder_layers: int = Field(2, gt=0)
    output_size: int = Field(256, gt=0)
    dropout_rate: float = Field(0.1, ge=0.0, lt=1.0)
    pretrained_path: str | None = None

    @model_validator(mode="after")
    def _heads_divide_size(self) -> TransformerConfig:
        if self.output_size % self.num_attention_heads:
            raise ValueError(
                f"output_size ({self.output_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        return self


class HeadConfig(_Section):
    """One classification head."""

    num_class: int | Literal["auto"] = "auto"
    loss_weight: float = Field(1.0, ge=0.0)

    @model_validator(mode="after")
    def _at_least_two_classes(self) -> HeadConfig:
        if self.num_class != "auto" and self.num_class < 2:
            raise ValueError(
                f"num_class must be at least 2 or 'auto', not {self.num_class}"
            )
        return self


class HeadModelConfig(_Section):
    """The shape of every head: hidden layers before the classifier, dropout."""

    additional_layers: int = Field(0, ge=0)
    dropout_rate: float = Field(0.0, ge=0.0, lt=1.0)


class HeadsConfig(_Section):
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


class FreezeSchedulerConfig(_Section):
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
                f"got {self.freeze_pattern_repeats}"
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


class TransferConfig(_Section):
    """Starting from another run's weights, with parts frozen until a plateau."""

    checkpoint: str | None = None
    freeze_parts: list[str] = []
    freeze_until_convergence: bool = False
    patience: int = Field(3, gt=0)
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


class TrainerConfig(_Section):
    """Passed through to Lightning's Trainer (several devices and machines)."""

    devices: int | str | list[int] | None = None
    num_nodes: int = Field(1, gt=0)
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


class SignpipeConfig(_Section):
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
                "feature_extractor.name: landmarks_extractor reads landmarks; set "
                "train_parameters.landmarks: true"
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
        """Whether image frames are read (any extractor but landmarks_extractor)."""
        return self.feature_extractor.name != LANDMARKS_EXTRACTOR

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

        notes = []
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
