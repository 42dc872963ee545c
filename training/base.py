"""What both LightningModules share: the pipeline built from the config, the
optimizer and LR schedule, the divergence check and what a checkpoint carries."""

from __future__ import annotations

import math
import sys
from functools import partial

import lightning as L
import torch

from config.loader import config_from_checkpoint, config_to_dict
from config.schema import SignpipeConfig, TrainParameters
from models.pipeline import SignPipeline, build_pipeline
from models.transformers.hubert import encoder_config
from utils.errors import TrainingDivergedError

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


#: The share of a run that warm-up is cut to when the configured warm-up would last
#: the whole run (e.g. a recipe shortened with `--set train_parameters.epochs=5`).
WARMUP_SHARE_WHEN_CUT = 0.1


def fitted_warmup(warmup_steps: int, total_steps: int) -> int:
    """`warmup_steps`, or `WARMUP_SHARE_WHEN_CUT` of the run when the warm-up would
    take the whole run (it would never reach the configured LR); says so on stderr."""
    if warmup_steps < total_steps:
        return warmup_steps
    cut = max(1, int(WARMUP_SHARE_WHEN_CUT * total_steps))
    print(
        f"note: train_parameters.warmup_steps {warmup_steps} >= the run's "
        f"{total_steps} optimizer steps, so the LR would never leave warm-up; "
        f"warming up over {cut} steps ({WARMUP_SHARE_WHEN_CUT:.0%} of the run) instead",
        file=sys.stderr,
    )
    return cut


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
    total, warmup = None, train.warmup_steps
    if train.lr_schedule != "exponential":
        total = max(1, int(module.trainer.estimated_stepping_batches))
    elif warmup and getattr(module, "_trainer", None) is not None:
        # (an exponential schedule built without a Trainer keeps its warm-up)
        total = max(1, int(module.trainer.estimated_stepping_batches))
    if total is not None:
        warmup = fitted_warmup(warmup, total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        partial(
            lr_factor,
            warmup_steps=warmup,
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


class PipelineModule(L.LightningModule):
    """A LightningModule around the `SignPipeline` its config describes.

    Subclasses define the steps; they call `save_hyperparameters()` after this
    constructor, so checkpoints hold their own arguments.

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
        self.label_names = label_names or {
            head: [str(i) for i in range(count)] for head, count in num_classes.items()
        }
        self.config: SignpipeConfig = config_from_checkpoint(
            config, "the module's hyper_parameters"
        )
        self.num_classes = dict(num_classes)
        self.model: SignPipeline = build_pipeline(self.config, self.num_classes)

    @classmethod
    def from_config(
        cls,
        config: SignpipeConfig,
        num_classes: dict[str, int],
        label_names: dict[str, list[str]] | None = None,
    ) -> PipelineModule:
        """Build from a validated config."""
        return cls(config_to_dict(config), num_classes, label_names)

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

    def optimized_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimizer holds: all of them, frozen ones included, so
        that a part the freeze scheduler thaws later is trained from then on."""
        return list(self.parameters())

    def configure_optimizers(self):
        return make_optimizer(
            self, self.config.train_parameters, self.optimized_parameters()
        )
