"""The CUDA measurements: training in bf16-mixed with a channels_last backbone and
prediction under bf16 autocast on GPU 0, and the model FLOPs utilisation (MFU)
against the GPU's dense bf16 peak."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.common import Setup, ratio
from benchmarks.prediction import measure_predict, write_checkpoint
from benchmarks.training import measure_train

#: Dense bf16 tensor peak FLOP/s by GPU name (first match wins).
BF16_PEAK_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
)


def bf16_peak(name: str) -> float | None:
    """The GPU's dense bf16 peak FLOP/s from `BF16_PEAK_FLOPS`, None if unknown."""
    for key, peak in BF16_PEAK_FLOPS:
        if key.lower() in name.lower():
            return peak
    return None


def mfu_summary(name: str, train: dict) -> dict:
    """The model FLOPs utilisation of a `measure_train` result on the GPU `name`:
    achieved FLOP/s (FLOPs per step / batch size x clips/s) over the bf16 peak."""
    peak = bf16_peak(name)
    flops_per_clip = train["flops_per_step"] / train["batch_size"]
    result = {
        "device": name,
        "bf16_peak_flops_per_s": peak,
        "train": train,
        "mfu": ratio(flops_per_clip * train["clips_per_s"], peak),
        "model_only_mfu": ratio(flops_per_clip * train["model_only_clips_per_s"], peak),
    }
    if peak is None:
        result["note"] = f"no bf16 peak known for {name}; add it to BF16_PEAK_FLOPS"
    return result


def measure_cuda(setup: Setup, inputs_dir: Path) -> dict:
    """bf16-mixed + channels_last training and prediction on GPU 0, and the MFU."""
    name = torch.cuda.get_device_name(0)
    config = setup.config(
        "cuda", ["general_parameters.gpu=0", "trainer.precision=bf16-mixed"]
    )
    train, module, datamodule = measure_train(
        config, setup.work, setup.scale.fit_plan(), channels_last=True
    )
    result = mfu_summary(name, train)
    checkpoint = write_checkpoint(module, datamodule, config, setup.work / "cuda.ckpt")
    result["predict"] = measure_predict(
        checkpoint,
        inputs_dir,
        setup.work / "cuda",
        config.general_parameters.workers,
        bf16=True,
    )
    return result
