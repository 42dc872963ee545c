"""Training callbacks: crash-safe checkpoints, interruptions, freeze until a plateau,
a line per epoch for logs written to a file."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from config.metric_names import split_metric_name
from models.pipeline import SignPipeline
from utils.errors import UserError
from utils.files import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes every checkpoint to a temporary file first, then renames it into place;
    reads checkpoints as data only (`weights_only=True`).

    A run killed while saving leaves the previous checkpoint intact, never a
    truncated one (and a temporary file that the next run in the folder removes). A
    save that fails (a full disk) removes its temporary file, keeps the previous
    checkpoint and stops the run with a `UserError` naming the file.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options=None
    ) -> None:
        path = Path(path)
        if get_filesystem(path).protocol not in ("file", ("file", "local")):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, lambda file: torch.save(checkpoint, file))
        except OSError as error:
            raise UserError(
                f"cannot save the checkpoint {path} ({error.strerror or error}); "
                "the previous one is kept: free some space, then continue with "
                "--resume"
            ) from None

    def load_checkpoint(
        self,
        path,
        map_location=lambda storage, _location: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        del weights_only  # a checkpoint is data; nothing in it gets executed
        return super().load_checkpoint(path, map_location, weights_only=True)


class LastCheckpoint(L.Callback):
    """Keeps `last.ckpt` current: every N optimizer steps, at every epoch end, and when
    the run is interrupted (Ctrl-C, SIGTERM), so a killed run loses at most N steps.

    Args:
        path: the `last.ckpt` file.
        every_n_steps: optimizer steps between saves (None: only at epoch ends).
    """

    def __init__(self, path: Path, every_n_steps: int | None) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self.interrupted_by: str | None = None
        self._saved_step = -1

    def _save(self, trainer: L.Trainer) -> None:
        if trainer.global_step != self._saved_step or not self.path.exists():
            # A full checkpoint (optimizer, loops, callbacks) for --resume; saying so
            # also keeps Lightning from logging "`weights_only` was not set".
            trainer.save_checkpoint(self.path, weights_only=False)
            self._saved_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step and step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            self.interrupted_by = (
                "SIGINT" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
            )
            if trainer.global_step > 0:
                self._save(trainer)
                _say(
                    f"{self.interrupted_by}: saved {self.path} at step "
                    f"{trainer.global_step}; continue with --resume"
                )
            else:
                _say(f"{self.interrupted_by}: stopped before the first step")

    @property
    def exit_code(self) -> int:
        """The conventional exit status for the interrupting signal."""
        number = signal.SIGINT if self.interrupted_by == "SIGINT" else signal.SIGTERM
        return 128 + int(number)


@rank_zero_only
def _say(message: str) -> None:
    print(message, flush=True)


class FreezeUntilConvergence(L.Callback):
    """Keeps some submodules frozen until the validation loss stops improving.

    Args:
        parts: submodule names (dotted paths allowed) frozen from the start.
        patience: validation epochs without improvement before thawing.
        lr_after_unfreeze: the base learning rate from the thaw on (None: unchanged).
        keep_frozen: never thaw.
        until_convergence: thaw on a plateau; when False (and not `keep_frozen`), the
            parts stay frozen, as with `keep_frozen`.
    """

    def __init__(
        self,
        *,
        parts: list[str],
        patience: int,
        lr_after_unfreeze: float | None,
        keep_frozen: bool,
        until_convergence: bool,
    ) -> None:
        self.parts = parts
        self.patience = patience
        self.lr_after_unfreeze = lr_after_unfreeze
        self.thaw_on_plateau = until_convergence and not keep_frozen
        self.frozen = True
        self._frozen_this_epoch = True
        self.best = float("inf")
        self.stale_epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"frozen": self.frozen, "best": self.best, "stale": self.stale_epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.frozen = state_dict["frozen"]
        self.best = state_dict["best"]
        self.stale_epochs = state_dict["stale"]

    def _pipeline(self, pl_module) -> SignPipeline:
        return pl_module.model

    def on_train_start(self, trainer, pl_module) -> None:
        for part in self.parts:
            self._pipeline(pl_module).set_frozen(part, self.frozen)
        state = "frozen" if self.frozen else "trainable"
        _say(f"transfer: {', '.join(self.parts)} {state}")

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # Applied here, in train mode: Lightning restores the modules' modes after
        # validation (where a thaw happens), which would leave a thawed part in eval.
        for part in self.parts:
            self._pipeline(pl_module).set_frozen(part, self.frozen)
        self._frozen_this_epoch = self.frozen

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # The state the epoch trained with (a thaw at its validation takes effect next).
        for part in self.parts:
            pl_module.log(
                f"freeze/{part}", float(self._frozen_this_epoch), on_epoch=True
            )

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not self.frozen or not self.thaw_on_plateau:
            return
        loss = trainer.callback_metrics.get("val/loss")
        if loss is None:
            return
        if float(loss) < self.best - 1e-6:
            self.best, self.stale_epochs = float(loss), 0
            return
        self.stale_epochs += 1
        if self.stale_epochs >= self.patience:
            self._thaw(trainer)

    def _thaw(self, trainer) -> None:
        self.frozen = False  # takes effect at the next epoch's start
        message = f"transfer: validation loss plateaued; thawed {', '.join(self.parts)}"
        if self.lr_after_unfreeze is not None:
            for config in trainer.lr_scheduler_configs:
                scheduler = config.scheduler
                # The schedule keeps decaying from the new rate, starting at it now.
                factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
                scheduler.base_lrs = [
                    self.lr_after_unfreeze / factor for _ in scheduler.base_lrs
                ]
                for group in scheduler.optimizer.param_groups:
                    group["lr"] = self.lr_after_unfreeze
            message += f", lr now {self.lr_after_unfreeze}"
        _say(message + f" (epoch {trainer.current_epoch})")


def writes_to_terminal() -> bool:
    """Whether standard output is a terminal (not a file or a pipe)."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


#: The validation metrics of the heads that the epoch line shows (a sequence head's
#: word error rate, BLEU-4 and chrF beside the classification heads' top-k).
EPOCH_LINE_METRICS = ("top1", "top5", "wer", "bleu4", "chrf")


class EpochSummary(L.Callback):
    """Prints one line per epoch when standard output is not a terminal (a cluster
    job's log file), where the progress bar shows nothing until the run ends.

    The line, printed on rank zero at the end of every training epoch (after its
    validation), reads e.g. `epoch 3/50  train/loss 2.31  val/loss 2.05
    val/gloss/top1 0.412  val/gloss/top5 0.700  lr 9.1e-04  48 s`: the epoch's
    training loss, the validation loss and every head's top-1/top-5 accuracy (those
    that were logged), the learning rate at the epoch's end and the epoch's seconds
    (validation included).
    """

    def __init__(self) -> None:
        self._started = time.monotonic()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._started = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or writes_to_terminal():
            return
        print(self.line(trainer), flush=True)

    def line(self, trainer: L.Trainer) -> str:
        """The summary of the epoch that is ending."""
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        for name, key in (("train/loss", "train/loss_epoch"), ("val/loss", "val/loss")):
            if key in metrics:
                parts.append(f"{name} {float(metrics[key]):.4g}")
        for key, value in metrics.items():
            stage, head, metric = split_metric_name(key)
            if stage == "val" and head and metric in EPOCH_LINE_METRICS:
                parts.append(f"{key} {float(value):.3f}")
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.1e}")
        parts.append(f"{time.monotonic() - self._started:.0f} s")
        return "  ".join(parts)
