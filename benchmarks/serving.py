"""Serving measurements: the demo's per-clip latency (landmark extraction and the model
apart) and CPU inference of an exported ONNX model against torch.

Both use models of the shipped config with random weights (speed does not depend on
the weights): the image model `make train` trains, and the same with the
landmarks-only extractor. Run alone: `python -m benchmarks.serving`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import CONFIG_FILE, REPO
from evaluation.checkpoints import LoadedModel
from evaluation.export import export_model, generated_inputs
from evaluation.onnx_backend import load_onnx
from models.pipeline import build_pipeline
from serving.inference import DemoService, VideoFile
from utils.config import SignpipeConfig
from utils.config_loader import load_raw_config, parse_config
from utils.hamnosys_heads import HEAD_ORDER, head_class_names

#: The real clip the demo is timed on (a WLASL sample video, 72 frames of 1280x720).
DEMO_VIDEO = REPO.parent / "shared" / "data" / "video" / "wlasl_sample" / "69546.mp4"
GLOSSES = 8
MODELS = ("image", "landmarks")


def model_config(kind: str) -> SignpipeConfig:
    """The shipped config; `landmarks`: with the landmarks-only extractor."""
    raw = load_raw_config(CONFIG_FILE)
    if kind == "landmarks":
        raw["train_parameters"]["landmarks"] = True
        raw["feature_extractor"] = {
            "name": "landmarks_extractor",
            "representation_size": raw["feature_extractor"]["representation_size"],
        }
    return parse_config(raw)


def random_model(kind: str) -> LoadedModel:
    """A model of `model_config(kind)` with random weights, gloss and HamNoSys heads,
    on the CPU in eval mode."""
    config = model_config(kind)
    symbols = head_class_names()
    names = {"gloss": [f"gloss{i}" for i in range(GLOSSES)]}
    names.update({head: symbols[head] for head in HEAD_ORDER})
    model = build_pipeline(config, {head: len(n) for head, n in names.items()})
    return LoadedModel(model.eval(), config, names, torch.device("cpu"))


def _percentiles(values: list[float]) -> dict[str, float]:
    """p50 and p95 (nearest rank) of milliseconds."""
    ordered = sorted(values)
    rank = max(0, int(np.ceil(0.95 * len(ordered))) - 1)
    return {"p50": statistics.median(ordered), "p95": ordered[rank]}


def demo_latency(
    kind: str = "landmarks", clips: int = 3, video: Path = DEMO_VIDEO
) -> dict:
    """The demo's latency per clip, one request after another (after one warm-up).

    Args:
        kind: `landmarks` (MediaPipe landmarks feed the model) or `image`.
        clips: timed requests.
        video: the clip sent each time.

    Returns:
        `{"kind", "video", "clips", "steps": {step: {"p50", "p95"}}}` in ms, steps as
        the demo's `timings_ms` (landmarks, decode, model, overlay, total, ...); or
        `{"skipped": reason}` when the video is absent.
    """
    if not Path(video).is_file():
        return {"skipped": f"{video} is absent"}
    service = DemoService(random_model(kind), "torch")
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="signpipe-bench-demo-") as scratch:
        for index in range(clips + 1):
            folder = Path(scratch) / str(index)
            folder.mkdir()
            copy = folder / f"clip{Path(video).suffix}"
            copy.write_bytes(Path(video).read_bytes())
            result = service.predict(VideoFile(copy, Path(video).name))
            if index:  # the first request warms up MediaPipe and torch
                runs.append(result["timings_ms"])
    steps = {step: _percentiles([run[step] for run in runs]) for step in runs[0]}
    return {"kind": kind, "video": str(video), "clips": clips, "steps": steps}


def _time_calls(call, repeats: int) -> float:
    """Median milliseconds of `repeats` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def onnx_vs_torch(kind: str = "image", batch: int = 8, repeats: int = 10) -> dict:
    """CPU inference of one batch: torch (inference mode) against onnxruntime on the
    exported file, same generated input, `num_segments` frames per clip.

    Returns:
        `{"kind", "batch", "time", "torch_ms", "onnx_ms", "onnx_speedup",
        "export_s", "max_abs_diff", "threads"}`.
    """
    loaded = random_model(kind)
    frames = loaded.config.train_parameters.num_segments
    inputs = generated_inputs(loaded.config, batch, frames, seed=1)
    inputs["mask"][:] = True
    with tempfile.TemporaryDirectory(prefix="signpipe-bench-onnx-") as scratch:
        start = time.perf_counter()
        report = export_model(loaded, Path(scratch) / "model.onnx")
        export_s = time.perf_counter() - start
        onnx_model = load_onnx(report.onnx_path, threads=torch.get_num_threads()).model

        def run_torch() -> None:
            with torch.inference_mode():
                loaded.model(inputs)

        torch_ms = _time_calls(run_torch, repeats)
        onnx_ms = _time_calls(lambda: onnx_model(inputs), repeats)
    return {
        "kind": kind,
        "batch": batch,
        "time": frames,
        "torch_ms": torch_ms,
        "onnx_ms": onnx_ms,
        "onnx_speedup": torch_ms / onnx_ms,
        "export_s": export_s,
        "max_abs_diff": report.max_abs_diff,
        "threads": torch.get_num_threads(),
    }


def run_serving_benchmarks(clips: int = 3, repeats: int = 10) -> dict:
    """Every serving measurement: the demo's latency (landmark model) and ONNX vs
    torch for both models, with the load average before and after (other jobs on
    the machine slow every figure)."""
    load_before = os.getloadavg()
    results = {
        "demo_latency": demo_latency("landmarks", clips),
        "onnx_vs_torch": {
            kind: onnx_vs_torch(kind, repeats=repeats) for kind in MODELS
        },
    }
    results["load_average"] = {"before": load_before, "after": os.getloadavg()}
    return results


def serving_rows(results: dict) -> list[str]:
    """The results as markdown table rows: `| measurement | value | unit |`."""
    rows = []
    latency = results["demo_latency"]
    if "skipped" in latency:
        rows.append(f"| demo latency per clip | skipped | {latency['skipped']} |")
    else:
        for step in ("landmarks", "decode", "model", "overlay", "total"):
            if step in latency["steps"]:
                shown = latency["steps"][step]
                rows.append(
                    f"| demo {step} per clip ({latency['kind']} model, p50 / p95) | "
                    f"{shown['p50']:,.1f} / {shown['p95']:,.1f} | ms |"
                )
    for kind, measured in results["onnx_vs_torch"].items():
        rows.append(
            f"| {kind} model, batch {measured['batch']} x {measured['time']} frames: "
            f"torch / onnxruntime (CPU, {measured['threads']} threads) | "
            f"{measured['torch_ms']:,.1f} / {measured['onnx_ms']:,.1f} "
            f"(x{measured['onnx_speedup']:.2f}) | ms |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.serving`: print the rows, then the JSON."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving")
    parser.add_argument("--clips", type=int, default=3, help="timed demo requests")
    parser.add_argument("--repeats", type=int, default=10, help="timed model calls")
    args = parser.parse_args(argv)
    results = run_serving_benchmarks(args.clips, args.repeats)
    print("| measurement | value | unit |\n|---|---|---|")
    print("\n".join(serving_rows(results)))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
