"""A sweep's trial inside training: the callback that reports the objective to Optuna
and stops a pruned run, and one trial run end to end (train, then `test.py full`).

`sweeps/` runs `run_trial` in a process of its own per trial (see
`sweeps.runner`); the trial reaches its study through the study's storage, so the
pruner sees the intermediate values of every worker's trials.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import optuna

from config.loader import check_data_paths, with_overrides
from config.metric_names import metric_name
from config.schema import SignpipeConfig
from evaluation.evaluator import full_results
from training.preflight import check_before_data
from training.run import RunOptions, run_training
from utils.errors import ConfigError

# What `run_trial` returns in "status".
COMPLETE, PRUNED, INTERRUPTED = "complete", "pruned", "interrupted"


class OptunaPruning(L.Callback):
    """Reports `metric` after every validation epoch and stops the run when the
    study's pruner says so (after that epoch, so its checkpoints are complete).

    Args:
        trial: the Optuna trial this run is.
        metric: a logged validation metric, e.g. `val/loss` or `val/gloss/top1`.
    """

    def __init__(self, trial: optuna.trial.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.pruned_at: int | None = None
        self.last_value: float | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule):
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            logged = sorted(k for k in trainer.callback_metrics if k.startswith("val"))
            raise ConfigError(
                f"objective.metric: '{self.metric}' is not logged by this run; "
                f"its validation metrics are {', '.join(logged)}"
            )
        self.last_value = float(value)
        self.trial.report(self.last_value, trainer.current_epoch)
        if self.trial.should_prune():
            self.pruned_at = trainer.current_epoch
            trainer.should_stop = True


def _flat_results(bundle) -> dict[str, float]:
    """`test/<head>/top1`, `test/loss` and `test_shuffled/<head>/top1` of a
    `test.py full` bundle; a sequence head's numbers (`test/<head>/wer`, ...)
    instead of its top-1."""
    flat: dict[str, float] = {}
    for name, result in (
        ("test", bundle.test),
        ("test_shuffled", bundle.test_shuffled),
    ):
        for head, values in result.heads.items():
            if not hasattr(values, "top_k_per_instance_acc"):  # a sequence head
                for metric, number in values.to_dict().items():
                    if isinstance(number, (int, float)) and metric != "labelled":
                        flat[metric_name(name, head, metric)] = float(number)
                continue
            top1 = values.top_k_per_instance_acc.top1
            if top1 is not None:
                flat[metric_name(name, head, "top1")] = top1
        if name == "test" and result.average_loss is not None:
            flat[metric_name("test", None, "loss")] = result.average_loss
    return flat


def run_trial(
    *,
    config: SignpipeConfig,
    overrides: list[str],
    run_dir: str,
    seed: int,
    metric: str,
    study: dict | None = None,
) -> dict:
    """Train one trial's run in `run_dir`, then evaluate its best checkpoint as
    `test.py full --save` does.

    Args:
        config: the sweep's base config.
        overrides: `dotted.key=value` overrides of the trial.
        run_dir: the run folder (`general_parameters.path_to_save`).
        seed: the run's seed.
        metric: the objective, a logged validation metric.
        study: `storage`, `study_name`, `trial_id` and `pruner` (an Optuna pruner)
            of the study to report to; None runs without reporting.

    Returns:
        `status` (complete, pruned or interrupted), `value` (the metric at the best
        checkpoint; for a pruned run the last reported one), `metrics` (the best
        checkpoint's validation metrics and the test results), `epoch` (pruned at).
    """
    config = with_overrides(
        config,
        [
            *overrides,
            f"general_parameters.path_to_save={json.dumps(run_dir)}",
            f"general_parameters.seed={seed}",
        ],
    )
    check_data_paths(config)
    check_before_data(config)
    callbacks = []
    if study is not None:
        loaded = optuna.load_study(
            study_name=study["study_name"],
            storage=study["storage"],
            pruner=study["pruner"],
            sampler=optuna.samplers.RandomSampler(),  # never asked: no sampling here
        )
        callbacks.append(
            OptunaPruning(optuna.trial.Trial(loaded, study["trial_id"]), metric)
        )
    code = run_training(config, RunOptions(callbacks=callbacks))
    if code != 0:
        return {"status": INTERRUPTED, "exit_code": code}
    if callbacks and callbacks[0].pruned_at is not None:
        return {
            "status": PRUNED,
            "value": callbacks[0].last_value,
            "epoch": callbacks[0].pruned_at,
            "metrics": {},
        }
    best = Path(run_dir) / "checkpoints" / "best.ckpt"
    evaluator, bundle = full_results(best, directory=Path(run_dir) / "results")
    val_metrics = {
        key: float(value)
        for key, value in evaluator.loaded.val_metrics.items()
        if key.startswith("val")
    }
    if metric not in val_metrics:
        raise ConfigError(
            f"objective.metric: '{metric}' is not among the validation metrics of "
            f"{best} ({', '.join(sorted(val_metrics))})"
        )
    return {
        "status": COMPLETE,
        "value": val_metrics[metric],
        "metrics": {**val_metrics, **_flat_results(bundle)},
    }
