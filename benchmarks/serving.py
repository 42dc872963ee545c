"""Serving measurements: the demo's per-clip latency on real WLASL videos (each step
apart, p50 and p95), its start-up time, and CPU inference of an exported ONNX model
against torch.

The demo is timed with the zoo's WLASL300 hands model (what `make demo` serves) on
the three real WLASL sample videos (`../shared/data/video/wlasl_sample/`, 63-80
frames of 1280x720, 2.1-2.7 s), one request after another; `--quick` times the image
model of the shipped config instead (no MediaPipe). Start-up is the time from
starting `demo.py` to its first answer (`GET /api/info`), and to MediaPipe being
loaded. The ONNX comparison uses models of the shipped config with random weights
(speed does not depend on the weights). Run alone: `python -m benchmarks.serving`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import CONFIG_FILE, REPO
from config.hamnosys_heads import HEAD_ORDER, head_class_names
from config.loader import load_config, with_changes
from config.schema import SignpipeConfig
from evaluation.checkpoints import LoadedModel, resolve_checkpoint
from evaluation.export import export_model, generated_inputs
from evaluation.onnx_backend import load_onnx
from models.pipeline import build_pipeline
from serving.inference import DemoService, VideoFile, load_model
from utils.errors import UserError

#: The real clips the demo is timed on (WLASL sample videos, 1280x720, 2.1-2.7 s).
SAMPLE_DIR = REPO.parent / "shared" / "data" / "video" / "wlasl_sample"
DEMO_VIDEOS = tuple(SAMPLE_DIR / f"{name}.mp4" for name in ("69531", "69532", "69546"))
#: The zoo model `make demo` serves.
DEMO_MODEL = "wlasl300_hands"
GLOSSES = 8
MODELS = ("image", "landmarks")


def model_config(kind: str) -> SignpipeConfig:
    """The shipped config; `landmarks`: with the landmarks-only extractor."""
    config = load_config(CONFIG_FILE)
    if kind != "landmarks":
        return config
    extractor = {
        "name": "landmarks_extractor",
        "representation_size": config.feature_extractor.representation_size,
    }
    return with_changes(
        config, {"train_parameters.landmarks": True, "feature_extractor": extractor}
    )


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
    model: str = DEMO_MODEL, rounds: int = 4, videos: tuple[Path, ...] = DEMO_VIDEOS
) -> dict:
    """The demo's latency per clip, one request after another (after one warm-up).

    Args:
        model: a zoo name or checkpoint (`image`: the shipped config's image model
            with random weights).
        rounds: times each video is sent.
        videos: the clips sent.

    Returns:
        `{"model", "videos", "requests", "steps": {step: {"p50", "p95"}},
        "top1": {video: gloss}}` in ms, steps as the demo's `timings_ms` (landmarks,
        decode, model, overlay, total, ...); or `{"skipped": reason}` when the
        videos or the model are absent.
    """
    missing = [str(video) for video in videos if not Path(video).is_file()]
    if missing:
        return {"skipped": f"{', '.join(missing)} absent"}
    if model == "image":
        loaded = random_model("image")
    else:
        try:
            loaded = load_model(resolve_checkpoint(model))[0]
        except UserError as error:
            return {"skipped": str(error)}
    service = DemoService(loaded, "torch")
    runs: list[dict[str, float]] = []
    top1: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="signpipe-bench-demo-") as scratch:
        for index in range(rounds * len(videos) + 1):
            video = Path(videos[max(0, index - 1) % len(videos)])
            folder = Path(scratch) / str(index)
            folder.mkdir()
            copy = folder / video.name
            copy.write_bytes(video.read_bytes())
            result = service.predict(VideoFile(copy, video.name))
            if index:  # the first request waits for MediaPipe and warms up torch
                runs.append(result["timings_ms"])
                top1[video.stem] = result["heads"]["gloss"][0]["label"]
    steps = {
        step: _percentiles([run[step] for run in runs if step in run])
        for step in runs[0]
    }
    return {
        "model": model,
        "videos": [str(video) for video in videos],
        "requests": len(runs),
        "steps": steps,
        "top1": top1,
    }


def demo_startup(model: str = DEMO_MODEL, repeats: int = 2) -> dict:
    """Seconds from starting `demo.py MODEL --port 0` to its first answer to
    `GET /api/info`, and to MediaPipe being loaded (`ready`); the worst of `repeats`.

    Returns:
        `{"model", "repeats", "answer_s", "ready_s"}`, or `{"skipped": reason}`.
    """
    try:
        resolve_checkpoint(model)
    except UserError as error:
        return {"skipped": str(error)}
    answers, readies = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        with subprocess.Popen(
            [sys.executable, "demo.py", model, "--port", "0"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as process:
            try:
                line = process.stdout.readline()
                found = re.search(r"http://[^/]+/", line)
                if found is None:
                    return {"skipped": f"demo.py did not start: {line.strip()!r}"}
                url = found.group(0)
                answered = None
                while time.perf_counter() - start < 60:
                    try:
                        with urllib.request.urlopen(url + "api/info", timeout=5) as got:
                            info = json.loads(got.read())
                    except OSError:
                        time.sleep(0.02)
                        continue
                    answered = answered or time.perf_counter() - start
                    if info.get("ready"):
                        break
                    time.sleep(0.05)
                answers.append(answered)
                readies.append(time.perf_counter() - start)
            finally:
                process.terminate()
                process.wait(timeout=10)
    return {
        "model": model,
        "repeats": repeats,
        "answer_s": max(answers),
        "ready_s": max(readies),
    }


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


def run_serving_benchmarks(rounds: int = 4, repeats: int = 10) -> dict:
    """Every serving measurement: the demo's latency and start-up (zoo model, real
    videos) and ONNX vs torch for both models, with the load average before and
    after (other jobs on the machine slow every figure)."""
    load_before = os.getloadavg()
    results = {
        "demo_latency": demo_latency(DEMO_MODEL, rounds),
        "demo_startup": demo_startup(DEMO_MODEL),
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
        for step in ("warm_up", "landmarks", "decode", "model", "overlay", "total"):
            if step in latency["steps"]:
                shown = latency["steps"][step]
                rows.append(
                    f"| demo {step} per clip ({latency['model']}, "
                    f"{latency['requests']} requests on real WLASL videos, p50 / p95)"
                    f" | {shown['p50']:,.1f} / {shown['p95']:,.1f} | ms |"
                )
    startup = results.get("demo_startup")
    if startup and "skipped" not in startup:
        rows.append(
            f"| demo start-up ({startup['model']}): first answer / MediaPipe loaded"
            f" | {startup['answer_s']:.2f} / {startup['ready_s']:.2f} | s |"
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
    parser.add_argument(
        "--rounds", type=int, default=4, help="times each demo video is sent"
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed model calls")
    args = parser.parse_args(argv)
    results = run_serving_benchmarks(args.rounds, args.repeats)
    print("| measurement | value | unit |\n|---|---|---|")
    print("\n".join(serving_rows(results)))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
