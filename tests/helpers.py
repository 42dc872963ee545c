"""Test scaffolding shared by conftest.py and the test modules: the tiny config,
the shared-data paths, HearAI's column titles and the ways of running train.py.

Imported as ``helpers``: pytest (rootdir-based "prepend" import mode, no
``__init__.py`` in tests/) puts tests/ on ``sys.path`` before it imports conftest.py
and the test modules.
"""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
AUTSL_VIDEO = SHARED_DATA / "video" / "autsl_sample" / "signer0_sample1000_color.mp4"
AUTSL_FRAMES = 43
needs_video = pytest.mark.skipif(
    not AUTSL_VIDEO.is_file(), reason="../shared/data (the real AUTSL video) is absent"
)
needs_mediapipe = pytest.mark.skipif(
    importlib.util.find_spec("mediapipe") is None,
    reason="mediapipe is not installed (pip install -r requirements-landmarks.txt)",
)

# HearAI's real column titles for the eight HamNoSys heads, in HEAD_ORDER
# (utils.hamnosys_heads) order ("Handhape" as shipped by HearAI).
HEARAI_TITLES = [
    "Symmetry operator",
    "Dom hand - Handshape - base form",
    "Dom hand - Handhape - Thumb position",
    "Dom hand - Handshape - Bending",
    "Dom hand - Handposition - Ext finger direction",
    "Dom hand - Handposition - Palm orientation",
    "Dom hand - Handlocation - Frontal plane l/r",
    "Dom hand - Handlocation - Frontal plane t/b",
]

# Small enough for a CPU test, real enough to exercise every piece.
TINY_OVERRIDES = {
    "general_parameters": {"workers": 0, "ratio_train_test": 0.75},
    "augmentations_parameters": {"resize_size": 32, "center_crop_size": 32},
    "train_parameters": {"epochs": 1, "batch_size": 4, "num_segments": 4},
    "feature_extractor": {"model_path": "resnet10t", "representation_size": 16},
    "transformer": {
        "feedforward_size": 32,
        "num_attention_heads": 2,
        "num_encoder_layers": 1,
        "output_size": 16,
    },
}


def merge(base: dict, update: dict) -> dict:
    """Deep-merge `update` into `base` (in place); returns `base`."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def tiny_overrides(update: dict | None = None) -> dict:
    """A fresh copy of TINY_OVERRIDES with `update` deep-merged on top."""
    return merge(copy.deepcopy(TINY_OVERRIDES), copy.deepcopy(update or {}))


def run_train_process(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    """train.py as a user runs it, in its own process."""
    return subprocess.run(
        [sys.executable, "train.py", "--model_config_path", str(config_path), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def quiet_cpu_trainer(epochs: int, *callbacks):
    """A Lightning Trainer on the CPU for `epochs`, without logger, checkpoints,
    progress bar, model summary or sanity validation; `callbacks` record the run."""
    # Imported here so that conftest.py (which imports this module) does not load
    # Lightning and torch for every test session.
    import lightning  # pylint: disable=import-outside-toplevel

    return lightning.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
        num_sanity_val_steps=0,
    )
