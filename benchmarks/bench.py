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
  utilisation; skipped with a note on the CPU.

Writes the results as JSON and prints a table; `--quick` is a seconds-long smoke run
with tiny counts (its numbers are not meaningful).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import lightning as L
import PIL
import torch
import torchvision
from PIL import features
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

import predict
from benchmarks.common import (
    CONFIG_FILE,
    FULL,
    PROCESSES,
    QUICK,
    REPO,
    TARGETS,
    FitPlan,
    Scale,
    Setup,
    rate,
    ratio,
)
from benchmarks.data import DatasetSpec, ensure_dataset
from benchmarks.loaders import (
    measure_cached_loader,
    measure_decode,
    measure_loader,
    measure_naive_loader,
)
from datasets.datamodule import SignDataModule
from datasets.sign_dataset import collate_clips
from models.heads import weighted_multi_head_loss
from models.lightning_module import SignRecognitionModule
from utils.config import SignpipeConfig
from utils.config_loader import config_to_dict
from utils.prediction import ClipOptions, list_inputs, load_checkpoint
from utils.training_run import trainer_device_args

#: The landmarks-only variant of the default config.
LANDMARK_OVERRIDES = [
    "feature_extractor.name=landmarks_extractor",
    "train_parameters.landmarks=true",
]
DEFAULT_OUTPUT = REPO / "benchmarks" / "results.json"
#: Warn when other processes took this share of the machine's CPU time during the run.
LOAD_WARNING = 0.1
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


# --- training -------------------------------------------------------------------------


class StepTimes(L.Callback):
    """The wall-clock end of every training step and its clips; stops the fit once
    the timed steps took the plan's `max_seconds`."""

    def __init__(self, plan: FitPlan) -> None:
        self.warmup = plan.warmup
        self.max_seconds = plan.max_seconds
        self.ends: list[float] = []
        self.clips: list[int] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.ends.append(time.perf_counter())
        self.clips.append(int(batch["mask"].shape[0]))
        timed = len(self.ends) > self.warmup
        if timed and self.ends[-1] - self.ends[self.warmup - 1] > self.max_seconds:
            trainer.should_stop = True

    def summary(self) -> dict:
        """Clips/s of the steps after the warm-up."""
        clips = sum(self.clips[self.warmup :])
        seconds = self.ends[-1] - self.ends[self.warmup - 1]
        steps = len(self.ends) - self.warmup
        return {
            "clips_per_s": rate(clips, seconds),
            "steps_per_s": rate(steps, seconds),
            "steps": steps,
            "clips": clips,
            "seconds": seconds,
        }


class InMemoryEpoch:
    """One epoch of pre-collated batches, the same every epoch; no loader at all."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _to_device(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {key: _to_device(item, device) for key, item in value.items()}
    return value


def _build_module(
    config: SignpipeConfig, datamodule: SignDataModule, channels_last: bool
) -> SignRecognitionModule:
    L.seed_everything(config.general_parameters.seed, verbose=False)
    with contextlib.redirect_stderr(io.StringIO()):
        module = SignRecognitionModule.from_config(
            config, datamodule.num_classes, datamodule.label_names
        )
    backbone = getattr(module.model.feature_extractor, "backbone", None)
    if backbone is not None and channels_last:
        backbone.to(memory_format=torch.channels_last)
    return module


def _fit(module, config: SignpipeConfig, data, plan: FitPlan, root: Path) -> dict:
    """Fit `module` on `data` as planned; the timed steps' summary."""
    times = StepTimes(plan)
    steps = plan.warmup + plan.steps
    trainer = L.Trainer(
        max_steps=steps,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[times],
        default_root_dir=root,
        **trainer_device_args(config),
    )
    if isinstance(data, SignDataModule):
        trainer.fit(module, datamodule=data)
    else:
        trainer.fit(module, train_dataloaders=data)
    return times.summary()


def _memory_batches(datamodule: SignDataModule) -> list[dict]:
    """One epoch of training batches, collated in memory (train transforms applied),
    batched as the training loader batches them (the last one may be short)."""
    loader = DataLoader(
        datamodule.dataset(datamodule.train_samples, train=True),
        batch_size=datamodule.config.train_parameters.batch_size,
        shuffle=True,
        num_workers=0,
        collate_fn=collate_clips,
    )
    return list(loader)


