"""Throughput benchmarks of the signpipe data loader, training and prediction.

python3 -m benchmarks.bench [--quick] [--output benchmarks/results.json]
                            [--cache_dir DIR]

Measures, on a generated dataset of 256x256 JPEG clips of 32 frames (made once under
the system temp dir, see `benchmarks.data`) and the `train_config.yml` settings:

* `loader`: frames/s of `SignDataModule.train_dataloader()` (train augmentations, the
  configured workers), against the decode limit: the same JPEGs decoded alone by as
  many processes (PIL draft mode at the decode size, and torchvision's decode_jpeg);
* `naive_loader`: a straightforward PIL + per-frame torchvision transforms loader,
  one clip at a time (batch size 1, no workers), the baseline users would write;
* `cached_loader`: the loader with the preprocessed frame cache
  (`datasets.frame_cache`), skipped while that module does not exist;
* `train`: end-to-end training clips/s (`SignRecognitionModule` fitted by Lightning
  on the loader) against the same module fitted on pre-collated in-memory batches,
  for the default config and a landmarks-only one;
* `predict`: clips/s of predict.py's CLS embedding export over frame folders;
* `cuda`: with a GPU, training in bf16-mixed with channels_last and the model FLOPs
  utilisation; skipped with a note on the CPU;
* `video_loader`, `video_networks`, `serving` (`benchmarks.sections`): the loader on
  `.mp4` clips against their decode limit, one CPU training step per video network,
  the demo page's per-clip latency and ONNX against torch.

Writes the results as JSON and prints a table; `--quick` is a seconds-long smoke run
with tiny counts (its numbers are not meaningful).

This module is the command line, the run (each stage in turn, timed) and the table;
the measurements live in `benchmarks.loaders`, `benchmarks.training`,
`benchmarks.prediction` and `benchmarks.gpu`, the machine info and the load of other
processes in `benchmarks.machine`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import torch

from benchmarks.common import (
    CONFIG_FILE,
    FULL,
    PROCESSES,
    QUICK,
    REPO,
    TARGETS,
    Scale,
    Setup,
    ratio,
)
from benchmarks.data import DatasetSpec, ensure_dataset
from benchmarks.gpu import measure_cuda
from benchmarks.loaders import (
    measure_cached_loader,
    measure_decode,
    measure_loader,
    measure_naive_loader,
)
from benchmarks.machine import busy_cpu_seconds, machine_info, other_cpu_share
from benchmarks.prediction import link_inputs, measure_predict, write_checkpoint
from benchmarks.sections import format_sections, measure_sections
from benchmarks.training import measure_train
from config.registry import EXTRACTOR_FACTS, model_settings
from config.schema import SignpipeConfig
from models.feature_extractors.cnn import TimmSettings

#: The landmarks-only variant of the default config.
LANDMARK_OVERRIDES = [
    "feature_extractor.name=landmarks_extractor",
    "train_parameters.landmarks=true",
]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results.json"
#: Warn when other processes took this share of the machine's CPU time during the run.
LOAD_WARNING = 0.1


@contextlib.contextmanager
def quiet():
    """Silence Lightning's banner lines and the warnings that do not matter here."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for pattern in (
            ".*does not have many workers.*",
            ".*log_every_n_steps.*",
            ".*is not writable.*",
            ".*LeafSpec.*",
            ".*validation_step.*but have no.*val_dataloader.*",
        ):
            warnings.filterwarnings("ignore", pattern)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


# --- the run -------------------------------------------------------------------------


