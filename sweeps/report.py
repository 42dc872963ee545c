"""What a sweep writes beside its trials: results.csv and results.md (one row per
trial: state, objective, overrides, metrics, time, run folder) and the
optimisation-history and parameter-importance plots."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

# pylint: disable=wrong-import-position
import matplotlib.pyplot as plt
import optuna
from optuna.trial import FrozenTrial

from config.metric_names import split_metric_name
from sweeps.spec import SweepSpec
from utils.files import write_atomically

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
HISTORY_PNG = "optimization_history.png"
IMPORTANCE_PNG = "param_importances.png"


def _is_test_top1(key: str) -> bool:
    """Whether a trial's metric is a head's top-1 on `test.py full`'s test set."""
    stage, head, metric = split_metric_name(key)
    return stage == "test" and head is not None and metric == "top1"


def _listed(study: optuna.Study) -> list[FrozenTrial]:
    return [
        t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("spare")
    ]


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _run_dir(trial: FrozenTrial) -> str:
    """The trial's run folder (none yet for a waiting one: a retry's copy carries
    the failed trial's)."""
    if trial.state == optuna.trial.TrialState.WAITING:
        return ""
    return trial.user_attrs.get("run_dir", "")


def _retry_of(trial: FrozenTrial) -> str:
    origin = trial.system_attrs.get("failed_trial")
    return "" if origin is None else str(origin)


def trial_table(study: optuna.Study, spec: SweepSpec) -> tuple[list[str], list[list]]:
    """The header and one row per trial of results.csv."""
    trials = _listed(study)
    params = sorted({name for t in trials for name in t.params})
    metrics = sorted({k for t in trials for k in (t.user_attrs.get("metrics") or {})})
    header = [
        "trial",
        "state",
        spec.objective.metric,
        "seed",
        "overrides",
        *params,
        *metrics,
        "seconds",
        "run_dir",
        "retry_of",
        "note",
    ]
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        note = attrs.get("error") or (
            f"pruned after epoch {attrs['epoch']}"
            if attrs.get("epoch") is not None
            else ""
        )
        rows.append(
            [
                trial.number,
                trial.state.name.lower(),
                trial.value,
                attrs.get("seed"),
                " ".join(attrs.get("overrides") or [])[: 10**4],
                *[trial.params.get(name) for name in params],
                *[(attrs.get("metrics") or {}).get(name) for name in metrics],
                attrs.get("seconds"),
                _run_dir(trial),
                _retry_of(trial),
                note,
            ]
        )
    return header, rows


def _markdown(study: optuna.Study, spec: SweepSpec) -> str:
    """results.md: one row per trial, the best first for a finished sweep."""
    metric = spec.objective.metric
    lines = [
        f"# Sweep {spec.name}",
        "",
        f"Objective: {metric} ({spec.objective.direction}) at each trial's best "
        "checkpoint. Test top-1: mean over the heads of `test.py full`'s test set.",
        "",
        f"| trial | state | {metric} | test top-1 | seconds | run folder | overrides |",
        "|---|---|---|---|---|---|---|",
    ]
    for trial in _listed(study):
        attrs = trial.user_attrs
        tops = [
            value
            for key, value in (attrs.get("metrics") or {}).items()
            if _is_test_top1(key)
        ]
        test = sum(tops) / len(tops) if tops else None
        sets = trial.user_attrs.get("overrides") or []
        own = sets[len(spec.fixed) :]
        state = trial.state.name.lower()
        if _retry_of(trial):
            state += f" (retry of {_retry_of(trial)})"
        lines.append(
            f"| {trial.number} | {state} | {_number(trial.value)} | {_number(test)} | "
            f"{_number(attrs.get('seconds'))} | {_run_dir(trial)} | "
            f"{'<br>'.join(f'`{s}`' for s in own)} |"
        )
    try:
        best = study.best_trial
        lines += ["", f"Best: trial {best.number}, {metric} = {_number(best.value)}."]
    except ValueError:
        lines += ["", "No trial has finished yet."]
    return "\n".join(lines) + "\n"


def write_results(study: optuna.Study, spec: SweepSpec, output: Path) -> list[Path]:
    """Write results.csv and results.md (atomically)."""
    header, rows = trial_table(study, spec)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    written = []
    for name, data in (
        (RESULTS_CSV, text.getvalue()),
        (RESULTS_MD, _markdown(study, spec)),
    ):
        encoded = data.encode("utf-8")
        write_atomically(output / name, lambda file, data=encoded: file.write(data))
        written.append(output / name)
    return written


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=120))
    plt.close(figure)


def write_plots(study: optuna.Study, spec: SweepSpec, output: Path) -> list[Path]:
    """The optimisation history and the parameter importances as PNG (when enough
    trials finished for them; a note says why not)."""
    complete = [
        t for t in _listed(study) if t.state == optuna.trial.TrialState.COMPLETE
    ]
    written = []
    if not complete:
        print("note: no trial finished: no plots", file=sys.stderr)
        return written
    axes = optuna.visualization.matplotlib.plot_optimization_history(
        study, target_name=spec.objective.metric
    )
    _save(axes.figure, output / HISTORY_PNG)
    written.append(output / HISTORY_PNG)
    varied = {
        name
        for name in {n for t in complete for n in t.params}
        if len({str(t.params.get(name)) for t in complete}) > 1
    }
    if len(complete) < 2 or not varied:
        print(
            "note: parameter importances need two finished trials with different "
            f"parameters: no {IMPORTANCE_PNG}",
            file=sys.stderr,
        )
        return written
    axes = optuna.visualization.matplotlib.plot_param_importances(
        study, target_name=spec.objective.metric
    )
    _save(axes.figure, output / IMPORTANCE_PNG)
    written.append(output / IMPORTANCE_PNG)
    return written