def train_step_flops(module: SignRecognitionModule, batch: dict) -> int:
    """FLOPs of one training step (forward, loss, backward), counted on the CPU."""
    module.cpu().train()
    with FlopCounterMode(display=False) as counter:
        outputs = module.model(batch)
        loss, _ = weighted_multi_head_loss(
            outputs["logits"], batch["labels"], module.loss_weights
        )
        loss.backward()
    module.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def measure_train(
    config: SignpipeConfig,
    work: Path,
    plan: FitPlan,
    channels_last: bool = False,
) -> tuple[dict, SignRecognitionModule, SignDataModule]:
    """End-to-end training clips/s against the model step on in-memory batches.

    Both fit a fresh module (same seed) with Lightning as `plan` says and time the
    steps after the warm-up; the only difference is where batches come from: the
    DataModule's loader, or one epoch of the same batches held in memory (so both
    cross the same epoch boundaries).
    """
    # As training runs do (`trainer.channels_last`, where the config has it).
    channels_last = channels_last or getattr(config.trainer, "channels_last", False)
    datamodule = SignDataModule(config)
    module = _build_module(config, datamodule, channels_last)
    end_to_end = _fit(module, config, datamodule, plan, work)
    batches = _memory_batches(datamodule)
    device = torch.device("cuda", 0) if config.general_parameters.gpu >= 0 else None
    data = InMemoryEpoch(
        [_to_device(b, device) for b in batches] if device else batches
    )
    memory_module = _build_module(config, datamodule, channels_last)
    model_only = _fit(memory_module, config, data, plan, work)
    flops = train_step_flops(memory_module, batches[0])
    batch_size = config.train_parameters.batch_size
    result = {
        "clips_per_s": end_to_end["clips_per_s"],
        "model_only_clips_per_s": model_only["clips_per_s"],
        "train_vs_model_only": ratio(
            end_to_end["clips_per_s"], model_only["clips_per_s"]
        ),
        "end_to_end": end_to_end,
        "model_only": model_only,
        "batch_size": batch_size,
        "workers": config.general_parameters.workers,
        "precision": config.trainer.precision,
        "channels_last": channels_last,
        "flops_per_step": flops,
        "achieved_flops_per_s": flops / batch_size * end_to_end["clips_per_s"],
    }
    return result, module, datamodule


# --- prediction -----------------------------------------------------------------------


def write_checkpoint(
    module: SignRecognitionModule, datamodule: SignDataModule, config, path: Path
) -> Path:
    """A checkpoint with what predict.py reads (hyper-parameters and weights)."""
    torch.save(
        {
            "hyper_parameters": {
                "config": config_to_dict(config),
                "num_classes": dict(datamodule.num_classes),
                "label_names": datamodule.label_names,
            },
            "state_dict": module.cpu().state_dict(),
        },
        path,
    )
    return path


def _link_inputs(data_root: Path, count: int, target: Path) -> Path:
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
        writer = predict.OutputWriter(
            work / f"predict-{name}", "CLS", loaded.label_names
        )
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if bf16
            else contextlib.nullcontext()
        )
        start = time.perf_counter()
        with autocast, contextlib.redirect_stderr(io.StringIO()):  # tqdm's bar
            results = predict.run_prediction(
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


# --- CUDA -----------------------------------------------------------------------------


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
    inputs_dir = _link_inputs(setup.data_root, scale.predict_clips, work / "inputs")
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
        results["config"] = {
            "file": CONFIG_FILE.name,
            "overrides": list(scale.overrides),
            "workers": config.general_parameters.workers,
            "batch_size": config.train_parameters.batch_size,
            "num_segments": config.train_parameters.num_segments,
            "resize_size": config.augmentations_parameters.resize_size,
            "model": config.feature_extractor.model_path,
            "precision": config.trainer.precision,
        }
        results.update(_loaders(setup, config, stages))
        results.update(_training(setup, config, stages))
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
    return "\n".join(lines)


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
