"""The LightningModule: multi-head loss, metrics, optimizer, LR and freeze schedules."""

from __future__ import annotations

import math
from functools import partial

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from models.freeze_scheduler import FreezeScheduler
from models.heads import IGNORE_INDEX, weighted_multi_head_loss
from models.pipeline import build_pipeline
from models.transformers.hubert import encoder_config
from utils.config import SignpipeConfig, TrainParameters
from utils.errors import TrainingDivergedError
from utils.config_loader import config_to_dict, parse_config

STAGES = ("train", "val", "test")


#: one_cycle starts at lr / ONE_CYCLE_START and ends at lr / ONE_CYCLE_END (the
#: defaults of torch's OneCycleLR).
ONE_CYCLE_START, ONE_CYCLE_END = 25.0, 1.0e4


def _cosine(start: float, end: float, progress: float) -> float:
    """From `start` to `end` along half a cosine, `progress` in [0, 1]."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_factor(
    step: int,
    warmup_steps: int,
    multiply_lr_step: float,
    schedule: str = "exponential",
    total_steps: int | None = None,
) -> float:
    """The LR multiplier after `step` optimizer steps (0-based).

    `exponential` and `cosine`: step s of the warm-up runs at (s + 1) / warmup_steps
    of the base LR, so the last warm-up step reaches it; after it, `exponential` runs
    every step at `multiply_lr_step` times the previous one, `cosine` follows half a
    cosine down to 0 at step `total_steps`. `one_cycle`: half a cosine up from
    1 / ONE_CYCLE_START to 1 over the warm-up, then down to 1 / ONE_CYCLE_END at step
    `total_steps`.
    """
    after = max(1, (total_steps or 1) - warmup_steps)
    if schedule == "one_cycle":
        if step < warmup_steps:
            return _cosine(1.0 / ONE_CYCLE_START, 1.0, step / warmup_steps)
        return _cosine(1.0, 1.0 / ONE_CYCLE_END, (step - warmup_steps) / after)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        return _cosine(1.0, 0.0, (step - warmup_steps + 1) / after)
    decays = step - warmup_steps + 1 if warmup_steps else step
    return multiply_lr_step**decays


def make_optimizer(
    module: L.LightningModule, train: TrainParameters, parameters=None
) -> dict:
    """AdamW over `parameters` (default: all of `module`'s) and the configured LR
    schedule, stepped every optimizer step (the `configure_optimizers` of both
    LightningModules)."""
    optimizer = torch.optim.AdamW(
        module.parameters() if parameters is None else parameters,
        lr=train.lr,
        weight_decay=train.weight_decay,
    )
    total = None
    if train.lr_schedule != "exponential":
        total = max(1, int(module.trainer.estimated_stepping_batches))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        partial(
            lr_factor,
            warmup_steps=train.warmup_steps,
            multiply_lr_step=train.multiply_lr_step,
            schedule=train.lr_schedule,
            total_steps=total,
        ),
    )
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
    }


def check_finite(loss: torch.Tensor, step: int, batch: dict) -> None:
    """Stop with `TrainingDivergedError` naming the step when the loss is NaN/inf.

    One scalar sync per step (the progress bar reads the loss anyway); raising before
    backward keeps the weights and the checkpoints already written intact.
    """
    if not torch.isfinite(loss):
        raise TrainingDivergedError(
            f"the training loss is {float(loss)} at optimizer step {step} (batch "
            f"{batch['name'][:3]}...); stopped before updating the weights, so the "
            "checkpoints already written are intact. Lower train_parameters.lr or "
            "check the data"
        )


class SignRecognitionModule(L.LightningModule):
    """Trains a `SignPipeline` on batches from `SignDataModule`.

    Args:
        config: the resolved config as a plain dict (saved in checkpoints).
        num_classes: head name -> class count, in head order.
        label_names: head name -> class names (saved in checkpoints for test.py and
            predict.py); class ids as text when not given.
    """

    def __init__(
        self,
        config: dict,
        num_classes: dict[str, int],
        label_names: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.label_names = label_names or {
            head: [str(i) for i in range(count)] for head, count in num_classes.items()
        }
        self.config: SignpipeConfig = parse_config(config)
        self.num_classes = dict(num_classes)
        self.model = build_pipeline(self.config, self.num_classes)
        self.loss_weights = self.config.loss_weights()
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{head}_top{k}": MulticlassAccuracy(
                    num_classes=count,
                    top_k=min(k, count),
                    average="micro",
                    ignore_index=IGNORE_INDEX,
                )
                for stage in STAGES
                for head, count in self.num_classes.items()
                for k in (1, 5)
            }
        )
        # Losses as metrics: summed and counted across processes when an epoch ends
        # (no synchronisation per step), so a multi-process run's epoch losses count
        # every sample exactly once.
        self.stage_losses = nn.ModuleDict(
            {
                f"{stage}_{name}": MeanMetric()
                for stage in STAGES
                for name in ("total", *self.num_classes)
            }
        )
        freeze = self.config.freeze_scheduler
        self.freeze_scheduler = (
            FreezeScheduler(self.model, freeze, printer=rank_zero_only(print))
            if freeze
            else None
        )

    @classmethod
    def from_config(
        cls,
        config: SignpipeConfig,
        num_classes: dict[str, int],
        label_names: dict[str, list[str]] | None = None,
    ) -> SignRecognitionModule:
        """Build from a validated config."""
        return cls(config_to_dict(config), num_classes, label_names)

    def forward(self, batch: dict) -> dict:
        """The pipeline's outputs (see `SignPipeline.forward`)."""
        return self.model(batch)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the validation metrics logged last before the save in the checkpoint
        (for `best.ckpt`: those of the epoch that made it the best), so test.py can
        report them from the checkpoint alone; and a HuBERT encoder's shape, so the
        model rebuilds without its pretrained directory."""
        hubert = encoder_config(self.model)
        if hubert is not None:
            checkpoint["hubert_config"] = hubert
        trainer = self._trainer
        if trainer is None:
            return
        checkpoint["val_metrics"] = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("val/") and torch.is_tensor(value) and value.numel() == 1
        }

    def model_step(self, batch: dict, stage: str) -> torch.Tensor:
        """Loss and metrics for one batch; shared by every stage."""
        outputs = self.model(batch)
        labels = batch["labels"]
        loss, per_head = weighted_multi_head_loss(
            outputs["logits"],
            labels,
            self.loss_weights,
            label_smoothing=(
                self.config.train_parameters.label_smoothing
                if stage == "train"
                else 0.0
            ),
        )
        batch_size = batch["mask"].shape[0]
        log = {"on_step": stage == "train", "on_epoch": True, "batch_size": batch_size}
        self._log_loss(stage, "total", f"{stage}/loss", loss, batch_size, log)
        for head, logits in outputs["logits"].items():
            labelled = (labels[head] != IGNORE_INDEX).sum()
            self._log_loss(
                stage, head, f"{stage}/{head}/loss", per_head[head], labelled, log
            )
            for k in (1, 5):
                metric = self.metrics[f"{stage}_{head}_top{k}"]
                metric(logits.detach(), labels[head])
                self.log(f"{stage}/{head}/top{k}", metric, **log)
        return loss

    def _log_loss(self, stage, name, key, value, weight, log: dict) -> None:
        metric = self.stage_losses[f"{stage}_{name}"]
        if log["on_step"]:
            metric(value.detach(), weight)  # also this batch's value, for the step
        else:
            metric.update(value.detach(), weight)
        self.log(key, metric, prog_bar=name == "total", **log)

    def training_step(self, batch: dict, _batch_idx: int) -> torch.Tensor:
        loss = self.model_step(batch, "train")
        check_finite(loss, self.global_step, batch)
        return loss

    def validation_step(self, batch: dict, _batch_idx: int) -> torch.Tensor:
        return self.model_step(batch, "val")

    def test_step(self, batch: dict, _batch_idx: int) -> torch.Tensor:
        return self.model_step(batch, "test")

    def on_train_epoch_start(self) -> None:
        if self.freeze_scheduler and self.freeze_scheduler.mode == "epoch":
            self.freeze_scheduler.apply(self.current_epoch)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        if not self.freeze_scheduler:
            return
        if self.freeze_scheduler.mode == "step":
            self.freeze_scheduler.apply(self.global_step)
        for name in self.config.freeze_scheduler.model_params:
            frozen = float(self.model.is_frozen(name))
            self.log(f"freeze/{name}", frozen, on_step=True, on_epoch=False)

    def configure_optimizers(self):
        return make_optimizer(self, self.config.train_parameters)