def _loaders(setup: Setup, config: SignpipeConfig, stages: Stages) -> dict:
    """loader, decode, naive_loader and cached_loader results."""
    scale = setup.scale
    results = {}
    stages.start("loader")
    results["loader"], train_samples = measure_loader(config, scale)
    stages.start("decode limit")
    paths = [path for sample in train_samples for path in sample.frame_paths]
    paths = paths * -(-scale.decode_frames // len(paths))  # repeated when short
    results["decode"] = measure_decode(
        paths[: scale.decode_frames],
        config.augmentations_parameters.resize_size,
        PROCESSES,
    )
    stages.start("naive loader")
    results["naive_loader"] = measure_naive_loader(config, train_samples, scale)
    stages.start("cached loader")
    results["cached_loader"] = measure_cached_loader(
        setup, results["decode"]["limit_frames_per_s"]
    )
    return results


def _training(setup: Setup, config: SignpipeConfig, stages: Stages) -> dict:
    """train, predict and cuda results."""
    scale, work = setup.scale, setup.work
    stages.start("train (default config)")
    default, module, datamodule = measure_train(config, work, scale.fit_plan())
    stages.start("train (landmarks only)")
    landmarks, _, _ = measure_train(
        setup.config("landmarks", LANDMARK_OVERRIDES),
        work,
        scale.fit_plan(landmarks=True),
    )
    results = {"train": {"default": default, "landmarks": landmarks}}
    stages.start("predict")
    checkpoint = write_checkpoint(module, datamodule, config, work / "bench.ckpt")
    inputs_dir = link_inputs(setup.data_root, scale.predict_clips, work / "inputs")
    results["predict"] = measure_predict(
        checkpoint, inputs_dir, work, config.general_parameters.workers
    )
    results["predict_workers_0"] = measure_predict(checkpoint, inputs_dir, work, 0)
    if not torch.cuda.is_available():
        results["cuda"] = {
            "skipped": True,
            "note": "no CUDA device (torch.cuda.is_available() is False): "
            "bf16-mixed, channels_last and MFU are measured on a GPU only",
        }
        return results
    stages.start("cuda")
    try:
        results["cuda"] = measure_cuda(setup, inputs_dir)
    except Exception as error:  # pylint: disable=broad-exception-caught
        # Written without a GPU at hand: keep the CPU figures if this part breaks.
        results["cuda"] = {"error": f"{type(error).__name__}: {error}"}
    return results


def run_benchmarks(scale: Scale, cache_root: Path | None, quick: bool) -> dict:
    """Every measurement; the results as a JSON-ready dict."""
    started = time.perf_counter()
    cpu_start = busy_cpu_seconds()
    stages = Stages()
    results: dict = {"machine": machine_info(), "quick": quick, "scale": asdict(scale)}
    stages.start("dataset")
    spec = DatasetSpec(clips=scale.clips)
    data_root, generated = ensure_dataset(spec, cache_root, processes=PROCESSES)
    results["dataset"] = {
        **asdict(spec),
        "root": str(data_root),
        "generated": generated,
    }
    with tempfile.TemporaryDirectory(prefix="signpipe-bench-run-") as scratch:
        setup = Setup(data_root, Path(scratch), scale)
        config = setup.config("run")
        extractor = model_settings(config.feature_extractor, EXTRACTOR_FACTS)
        results["config"] = {
            "file": CONFIG_FILE.name,
            "overrides": list(scale.overrides),
            "workers": config.general_parameters.workers,
            "batch_size": config.train_parameters.batch_size,
            "num_segments": config.train_parameters.num_segments,
            "resize_size": config.augmentations_parameters.resize_size,
            "model": (
                extractor.model_path
                if isinstance(extractor, TimmSettings)
                else config.feature_extractor.name
            ),
            "precision": config.trainer.precision,
        }
        results.update(_loaders(setup, config, stages))
        results.update(_training(setup, config, stages))
        results.update(measure_sections(setup.work, cache_root, quick, stages))
    stages.finish()
    results["ratios"] = _ratios(results)
    results["targets"] = dict(TARGETS)
    results["stage_s"] = stages.seconds
    results["total_s"] = time.perf_counter() - started
    # Other processes skew every figure: how much CPU time they took meanwhile.
    results["other_processes_cpu_share"] = other_cpu_share(
        cpu_start,
        busy_cpu_seconds(),
        results["total_s"],
        os.cpu_count() or 1,
    )
    return results


def _ratios(results: dict) -> dict:
    loader = results["loader"]["frames_per_s"]
    decode_limit = results["decode"]["limit_frames_per_s"]
    cached = results["cached_loader"]
    return {
        "loader_vs_decode": ratio(loader, decode_limit),
        "loader_vs_naive": ratio(loader, results["naive_loader"]["frames_per_s"]),
        "train_vs_model_only": results["train"]["default"]["train_vs_model_only"],
        "landmarks_train_vs_model_only": results["train"]["landmarks"][
            "train_vs_model_only"
        ],
        "cached_loader_vs_decode": (
            None if cached.get("skipped") else cached.get("vs_decode")
        ),
    }


class Stages:
    """Wall-clock seconds of each stage of the run, announced on stderr."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def start(self, name: str) -> None:
        """End the current stage and start `name`."""
        self.finish()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        self._current = (name, time.perf_counter())

    def finish(self) -> None:
        """End the current stage."""
        if self._current is not None:
            name, start = self._current
            self.seconds[name] = time.perf_counter() - start
            self._current = None


# --- the table -----------------------------------------------------------------------


def _row(name: str, value: float | None, unit: str, note: str = "") -> str:
    shown = "skipped" if value is None else f"{value:,.2f}"
    return f"  {name:<46} {shown:>11}  {unit:<9} {note}".rstrip()


def _load_warning(results: dict) -> list[str]:
    """A warning line when other processes used the CPU during the run."""
    share = results.get("other_processes_cpu_share")
    if share is None or share < LOAD_WARNING:
        return []
    return [
        f"  WARNING: other processes used {share:.0%} of the CPU time during the run "
        f"(load average {results['machine']['load_average_start'][0]:.1f} at the "
        "start): the figures are skewed"
    ]


def format_table(results: dict) -> str:
    """The results as a readable table."""
    machine = results["machine"]
    loader, decode = results["loader"], results["decode"]
    train, ratios = results["train"], results["ratios"]
    lines = [
        "signpipe benchmarks"
        + (
            " (--quick: a smoke run, figures not meaningful)"
            if results["quick"]
            else ""
        ),
        f"  machine: {machine['cpu']}, {machine['cores']} cores, torch "
        f"{machine['torch']}, device {machine['device']}",
        f"  data: {results['dataset']['clips']} clips x "
        f"{results['dataset']['frames_per_clip']} frames, "
        f"{results['dataset']['size']}px JPEG; config {results['config']['file']} "
        f"(workers {loader['workers']}, batch {loader['batch_size']}, "
        f"{loader['num_segments']} frames/clip, decode size {loader['decode_size']})",
        *_load_warning(results),
        "",
        _row("loader: SignDataModule train loader", loader["frames_per_s"], "frames/s"),
        _row(
            f"decode: PIL draft {decode['decode_size']}px, {decode['processes']} procs",
            decode["pil_draft_frames_per_s"],
            "frames/s",
        ),
        _row(
            f"decode: torchvision decode_jpeg, {decode['processes']} procs",
            decode["torchvision_decode_jpeg_frames_per_s"],
            "frames/s",
        ),
        _row(
            "naive loader: PIL + per-frame T, bs 1",
            results["naive_loader"]["frames_per_s"],
            "frames/s",
        ),
        _row(
            "cached loader (frame cache)",
            results["cached_loader"].get("frames_per_s"),
            "frames/s",
            results["cached_loader"].get("note", ""),
        ),
    ]
    for name, entry in train.items():
        lines.append(_row(f"train {name}: end to end", entry["clips_per_s"], "clips/s"))
        lines.append(
            _row(
                f"train {name}: model only (in-memory batches)",
                entry["model_only_clips_per_s"],
                "clips/s",
            )
        )
    lines.append(
        _row(
            f"predict CLS export (workers {results['predict']['workers']})",
            results["predict"]["clips_per_s"],
            "clips/s",
        )
    )
    lines.append(
        _row(
            "predict CLS export (workers 0, the CLI default)",
            results["predict_workers_0"]["clips_per_s"],
            "clips/s",
        )
    )
    cuda = results["cuda"]
    if "train" in cuda:
        lines.append(
            _row("cuda bf16 train: end to end", cuda["train"]["clips_per_s"], "clips/s")
        )
        lines.append(_row("cuda bf16 train: MFU", cuda["mfu"], ""))
    else:
        lines.append(_row("cuda", None, "", cuda.get("note") or cuda.get("error", "")))
    lines += ["", "  ratio                                          value  target"]
    for key, value in ratios.items():
        target = TARGETS.get(key, TARGETS.get(key.removeprefix("landmarks_")))
        verdict = ""
        if target is not None and value is not None:
            verdict = f">= {target:g}  {'met' if value >= target else 'MISSED'}"
        lines.append(_row(key, value, "", verdict))
    lines.append(f"  total {results['total_s']:.0f} s")
    return "\n".join(lines) + "\n" + format_sections(results)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a seconds-long smoke run with tiny counts (figures not meaningful)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="the JSON results file (default: benchmarks/results.json)",
    )
    parser.add_argument(
        "--cache_dir",
        type=Path,
        default=None,
        help="where generated datasets are kept (default: <temp dir>/signpipe-bench)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks, write the JSON file and print the table."""
    args = parse_args(argv)
    with quiet():
        results = run_benchmarks(
            QUICK if args.quick else FULL, args.cache_dir, args.quick
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(format_table(results))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
