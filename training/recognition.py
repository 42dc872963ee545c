"""The recognition LightningModule: multi-head loss, metrics and freeze schedules."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torchmetrics import MeanMetric

from config.metric_names import metric_name
from models.freeze_scheduler import FreezeScheduler
from models.heads import weighted_multi_head_loss
from models.heads.sequence import labelled_samples
from models.registry import kind_trait
from training.base import PipelineModule, check_finite

STAGES = ("train", "val", "test")


class SignRecognitionModule(PipelineModule):  # pylint: disable=too-many-ancestors
    """Trains a `SignPipeline` on batches from `SignDataModule`: the weighted loss of
    the named heads, each head's metrics per stage (its kind's: top-1/top-5 for
    classification), and the freeze schedule.

    Takes `PipelineModule`'s arguments (the config as a plain dict, the class counts
    and names of the heads).
    """

    def __init__(
        self,
        config: dict,
        num_classes: dict[str, int],
        label_names: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(config, num_classes, label_names)
        self.save_hyperparameters()
        self.loss_weights = self.config.loss_weights()
        # Each head's kind gives its loss, its metrics and what they read.
        self.head_kinds = dict(self.model.heads.kinds)
        # Each head's metrics in the stages its kind logs them in (a kind that
        # decodes leaves training out).
        self.metric_stages = {
            head: tuple(kind_trait(kind, "metric_stages"))
            for head, kind in self.head_kinds.items()
        }
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_{head}_{name}": metric
                for stage in STAGES
                for head, count in self.num_classes.items()
                if stage in self.metric_stages[head]
                for name, metric in self.head_kinds[head].metrics(count).items()
            }
        )
        # The metrics beyond top-k, by head (logged under their own names).
        self.other_metrics = {
            head: [
                name
                for name in kind.metrics(self.num_classes[head])
                if name not in {f"top{k}" for k in kind.top_k}
            ]
            for head, kind in self.head_kinds.items()
        }
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

    def forward(self, batch: dict) -> dict:
        """The pipeline's outputs (see `SignPipeline.forward`)."""
        return self.model(batch)

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
            kinds=self.head_kinds,
        )
        batch_size = batch["mask"].shape[0]
        log = {"on_step": stage == "train", "on_epoch": True, "batch_size": batch_size}
        self._log_loss(
            stage, "total", metric_name(stage, None, "loss"), loss, batch_size, log
        )
        for head, logits in outputs["logits"].items():
            labelled = labelled_samples(labels[head]).sum()
            self._log_loss(
                stage,
                head,
                metric_name(stage, head, "loss"),
                per_head[head],
                labelled,
                log,
            )
            if stage not in self.metric_stages[head]:
                continue
            values = self.head_kinds[head].metric_inputs(logits.detach(), labels[head])
            for k in self.head_kinds[head].top_k:
                metric = self.metrics[f"{stage}_{head}_top{k}"]
                metric(*values)
                self.log(metric_name(stage, head, f"top{k}"), metric, **log)
            for name in self.other_metrics[head]:
                metric = self.metrics[f"{stage}_{head}_{name}"]
                metric(*values)
                self.log(metric_name(stage, head, name), metric, **log)
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
