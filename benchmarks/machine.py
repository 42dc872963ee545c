"""The machine the figures are measured on: CPU, cores, software versions, device,
and how much CPU time other processes took during the run (they skew every rate)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import lightning as L
import PIL
import torch
import torchvision
from PIL import features


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """The machine and software the figures were measured with."""
    cores = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "lightning": L.__version__,
        "pillow": PIL.__version__,
        "pillow_libjpeg_turbo": bool(features.check_feature("libjpeg_turbo")),
        "torch_threads": torch.get_num_threads(),
        "device": f"cuda: {torch.cuda.get_device_name(0)}" if cuda else "cpu",
        # Other processes on the machine skew the figures: see the load at the start.
        "load_average_start": list(os.getloadavg()),
    }


def busy_cpu_seconds() -> tuple[float, float] | None:
    """CPU seconds used so far by the whole machine (/proc/stat) and by this process
    and its reaped children; None where /proc/stat is missing."""
    try:
        fields = Path("/proc/stat").read_text(encoding="utf-8").split("\n", 1)[0]
    except OSError:
        return None
    ticks = [int(value) for value in fields.split()[1:9]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return busy, own.user + own.system + own.children_user + own.children_system


def other_cpu_share(start, end, seconds: float, cores: int) -> float | None:
    """The share of the machine's CPU time that other processes used in between."""
    if start is None or end is None:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, others) / max(seconds * cores, 1e-9)
