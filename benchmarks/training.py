"""Training measurements: end-to-end training clips/s (`SignRecognitionModule` fitted
by Lightning on the `SignDataModule` loader) against the same module fitted on
pre-collated in-memory batches, and the FLOPs of one training step."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import FitPlan, rate, ratio
from config.schema import SignpipeConfig
from datasets.sign_dataset import collate_clips
from models.heads import weighted_multi_head_loss
from training.datamodule import SignDataModule
from training.recognition import SignRecognitionModule
from training.run import trainer_device_args


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
            config, datamodule.data.num_classes, datamodule.data.label_names
        )
    module.model.prepare_for_training(channels_last=channels_last, compile_model=False)
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
        datamodule.dataset(datamodule.data.train_samples, train=True),
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
