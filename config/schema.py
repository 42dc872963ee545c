"""The config schema (pydantic): every documented field of `train_config.yml`.

Unknown keys are rejected; `config.loader` turns validation failures into
messages that name the dotted key, the bad value and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

# Re-exported: the sections of their own modules are part of the schema here.
from config.augmentations import (  # pylint: disable=unused-import
    AugmentationsParameters,
    JitterValue,
)
from config.landmarks import LandmarksParameters
from config.model import (
    VIDEO_NETWORKS,
    FeatureExtractorConfig,
    HeadConfig,
    HeadsConfig,
    TransformerConfig,
)
from config.registry import (
    ENCODER_FACTS,
    EXTRACTOR_FACTS,
    HEAD_KIND_FACTS,
    settings_problems,
)
from config.section import Section
from utils.errors import quote

CLASSIFICATION_MODES = ("gloss", "hamnosys")
WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
#: The most frames sampled per clip (`num_segments`).
MAX_FRAMES_PER_CLIP = 10_000
#: The largest step count (`warmup_steps`, `checkpoint_every_n_steps`).
MAX_STEPS = 100_000_000


#: One root's annotations: a file, a file per split (`{train: ..., val: ...,
#: test: ...}`), or None for `test_<mode>.txt`.
AnnotationSource = str | dict[Literal["train", "val", "test"], str] | None


class GeneralParameters(Section):
    """Where the data is, where the results go, and run-wide settings: the device,
    the loader processes, the seed."""

    data_path: str | list[str] = Field(
        "data/sample",
        description="A dataset root (a directory, or a video manifest `.csv`, see "
        "docs/data/videos.md), or a list of roots whose samples are combined into "
        "one dataset. An empty list is an error.",
    )
    annotation_file: AnnotationSource | list[AnnotationSource] = Field(
        None,
        description="null: each root has one `test_<mode>.txt` per classification "
        "mode. A file name (relative to each root, or absolute): one file per root "
        "with the columns of every trained head. `{train: a.txt, val: b.txt, test: "
        "c.txt}`: a file per split, for datasets that ship their own split (`train` "
        "needed). A list: one of these per root, in `data_path` order.",
    )
    annotation_separator: str | None = Field(
        None,
        description="The column separator of the annotation files: null for any "
        "whitespace, or one character such as `,` or a tab for CSV-style columns "
        "(quotes allowed, cells stripped).",
    )
    ratio_train_test: float = Field(
        0.8,
        gt=0.0,
        lt=1.0,
        description="The share of the samples without a `split` value that goes "
        "into training (per class, or by whole signers); the rest is validation.",
    )
    workers: int = Field(
        2,
        ge=0,
        le=256,
        description="DataLoader worker processes (kept alive between epochs); 0 "
        "loads in the main process.",
    )
    gpu: int = Field(
        -1,
        ge=-1,
        le=255,
        description="-1 runs on the CPU; 0, 1, ... runs on that CUDA device (an "
        "error if it does not exist). `trainer.devices` spreads a run over several.",
    )
    path_to_save: str = Field(
        "runs/default",
        description="The run directory. A name ending in `.pth`, `.pt`, `.ckpt` or "
        "`.bin` is a weights file instead: the run directory is a folder of the same "
        "name beside it, and the final weights are written to the file.",
    )
    seed: int = Field(
        42,
        ge=0,
        le=2**32 - 1,  # the range numpy and Lightning take
        description="Seeds Lightning (workers included), the train/validation split, "
        "the temporal sampling and the frame permutation of `test.py`.",
    )
    neptune: bool = Field(
        False, description="Also log to Neptune (the same as `train.py --neptune`)."
    )
    frame_cache: bool = Field(
        False,
        description="Decode, resize and crop every clip's frames once into a "
        "memory-mapped file and read that instead of the images. Needs "
        "`augmentations_parameters.apply_resize` and `apply_center_crop`.",
    )
    frame_cache_dir: str = Field(
        "~/.cache/signpipe/frames",
        description="Where the frame cache files go (`~` is expanded); only used "
        "with `frame_cache`.",
    )
    plugins: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*$")]] = Field(
        [],
        description="Python modules (dotted names on the Python path, e.g. in the "
        "directory you run from) imported before the model settings are checked: "
        "each registers its own feature extractors, temporal encoders or head kinds "
        "(see docs/contributing/extending.md). Checkpoints remember them.",
    )

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
    """What to train, on which inputs, and for how long; the optimizer and its
    schedule.

    The optimizer is AdamW over all parameters (`lr`, `weight_decay`). The
    learning-rate schedule advances once per optimizer step: a linear warm-up over
    `warmup_steps` to `lr`, then the decay `lr_schedule` names. Step counts are
    optimizer steps, so with `accumulate_grad_batches: N` one step is N batches.
    """

    classification_mode: (
        Literal["gloss", "hamnosys"] | list[Literal["gloss", "hamnosys"]]
    ) = Field(
        "hamnosys",
        description="Which head groups of `heads` are trained. A list such as "
        "`[gloss, hamnosys]` trains both groups together (joint training); every "
        "listed mode needs at least one head under `heads.<mode>`.",
    )
    epochs: int = Field(10, gt=0, le=1_000_000, description="The most epochs to train.")
    batch_size: int = Field(
        8, gt=0, le=65_536, description="Clips per batch, in each process."
    )
    lr: float = Field(
        3.0e-4,
        gt=0.0,
        description="The base learning rate of AdamW (reached at the end of the "
        "warm-up).",
    )
    num_segments: int = Field(
        8,
        gt=0,
        le=MAX_FRAMES_PER_CLIP,
        description="Frames sampled per clip. A shorter clip gives fewer frames "
        "(padded and masked in the batch; none is repeated).",
    )
    time: float | None = Field(
        None,
        gt=0.0,
        le=3600.0,
        description="Seconds between sampled frames. null spreads the "
        "`num_segments` frames evenly over the clip; with a number every sample "
        "needs an FPS (its properties file, its landmark file, or `default_fps`).",
    )
    fast_dev_run: bool = Field(
        False,
        description="Lightning's smoke test: one training and one validation batch, "
        "without loggers or `best.ckpt`.",
    )
    pre_training: bool = Field(
        False,
        description="Train the self-supervised masked-reconstruction objective of "
        "the extractor and encoder instead of the heads.",
    )
    landmarks: bool = Field(
        False,
        description="Read each sample's landmark file (see `landmarks_parameters`). "
        "With a landmark extractor the model reads landmarks only; with an image "
        "extractor, image and landmark features of each frame are fused.",
    )
    warmup_steps: int = Field(
        20,
        ge=0,
        le=MAX_STEPS,
        description="Optimizer steps of the warm-up: the learning rate rises "
        "linearly to `lr` (`one_cycle`: along half a cosine from `lr`/25). 0 = none.",
    )
    multiply_lr_step: float = Field(
        0.999,
        gt=0.0,
        le=1.0,
        description="`exponential` schedule: after the warm-up, the learning rate is "
        "multiplied by this after every optimizer step (1 = constant).",
    )
    default_fps: float | None = Field(
        None,
        gt=0.0,
        le=10_000.0,
        description="The frames per second assumed for samples that have none; only "
        "used with `time`.",
    )
    accumulate_grad_batches: int = Field(
        1,
        gt=0,
        le=10_000,
        description="Batches whose gradients are summed into one optimizer step "
        "(Lightning's gradient accumulation).",
    )
    checkpoint_every_n_steps: int | None = Field(
        50,
        gt=0,
        le=MAX_STEPS,
        description="Save `last.ckpt` every this many optimizer steps; null saves it "
        "only at the end of each epoch (and when the run is interrupted).",
    )
    log_every_n_steps: int = Field(
        10,
        ge=1,
        le=MAX_STEPS,
        description="Training steps between the per-step values (loss, learning "
        "rate) written to the loggers (Lightning's `log_every_n_steps`); capped at "
        "the training batches of one epoch, so that a small dataset still logs.",
    )
    lr_schedule: Literal["exponential", "cosine", "one_cycle"] = Field(
        "exponential",
        description="The decay after the warm-up: `exponential` (multiplied by "
        "`multiply_lr_step` every step), `cosine` (half a cosine down to 0 at the "
        "last step) or `one_cycle` (warm-up along half a cosine from `lr`/25, then "
        "half a cosine down to `lr`/10000 at the last step).",
    )
    weight_decay: float = Field(
        0.01,
        ge=0.0,
        le=10.0,
        description="AdamW's decoupled weight decay (0 = none).",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Label smoothing of every head's training cross-entropy (0 = "
        "none); validation and test losses are plain.",
    )
    gradient_clip_norm: float | None = Field(
        None,
        gt=0.0,
        le=1.0e6,
        description="Clip the gradients' global L2 norm to this before every "
        "optimizer step; null = no clipping.",
    )
    ema_decay: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="Keep an exponential moving average of the weights with this "
        "decay per optimizer step (e.g. 0.999); validation, the checkpoints, the "
        "final weights and `test.py` then use the averaged weights. null = off.",
    )
    train_on_val: bool = Field(
        False,
        description="Train on the train and val splits together: a final model, "
        "after the settings (epochs included) were chosen on val. The val figures "
        "then measure clips the model trained on (they are printed as such), and "
        "`best.ckpt` holds the last epoch's weights.",
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
    """A fixed schedule of which submodules are frozen when.

    The section is optional: leave it out (or write `null`) to train every module all
    the time; when present, `model_params` and `freeze_pattern_repeats` are
    required. It cannot be combined with `transfer.freeze_parts` nor with
    `train_parameters.pre_training`.

    Pattern `i` (the `i`-th entry of every list in `model_params`) holds for
    `freeze_pattern_repeats[i]` epochs or steps, from epoch or step 0; after the last
    pattern every listed module is unfrozen for the rest of training, and modules not
    listed are never touched. Module names are `feature_extractor`, `transformer`,
    `heads`, or a dotted path inside them (`feature_extractor.backbone`). A frozen
    module gets no gradients and stays in eval mode (BatchNorm statistics fixed,
    dropout off); `freeze/<name>` (1 = frozen) is logged every training step.
    """

    model_params: dict[str, list[bool]] = Field(
        description="Module name -> one entry per pattern, `true` = frozen. Every "
        "list is as long as `freeze_pattern_repeats`; at least one module is needed.",
    )
    freeze_pattern_repeats: list[int] = Field(
        description="How many epochs or steps (see `freeze_mode`) each pattern "
        "holds; every entry must be positive.",
    )
    freeze_mode: Literal["epoch", "step"] = Field(
        "epoch",
        description="Whether `freeze_pattern_repeats` counts epochs (applied at the "
        "start of each epoch) or optimizer steps (applied before each batch).",
    )
    verbose: bool = Field(
        True, description="Print a line whenever the frozen modules change."
    )

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
    """Starting from another run's weights, with parts frozen until a plateau.

    The `train.py` flags of the same names (`--checkpoint`, `--freeze_parts`, ...)
    set these keys. Only weights are taken from the checkpoint: the optimizer, the
    learning-rate schedule and the epoch count start fresh (unlike `--resume`).
    The listed `freeze_parts` are frozen from the start; they thaw on a validation
    plateau with `freeze_until_convergence`, and otherwise stay frozen for the whole
    run.
    """

    checkpoint: str | None = Field(
        None,
        description="A checkpoint or plain state-dict file; every tensor whose name "
        "and shape match initialises the model, the rest keeps its fresh "
        "initialisation. null = start from scratch.",
    )
    freeze_parts: list[str] = Field(
        [],
        description="Submodules frozen from the start: `feature_extractor`, "
        "`transformer`, `heads`, or dotted paths inside them. Cannot be combined "
        "with `freeze_scheduler`.",
    )
    freeze_until_convergence: bool = Field(
        False,
        description="Thaw `freeze_parts` once `val/loss` has not improved for "
        "`patience` validations. Needs `freeze_parts`.",
    )
    patience: int = Field(
        3,
        gt=0,
        le=10_000,
        description="Validations without a `val/loss` improvement before the thaw; "
        "only used with `freeze_until_convergence`.",
    )
    lr_after_unfreeze: float | None = Field(
        None,
        gt=0.0,
        description="The learning rate from the thaw on (the schedule keeps "
        "decaying from it); null leaves it as the schedule has it. Only used with "
        "`freeze_until_convergence`.",
    )
    keep_frozen: bool = Field(
        False,
        description="Never thaw `freeze_parts`, even with "
        "`freeze_until_convergence`. Needs `freeze_parts`.",
    )

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
    """Settings of Lightning's Trainer: several devices and machines, precision, and
    the image backbone's speed-ups.

    `devices`, `num_nodes`, `strategy` and `precision` are passed to Lightning's
    `Trainer`. The accelerator is not a key: `general_parameters.gpu` chooses it (-1
    = CPU). `compile` and `channels_last` apply to the image backbone of
    `cnn_extractor` and `resnet50_extractor` (also inside a fused extractor) and do
    nothing for the landmark-only extractors. For the video networks, `compile`
    applies to all of them and `channels_last` (as channels_last_3d, the 5-D
    format) to the convolutional ones (S3D, R3D, MC3, R(2+1)D); Swin3D and MViT
    keep their tokens channel-last anyway.
    """

    devices: Annotated[int, Field(le=4096)] | str | list[int] | None = Field(
        None,
        description="Lightning's `devices`. null (or 1) is one process: on the CPU, "
        "or on GPU `general_parameters.gpu`. A number N > 1 is the first N GPUs (with "
        "`gpu` above 0 list them instead, e.g. `[1, 2]`).",
    )
    num_nodes: int = Field(
        1, gt=0, le=10_000, description="Lightning's `num_nodes`: machines."
    )
    strategy: str = Field(
        "auto", description="Lightning's `strategy`, for example `ddp`."
    )
    compile: bool = Field(
        False,
        description="`torch.compile` the image backbone in place (dynamic shapes; "
        "checkpoint keys are unchanged). The first steps are slow while it compiles.",
    )
    channels_last: bool = Field(
        True,
        description="Keep the image backbone's weights in channels-last memory "
        "format (the frames are always passed in that format); a convolutional "
        "video network's weights and clips in channels_last_3d.",
    )
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
    ] = Field(
        "32-true",
        description="Lightning's `precision`; Lightning may still refuse a value on "
        "the chosen device, which is a config error too.",
    )


class SignpipeConfig(Section):
    """The whole `train_config.yml`."""

    general_parameters: GeneralParameters = Field(
        GeneralParameters(),
        description="Data, annotation files, run directory, device, seed.",
    )
    augmentations_parameters: AugmentationsParameters = Field(
        AugmentationsParameters(),
        description="Resizing and cropping of the image frames, and their random "
        "training augmentations.",
    )
    train_parameters: TrainParameters = Field(
        TrainParameters(),
        description="What to train, sampling, optimizer, learning-rate schedule.",
    )
    landmarks_parameters: LandmarksParameters = Field(
        LandmarksParameters(),
        description="Landmark points, their preparation and augmentations (with "
        "`train_parameters.landmarks: true`).",
    )
    feature_extractor: FeatureExtractorConfig = Field(
        FeatureExtractorConfig(), description="The per-frame feature extractor."
    )
    transformer: TransformerConfig = Field(
        TransformerConfig(),
        description="The temporal encoder that turns frame features into a clip "
        "embedding.",
    )
    heads: HeadsConfig = Field(
        HeadsConfig(),
        description="The classification heads, grouped by classification mode.",
    )
    freeze_scheduler: FreezeSchedulerConfig | None = Field(
        None,
        description="An optional fixed schedule of frozen modules (null = none).",
    )
    transfer: TransferConfig = Field(
        TransferConfig(),
        description="Starting from another run's weights, with parts frozen.",
    )
    trainer: TrainerConfig = Field(
        TrainerConfig(),
        description="Lightning Trainer settings: devices, machines, precision.",
    )

    @model_validator(mode="after")
    def _model_settings(self) -> SignpipeConfig:
        # Checked here when the models are registered (imported) already; else by
        # `model_problems` once they are (train.py's preflight, `build_pipeline`).
        problems = model_problems(self, import_first=False)
        if problems:
            raise ValueError("\n".join(problems))
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

    @model_validator(mode="after")
    def _video_network_input(self) -> SignpipeConfig:
        name = self.feature_extractor.name
        spec = VIDEO_NETWORKS.get(name)
        if spec is None:
            return self
        needs = f"feature_extractor.name: {name} needs {spec.requirement()}"
        for key, on in (
            ("train_parameters.landmarks", self.train_parameters.landmarks),
            ("train_parameters.pre_training", self.train_parameters.pre_training),
        ):
            if on:
                raise ValueError(
                    f"{key}: a video network ({name}) reads whole clips, not frames "
                    "one by one; set it to false (landmark fusion and masked-frame "
                    "pretraining work per frame)"
                )
        segments = self.train_parameters.num_segments
        if spec.exact_frames is not None and segments != spec.exact_frames:
            raise ValueError(
                f"{needs}: set train_parameters.num_segments: {spec.exact_frames} "
                f"(is {segments})"
            )
        augmentations = self.augmentations_parameters
        if augmentations.apply_center_crop:
            side, key = augmentations.center_crop_size, "center_crop_size"
        elif augmentations.apply_resize:
            side, key = augmentations.resize_size, "resize_size"
        else:
            side, key = None, "apply_center_crop"
        if spec.exact_size is not None and (
            key != "center_crop_size" or side != spec.exact_size
        ):
            raise ValueError(
                f"{needs}: set augmentations_parameters.apply_center_crop: true and "
                f"augmentations_parameters.center_crop_size: {spec.exact_size} (is "
                f"{side if key == 'center_crop_size' else 'no centre crop'})"
            )
        if side is not None and side < spec.min_size:
            raise ValueError(
                f"{needs}: set augmentations_parameters.{key} to at least "
                f"{spec.min_size} (is {side})"
            )
        return self

    def uses_frames(self) -> bool:
        """Whether image frames are read: the extractor's registered `reads`."""
        facts = EXTRACTOR_FACTS.get(
            self.feature_extractor.name, self.general_parameters.plugins
        )
        return facts.reads_frames()

    def uses_landmarks(self) -> bool:
        """Whether landmarks are read (`train_parameters.landmarks`)."""
        return self.train_parameters.landmarks

    def uses_features(self) -> bool:
        """Whether precomputed feature rows are read instead of frames or landmarks
        (the SSVP-SLT layout): the extractor's registered `reads`."""
        facts = EXTRACTOR_FACTS.get(
            self.feature_extractor.name, self.general_parameters.plugins
        )
        return "features" in facts.reads

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

    def head_labels(self) -> dict[str, str]:
        """What each active head's label is (its kind's registered `label`: class,
        sequence or text)."""
        plugins = self.general_parameters.plugins
        return {
            name: HEAD_KIND_FACTS.get(head.kind, plugins).label
            for name, head in self.active_heads().items()
        }

    def tokenizer_paths(self) -> dict[str, str | None]:
        """Each active text head's `tokenizer_path` setting (a text kind declares
        it; None when not given), by head."""
        labels = self.head_labels()
        return {
            name: (head.model_extra or {}).get("tokenizer_path")
            for name, head in self.active_heads().items()
            if labels[name] == "text"
        }

    def head_modes(self) -> dict[str, str]:
        """Which classification mode (head group) each active head belongs to."""
        return {
            name: mode
            for mode in self.train_parameters.modes()
            for name in self.heads.group(mode)
        }


