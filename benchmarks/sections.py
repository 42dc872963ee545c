"""The sections of `make bench` beyond the frame loader and training: the video data
source, the video networks and serving (the demo page's latency, ONNX against torch).

Each measurement lives in its own module (`benchmarks.video_loader`,
`benchmarks.video_networks`, `benchmarks.serving`, each also runnable alone); this
module picks their sizes for a full or a `--quick` run and prints their rows as one
markdown table per section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from benchmarks import video_loader, video_networks
from benchmarks.serving import (
    DEMO_MODEL,
    demo_latency,
    demo_startup,
    onnx_vs_torch,
    serving_rows,
)
from config.model import VIDEO_NETWORKS

#: Networks that only take 16 x 224 x 224 clips: timed one clip per step.
FIXED_SIZE_NETWORKS = ("mvit_v1_b", "mvit_v2_s")
HEADER = ["| measurement | value | unit |", "|---|---|---|"]


class StageClock(Protocol):  # pylint: disable=too-few-public-methods
    """What `bench.Stages` offers: announce and time the next stage."""

    def start(self, name: str) -> None:
        """End the current stage and start `name`."""


def _networks(quick: bool) -> dict:
    """One CPU training step per video network (one small network for `--quick`)."""
    if quick:
        return video_networks.measure_video_networks(
            ["mc3_18"], batch_size=1, frames=2, size=16, steps=1, warmup=0
        )
    small = [name for name in VIDEO_NETWORKS if name not in FIXED_SIZE_NETWORKS]
    results = video_networks.measure_video_networks(small, steps=1)
    fixed = video_networks.measure_video_networks(
        list(FIXED_SIZE_NETWORKS), batch_size=1, steps=1
    )
    results["networks"].update(fixed["networks"])
    return results


def _serving(quick: bool) -> dict:
    """The demo's per-clip latency and ONNX vs torch; `--quick` skips MediaPipe (the
    image model) and exports only the landmark model."""
    if quick:
        return {
            "demo_latency": demo_latency("image", rounds=1),
            "onnx_vs_torch": {"landmarks": onnx_vs_torch("landmarks", 2, repeats=1)},
        }
    return {
        "demo_latency": demo_latency(DEMO_MODEL, rounds=4),
        "demo_startup": demo_startup(DEMO_MODEL),
        "onnx_vs_torch": {
            kind: onnx_vs_torch(kind, repeats=10) for kind in ("image", "landmarks")
        },
    }


def measure_sections(
    work: Path, cache_root: Path | None, quick: bool, stages: StageClock
) -> dict:
    """`video_loader`, `video_networks` and `serving` results."""
    plan = video_loader.QUICK if quick else video_loader.FULL
    stages.start("video loader")
    results = {
        "video_loader": video_loader.measure_video_loader(
            spec=plan["spec"],
            batches=plan["batches"],
            overrides=plan["overrides"],
            cache_root=cache_root,
            work=work / "video",
        )
    }
    stages.start("video networks")
    results["video_networks"] = _networks(quick)
    stages.start("serving")
    results["serving"] = _serving(quick)
    return results


def format_sections(results: dict) -> str:
    """The three sections as markdown tables."""
    return "\n".join(
        [
            "",
            "video data source",
            *HEADER,
            *video_loader.markdown_rows(results["video_loader"]),
            "",
            "video networks: one training step on the CPU",
            *video_networks.markdown_rows(results["video_networks"]),
            "",
            "serving: the demo page and ONNX",
            *HEADER,
            *serving_rows(results["serving"]),
        ]
    )
