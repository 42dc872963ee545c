"""Prediction measurements: clips/s of predict.py's CLS embedding export over frame
folders, from a checkpoint of a benchmark-trained module in predict.py's format."""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from pathlib import Path

import torch

from benchmarks.common import rate
from config.loader import config_to_dict
from evaluation.checkpoints import load_checkpoint
from evaluation.prediction import ClipOptions, list_inputs
from evaluation.writers import OutputWriter, run_prediction
from training.datamodule import SignDataModule
from training.recognition import SignRecognitionModule


def write_checkpoint(
    module: SignRecognitionModule, datamodule: SignDataModule, config, path: Path
) -> Path:
    """A checkpoint with what predict.py reads (hyper-parameters and weights)."""
    torch.save(
        {
            "hyper_parameters": {
                "config": config_to_dict(config),
                "num_classes": dict(datamodule.data.num_classes),
                "label_names": datamodule.data.label_names,
            },
            "state_dict": module.cpu().state_dict(),
        },
        path,
    )
    return path


def link_inputs(data_root: Path, count: int, target: Path) -> Path:
    """A folder holding `count` of the dataset's frame folders (as links)."""
    target.mkdir(parents=True, exist_ok=True)
    folders = sorted(p for p in data_root.iterdir() if p.is_dir())[:count]
    for folder in folders:
        link = target / folder.name
        try:
            link.symlink_to(folder, target_is_directory=True)
        except OSError:
            shutil.copytree(folder, link)
    return target


def measure_predict(
    checkpoint: Path, inputs_dir: Path, work: Path, workers: int, bf16: bool = False
) -> dict:
    """Clips/s of predict.py's CLS export (library call, as `predict.main` runs it),
    after a warm-up export of a few inputs; the checkpoint load is not timed."""
    loaded = load_checkpoint(checkpoint)
    options = ClipOptions.from_config(loaded.config, all_frames=False)
    inputs = list_inputs(inputs_dir)
    timings = []
    for name, subset in (("warmup", inputs[:8]), ("timed", inputs)):
        writer = OutputWriter(work / f"predict-{name}", "CLS", loaded.label_names)
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if bf16
            else contextlib.nullcontext()
        )
        start = time.perf_counter()
        with autocast, contextlib.redirect_stderr(io.StringIO()):  # tqdm's bar
            results = run_prediction(
                loaded, subset, writer, options=options, batch_size=8, workers=workers
            )
        timings.append(time.perf_counter() - start)
        failed = [r for r in results if r.error is not None]
        if failed:
            raise RuntimeError(f"predict failed on {failed[0].name}: {failed[0].error}")
    return {
        "clips_per_s": rate(len(inputs), timings[-1]),
        "clips": len(inputs),
        "seconds": timings[-1],
        "workers": workers,
        "batch_size": 8,
        "kind": "CLS",
        "device": str(loaded.device),
    }