def model_problems(config: SignpipeConfig, import_first: bool = True) -> list[str]:
    """Problems with the chosen models, from their registered facts: unknown names
    and head kinds, each model's own settings, landmarks for a landmark-only
    extractor, no landmarks, time or frame cache for precomputed features, too few
    frames; each as `key: why`.

    Args:
        config: the config.
        import_first: import the models and `general_parameters.plugins` first
            (False: check only what is registered already).
    """
    if import_first:
        # pylint: disable-next=import-outside-toplevel
        from config.registry import import_models

        import_models(config.general_parameters.plugins)
    problems = []
    for section, facts in (
        (config.feature_extractor, EXTRACTOR_FACTS),
        (config.transformer, ENCODER_FACTS),
    ):
        if import_first and facts.known(section.name) is None:
            problems.append(
                f"{facts.section}.name: unknown {facts.kind} '{section.name}'; "
                f"allowed: {', '.join(facts.names())}"
            )
        problems += settings_problems(section, facts)
    extractor = EXTRACTOR_FACTS.known(config.feature_extractor.name)
    if extractor and "landmarks" in extractor.reads and not config.uses_landmarks():
        problems.append(
            f"feature_extractor.name: {extractor.name} reads landmarks; set "
            "train_parameters.landmarks: true"
        )
    if extractor and "features" in extractor.reads:
        problems += _features_problems(config, extractor.name)
    segments = config.train_parameters.num_segments
    # A video network's clip is checked with its sizes, in one message
    # (_video_network_input).
    if (
        extractor
        and extractor.name not in VIDEO_NETWORKS
        and isinstance(segments, int)
        and segments < extractor.min_frames
    ):
        problems.append(
            f"train_parameters.num_segments: {extractor.name} needs at least "
            f"{extractor.min_frames} frames per clip (is {segments})"
        )
    for mode in CLASSIFICATION_MODES:
        for name, head in config.heads.group(mode).items():
            if import_first and HEAD_KIND_FACTS.known(head.kind) is None:
                problems.append(
                    f"heads.{mode}.{name}.kind: unknown head kind '{head.kind}'; "
                    f"allowed: {', '.join(HEAD_KIND_FACTS.names())}"
                )
            problems += settings_problems(
                head, HEAD_KIND_FACTS, name=head.kind, where=f"heads.{mode}.{name}"
            )
    sequence_heads = [
        name
        for name, head in config.active_heads().items()
        if (facts := HEAD_KIND_FACTS.known(head.kind)) and facts.label != "class"
    ]
    if sequence_heads and config.landmarks_parameters.apply_crop:
        problems.append(
            "landmarks_parameters.apply_crop: a crop cuts signs that the labels of "
            f"head {sequence_heads[0]} (a sequence or sentence) still name; set it "
            "to false"
        )
    return problems


def _features_problems(config: SignpipeConfig, name: str) -> list[str]:
    """What a config reading precomputed features (extractor `name`) sets that has
    no meaning for them: they are read from the SSVP-SLT layout, with no frames,
    landmarks or frame rate."""
    reads = f"{name} reads precomputed feature rows (the SSVP-SLT layout)"
    problems = []
    if config.train_parameters.landmarks:
        problems.append(
            f"train_parameters.landmarks: {reads}, no landmark files; set it to false"
        )
    if config.train_parameters.time is not None:
        problems.append(
            f"train_parameters.time: {reads}, which have no frame rate; set it to "
            "null (num_segments rows are spread over each clip)"
        )
    if config.train_parameters.pre_training:
        problems.append(
            f"train_parameters.pre_training: {reads}; masked-frame pretraining "
            "rebuilds frames or landmarks, so set it to false"
        )
    if config.general_parameters.frame_cache:
        problems.append(
            f"general_parameters.frame_cache: {reads}, no frames to cache; set it "
            "to false"
        )
    return problems
