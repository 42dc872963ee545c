"""Test scaffolding shared by conftest.py and the test modules: the tiny config,
the shared-data paths, HearAI's column titles, the ways of running train.py and
demo.py, and generated inputs (an untrained checkpoint, a landmark file).

Imported as ``helpers``: pytest (rootdir-based "prepend" import mode, no
``__init__.py`` in tests/) puts tests/ on ``sys.path`` before it imports conftest.py
and the test modules.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
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
# (config.hamnosys_heads) order ("Handhape" as shipped by HearAI).
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


def load_test_cli(name: str = "signpipe_test_cli"):
    """The repository's test.py as a module (loaded by path: `test` is also a
    standard-library package name)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_error(capsys, status: int, *needles: str) -> str:
    """A command's one `error:` line on stderr: exit status 2, no traceback, every
    needle in it."""
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


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


#: The gloss classes of `write_checkpoint`'s models unless told otherwise.
GLOSSES = ["what", "when", "yes"]


def label_names(glosses: list[str]) -> dict[str, list[str]]:
    """A gloss head of `glosses` and the eight HamNoSys heads' symbol names."""
    # pylint: disable-next=import-outside-toplevel
    from config.hamnosys_heads import HEAD_ORDER, head_class_names

    names = head_class_names()
    return {"gloss": list(glosses), **{head: names[head] for head in HEAD_ORDER}}


def write_checkpoint(raw: dict, path: Path, glosses: list[str] | None = None) -> Path:
    """An untrained model of config `raw` with a gloss head (`GLOSSES` by default)
    and the HamNoSys heads, saved in the layout train.py writes (hyper_parameters +
    state_dict)."""
    # Imported here so that conftest.py (which imports this module) does not load
    # Lightning and torch for every test session.
    # pylint: disable=import-outside-toplevel
    import torch

    from training.recognition import SignRecognitionModule
    from config.loader import parse_config

    # pylint: enable=import-outside-toplevel
    names = label_names(glosses or GLOSSES)
    module = SignRecognitionModule.from_config(
        parse_config(raw),
        {head: len(classes) for head, classes in names.items()},
        names,
    )
    torch.save(
        {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)},
        path,
    )
    return path


def model_config(shipped_config: dict, data_path: Path, extractor: str) -> dict:
    """The shipped config, shrunk, with `extractor`: a landmark one reads landmarks,
    `fused` is the image CNN fused with landmarks."""
    raw = merge(copy.deepcopy(shipped_config), tiny_overrides())
    raw["general_parameters"]["data_path"] = str(data_path)
    if extractor not in ("cnn_extractor", "fused"):
        raw["feature_extractor"] = {"name": extractor, "representation_size": 16}
    raw["train_parameters"]["landmarks"] = extractor != "cnn_extractor"
    return raw


def write_landmarks(path: Path, frames: int, seed: int = 0) -> None:
    """A MediaPipe-like `.npz` with random points and shoulders 2 units apart."""
    rng = np.random.default_rng(seed)
    parts = {
        part: rng.normal(size=(frames, points, 3)).astype(np.float32)
        for part, points in {"pose": 33, "left_hand": 21, "right_hand": 21}.items()
    }
    parts["pose"][:, 11] = [1.0, 0.0, 0.0]
    parts["pose"][:, 12] = [-1.0, 0.0, 0.0]
    np.savez(path, **parts)


@contextlib.contextmanager
def demo_server(checkpoint: Path, log: Path) -> Iterator[tuple[str, float]]:
    """demo.py in its own process on a free port (stderr into `log`): its URL and
    how many seconds it took to say where it listens."""
    with (
        log.open("w", encoding="utf-8") as stderr,
        subprocess.Popen(
            [sys.executable, "demo.py", str(checkpoint), "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as process,
    ):
        start, said, match = time.perf_counter(), [], None
        while match is None and len(said) < 50:
            said.append(process.stdout.readline())
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+/)", said[-1])
            if not said[-1]:
                break
        seconds = time.perf_counter() - start
        try:
            assert match, f"demo.py said: {''.join(said)!r} {log.read_text()[-2000:]}"
            yield match.group(1), seconds
        finally:
            process.terminate()
            process.wait(timeout=30)


def serve_until_stopped(server, sockets) -> None:
    """uvicorn's `Server.run` without serving (monkeypatched in for it): wait until
    the demo stops it, as it does when its model fails to load."""
    for listener in sockets:
        listener.close()
    stop_at = time.monotonic() + 120
    while not server.should_exit and time.monotonic() < stop_at:
        time.sleep(0.05)
    assert server.should_exit, "the demo kept serving a model that failed to load"
