"""The config schema (pydantic) and its loader.

Every documented field of `train_config.yml` is declared here; unknown keys are
rejected.
A failed validation becomes a `ConfigError` whose message names the dotted key, the bad
value and what is allowed, one line per problem.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from utils.errors import ConfigError

CLASSIFICATION_MODES = ("gloss", "hamnosys")
LANDMARKS_EXTRACTOR = "landmarks_extractor"


class _Section(BaseModel):
    """A config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class GeneralParameters(_Section):
    """Where the data is, where results go, and run-wide settings."""

    data_path: str | list[str] = "data/sample"
    annotation_file: str | list[str] | None = None
    annotation_separator: str | None = None
    ratio_train_test: float = Field(0.8, gt=0.0, lt=1.0)
    workers: int = Field(2, ge=0)
    gpu: int = Field(-1, ge=-1)
    path_to_save: str = "runs/default"
    seed: int = 42
    neptune: bool = False

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
        if self.annotation_separator == "":
            raise ValueError("annotation_separator: use null for whitespace, not ''")
        return self

    def data_paths(self) -> list[str]:
        """The dataset roots as a list."""
        return [self.data_path] if isinstance(self.data_path, str) else self.data_path

    def annotation_files(self) -> list[str | None]:
        """The annotation file of each root (None = test_<mode>.txt)."""
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

    @model_validator(mode="after")
    def _not_yet_available(self) -> TrainParameters:
        if self.pre_training:
            raise ValueError(
                "pre_training: true is not available in this version of signpipe "
                "(set it to false)"
            )
        return self

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


def _default_heads() -> dict[str, dict[str, HeadConfig]]:
    hamnosys = {
        "symmetry_operator": 9,
        "hand_shape_base_form": 12,
        "hand_shape_thumb_position": 4,
        "hand_shape_bending": 6,
        "hand_position_finger_direction": 18,
        "hand_position_palm_orientation": 8,
        "hand_location_x": 5,
        "hand_location_y": 37,
    }
    return {
        "gloss": {"gloss": HeadConfig(num_class=2400, loss_weight=1.0)},
        "hamnosys": {
            name: HeadConfig(num_class=num, loss_weight=0.125)
            for name, num in hamnosys.items()
        },
    }


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


class TrainerConfig(_Section):
    """Passed through to Lightning's Trainer (several devices and machines)."""

    devices: int | str | list[int] | None = None
    num_nodes: int = Field(1, gt=0)
    strategy: str = "auto"
    precision: str = "32-true"


class SignpipeConfig(_Section):
    """The whole `train_config.yml`."""

    general_parameters: GeneralParameters = GeneralParameters()
    augmentations_parameters: AugmentationsParameters = AugmentationsParameters()
    train_parameters: TrainParameters = TrainParameters()
    landmarks_parameters: LandmarksParameters = LandmarksParameters()
    feature_extractor: FeatureExtractorConfig = FeatureExtractorConfig()
    transformer: TransformerConfig = TransformerConfig()
    heads: dict[str, dict[str, HeadConfig]] = Field(default_factory=_default_heads)
    freeze_scheduler: FreezeSchedulerConfig | None = None
    trainer: TrainerConfig = TrainerConfig()

    @model_validator(mode="after")
    def _inputs_consistent(self) -> SignpipeConfig:
        if not self.uses_frames() and not self.uses_landmarks():
            raise ValueError(
                "feature_extractor.name: landmarks_extractor reads landmarks; set "
                "train_parameters.landmarks: true"
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
            if not self.heads.get(mode):
                raise ValueError(
                    f"heads.{mode}: classification_mode '{mode}' needs at least one "
                    f"head under heads.{mode}"
                )
        unknown = sorted(set(self.heads) - set(CLASSIFICATION_MODES))
        if unknown:
            raise ValueError(
                f"heads.{unknown[0]}: unknown head group; allowed: "
                f"{', '.join(CLASSIFICATION_MODES)}"
            )
        names = [name for group in self.heads.values() for name in group]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"heads: head name '{duplicated[0]}' is used twice")
        return self

    def active_heads(self) -> dict[str, HeadConfig]:
        """The heads trained in the configured classification mode(s), in order."""
        return {
            name: head
            for mode in self.train_parameters.modes()
            for name, head in self.heads[mode].items()
        }

    def head_modes(self) -> dict[str, str]:
        """Which classification mode (head group) each active head belongs to."""
        return {
            name: mode
            for mode in self.train_parameters.modes()
            for name in self.heads[mode]
        }


def _model_for_path(path: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the key at `path` (for error suggestions)."""
    model: Any = SignpipeConfig
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
            None,
        )
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _describe_error(error: dict) -> str:
    """One line for one pydantic error: dotted key, value, what is allowed."""
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    # Drop the union branch names pydantic inserts (e.g. 'str', 'list[str]').
    loc = tuple(
        part
        for part in loc
        if not (isinstance(part, str) and ("[" in part or part in ("str", "int")))
    )
    key = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        parent = _model_for_path(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        allowed_text = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
        return f"{key}: unknown key{hint}{allowed_text}"
    message = error["msg"].removeprefix("Value error, ")
    if kind in ("value_error", "assertion_error"):
        return f"{key + ': ' if key else ''}{message}"
    return f"{key}: {message}, got {error.get('input')!r}"


def format_validation_error(error: ValidationError) -> str:
    """All problems of a validation error, one line each, without duplicates."""
    lines = list(dict.fromkeys(_describe_error(e) for e in error.errors()))
    return "\n".join(lines)


def parse_config(raw: dict, source: str = "config") -> SignpipeConfig:
    """Validate a config dict; raise `ConfigError` naming every bad key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a YAML mapping of sections")
    try:
        return SignpipeConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(
            f"invalid config {source}:\n{format_validation_error(error)}"
        ) from None


def _parse_override(override: str) -> tuple[list[str], Any]:
    key, sep, value = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set {override!r}: expected dotted.key=value, "
            "e.g. --set train_parameters.epochs=1"
        )
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `dotted.key=value` overrides (values parsed as YAML) to a raw config."""
    for override in overrides:
        keys, value = _parse_override(override)
        node = raw
        for depth, part in enumerate(keys[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"--set {override!r}: {'.'.join(keys[:depth + 1])} is not a section"
                )
            node = child
        node[keys[-1]] = value
    return raw


def load_raw_config(path: str | Path) -> dict:
    """Read a YAML config file into a dict; a clear error for a missing or bad file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with path.open(encoding="utf-8") as file:
            raw = yaml.safe_load(file)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}{where}: malformed YAML: {problem}") from None
    return raw if raw is not None else {}


def load_config(path: str | Path, overrides: list[str] | None = None) -> SignpipeConfig:
    """Load, override and validate a config file."""
    raw = apply_overrides(load_raw_config(path), overrides or [])
    return parse_config(raw, str(path))


def check_data_paths(config: SignpipeConfig, base: Path | None = None) -> None:
    """Raise `ConfigError` when a dataset root does not exist."""
    for root in config.general_parameters.data_paths():
        path = Path(root) if base is None else base / root
        if not path.is_dir():
            raise ConfigError(
                f"general_parameters.data_path: '{root}' is not an existing directory"
            )


def config_to_dict(config: SignpipeConfig) -> dict:
    """A plain dict of the resolved config, fit for YAML and checkpoints."""
    return config.model_dump(mode="json")
