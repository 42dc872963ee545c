"""What every benchmark shares: the config on the generated data, the run's scale."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from config.loader import load_config
from config.schema import SignpipeConfig

REPO = Path(__file__).resolve().parents[1]
CONFIG_FILE = REPO / "train_config.yml"
#: Decoding processes of the decode-limit measurement (= the configured workers).
PROCESSES = 2
#: What the issue asks of each ratio.
TARGETS = {
    "loader_vs_naive": 3.0,
    "train_vs_model_only": 0.85,
    "cached_loader_vs_decode": 1.0,
}


@dataclass(frozen=True)
class FitPlan:
    """How long to train: `warmup` (>= 1) untimed steps, then `steps` timed ones, or
    fewer when they take longer than `max_seconds`."""

    warmup: int
    steps: int
    max_seconds: float


@dataclass(frozen=True)
class Scale:
    """How much to measure (counts after warm-up)."""

    clips: int
    loader_batches: int
    naive_clips: int
    decode_frames: int
    train_warmup: int
    train_steps: int
    landmark_steps: int
    predict_clips: int
    #: Each training measurement stops after this many timed seconds.
    fit_seconds: float
    #: Config overrides on top of train_config.yml (a smaller model for --quick).
    overrides: tuple[str, ...] = ()

    def fit_plan(self, landmarks: bool = False) -> FitPlan:
        """How long to train (the landmarks-only model takes more, faster steps)."""
        steps = self.landmark_steps if landmarks else self.train_steps
        return FitPlan(self.train_warmup, steps, self.fit_seconds)


FULL = Scale(
    clips=96,
    loader_batches=150,
    naive_clips=120,
    decode_frames=6000,
    train_warmup=3,
    train_steps=60,
    landmark_steps=300,
    predict_clips=96,
    fit_seconds=60.0,
)
QUICK = Scale(
    clips=24,
    loader_batches=3,
    naive_clips=4,
    decode_frames=128,
    train_warmup=1,
    train_steps=2,
    landmark_steps=3,
    predict_clips=8,
    fit_seconds=20.0,
    overrides=(
        "augmentations_parameters.resize_size=32",
        "augmentations_parameters.center_crop_size=32",
        "train_parameters.num_segments=4",
        "feature_extractor.representation_size=32",
    ),
)


@dataclass(frozen=True)
class Setup:
    """Where a run reads its data and writes its scratch files, and how much it does."""

    data_root: Path
    work: Path
    scale: Scale

    def config(self, name: str, overrides: list[str] | None = None) -> SignpipeConfig:
        """train_config.yml on the benchmark data with the scale's and `overrides`;
        run files go to `work/name`."""
        return load_bench_config(
            self.data_root,
            self.work / name,
            [*self.scale.overrides, *(overrides or [])],
        )


def load_bench_config(
    data_root: Path, save_dir: Path, overrides: list[str] | None = None
) -> SignpipeConfig:
    """train_config.yml on the benchmark data, with `dotted.key=value` overrides."""
    return load_config(
        CONFIG_FILE,
        [
            f"general_parameters.data_path={json.dumps(str(data_root))}",
            f"general_parameters.path_to_save={json.dumps(str(save_dir))}",
            *(overrides or []),
        ],
    )


def rate(count: float, seconds: float) -> float:
    """`count` per second."""
    return count / max(seconds, 1e-9)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator; None when either is missing (or zero below)."""
    if numerator is None or not denominator:
        return None
    return numerator / denominator
