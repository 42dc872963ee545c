"""benchmarks/: the generated dataset, and `--quick` writing every result key."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import bench
from benchmarks.common import QUICK, FitPlan, Setup
from benchmarks.data import COMPLETE_FILE, DatasetSpec, ensure_dataset
from benchmarks.gpu import bf16_peak, mfu_summary
from benchmarks.training import measure_train

RATIOS = (
    "loader_vs_decode",
    "loader_vs_naive",
    "train_vs_model_only",
    "landmarks_train_vs_model_only",
    "cached_loader_vs_decode",
)


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str]:
    """`python3 -m benchmarks.bench --quick` into a temporary file: results, stdout."""
    out = tmp_path_factory.mktemp("bench") / "results.json"
    cache = tmp_path_factory.mktemp("bench_data")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = bench.main(["--quick", "--output", str(out), "--cache_dir", str(cache)])
    assert code == 0
    return json.loads(out.read_text(encoding="utf-8")), printed.getvalue()


def test_quick_run_writes_every_section(quick) -> None:
    results, _ = quick
    for key in (
        "machine",
        "dataset",
        "config",
        "loader",
        "decode",
        "naive_loader",
        "cached_loader",
        "train",
        "predict",
        "cuda",
        "ratios",
        "targets",
        "video_loader",
        "video_networks",
        "serving",
    ):
        assert key in results, key
    machine = results["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["torch"]
    assert machine["device"]
    assert results["quick"] is True
    assert set(results["train"]) == {"default", "landmarks"}
    for name in ("default", "landmarks"):
        entry = results["train"][name]
        assert _positive(entry["clips_per_s"])
        assert _positive(entry["model_only_clips_per_s"])
        assert entry["flops_per_step"] > 0
    for key in ("pil_draft", "torchvision_decode_jpeg", "limit"):
        assert _positive(results["decode"][f"{key}_frames_per_s"])
    assert _positive(results["loader"]["frames_per_s"])
    assert _positive(results["naive_loader"]["frames_per_s"])
    assert _positive(results["predict"]["clips_per_s"])
    assert results["predict"]["clips"] == QUICK.predict_clips


def test_quick_run_ratios_are_positive_numbers(quick) -> None:
    results, _ = quick
    ratios = results["ratios"]
    assert set(ratios) == set(RATIOS)
    cached = results["cached_loader"]
    if importlib.util.find_spec("datasets.frame_cache") is not None:
        assert not cached.get("skipped"), cached.get("note")
    for key in RATIOS:
        if key == "cached_loader_vs_decode" and cached.get("skipped"):
            assert ratios[key] is None and cached["note"]
            continue
        assert _positive(ratios[key]), (key, ratios[key])


def test_quick_run_prints_the_table(quick) -> None:
    results, printed = quick
    for key in RATIOS:
        assert key in printed
    assert results["machine"]["cpu"] in printed
    assert "wrote" in printed


def test_quick_run_measures_videos_and_serving(quick) -> None:
    results, printed = quick
    video = results["video_loader"]
    assert _positive(video["loader"]["frames_per_s"])
    assert _positive(video["decode"]["seek_frames_per_s"])
    (network,) = results["video_networks"]["networks"].values()
    assert _positive(network["step_seconds"])
    onnx = results["serving"]["onnx_vs_torch"]["landmarks"]
    assert _positive(onnx["torch_ms"]) and _positive(onnx["onnx_ms"])
    latency = results["serving"]["demo_latency"]
    if "skipped" not in latency:  # the demo clip is read from ../shared/data
        assert _positive(latency["steps"]["total"]["p50"])
    for title in ("video data source", "video networks", "serving"):
        assert title in printed


def test_cpu_run_skips_cuda_with_a_note(quick) -> None:
    results, _ = quick
    if results["machine"]["device"] == "cpu":
        assert results["cuda"]["skipped"] is True and "CUDA" in results["cuda"]["note"]


def test_bf16_peak_table() -> None:
    assert bf16_peak("NVIDIA H200") == 989e12
    assert bf16_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert bf16_peak("NVIDIA H100 PCIe") == 756e12
    assert bf16_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert bf16_peak("Some Future GPU") is None


def test_dataset_layout_and_reuse(tmp_path: Path) -> None:
    spec = DatasetSpec(clips=4, frames_per_clip=5, size=48, glosses=2)
    root, generated = ensure_dataset(spec, tmp_path, processes=1)
    assert generated and (root / COMPLETE_FILE).is_file()
    clips = sorted(p for p in root.iterdir() if p.is_dir())
    assert [p.name for p in clips] == sorted(name for name, _, _ in spec.clip_names())
    folder = clips[0]
    frames = sorted(folder.glob("*.jpg"))
    assert len(frames) == 5
    with Image.open(frames[0]) as image:
        assert image.size == (48, 48) and image.format == "JPEG"
    with np.load(folder / f"{folder.name}.npz") as landmarks:
        shapes = {key: landmarks[key].shape for key in landmarks.files if key != "fps"}
    assert shapes == {
        "pose": (5, 33, 3),
        "left_hand": (5, 21, 3),
        "right_hand": (5, 21, 3),
        "face": (5, 468, 3),
    }
    rows = (root / "test_hamnosys.txt").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 4 and len(rows[1].split()) == 3 + 8
    again, generated = ensure_dataset(spec, tmp_path, processes=1)
    assert again == root and not generated
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_mfu_is_achieved_flops_over_the_bf16_peak() -> None:
    train = {
        "flops_per_step": 8e12,
        "batch_size": 8,
        "clips_per_s": 98.9,
        "model_only_clips_per_s": 197.8,
    }
    summary = mfu_summary("NVIDIA H200", train)
    assert summary["mfu"] == pytest.approx(0.1)  # 1e12 FLOP per clip x 98.9 / 989e12
    assert summary["model_only_mfu"] == pytest.approx(0.2)
    unknown = mfu_summary("Some Future GPU", train)
    assert unknown["mfu"] is None and "BF16_PEAK_FLOPS" in unknown["note"]


def test_bf16_channels_last_training_runs_and_counts_flops(tmp_path: Path) -> None:
    """The GPU run's training settings (bf16-mixed, channels_last backbone), on the
    CPU: everything but the device is exercised here."""
    spec = DatasetSpec(clips=8, frames_per_clip=12, size=32, glosses=2)
    root, _ = ensure_dataset(spec, tmp_path, processes=1)
    setup = Setup(root, tmp_path / "work", QUICK)
    config = setup.config(
        "bf16",
        ["trainer.precision=bf16-mixed", "general_parameters.workers=0"],
    )
    plan = FitPlan(warmup=1, steps=2, max_seconds=20.0)
    result, module, _ = measure_train(config, setup.work, plan, channels_last=True)
    assert result["precision"] == "bf16-mixed" and result["channels_last"] is True
    backbone = module.model.feature_extractor.backbone
    weight = next(p for p in backbone.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert _positive(result["clips_per_s"]) and _positive(result["flops_per_step"])
    assert all(torch.isfinite(p).all() for p in module.parameters())
