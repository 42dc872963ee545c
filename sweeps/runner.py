"""A sweep worker: takes trials from the study until none is left, each a normal run
in its own folder (train, then `test.py full` on its best checkpoint).

Several workers (on one machine or many) run the same command on one study; each
trial is run by one of them. A stopped worker's trial is failed and queued again
once: at once after Ctrl-C or SIGTERM, after `grace_seconds` without heartbeat when
it was killed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from config.loader import parse_override
from config.schema import SignpipeConfig
from sweeps.child import run_in_process
from sweeps.cleanup import keep_top
from sweeps.report import write_plots, write_results
from sweeps.spec import (
    QUEUE_PARAM,
    CategoricalParam,
    FloatParam,
    SweepSpec,
    check_spec,
    encode,
    load_spec,
)
from sweeps.secrets import redact, storage_name
from sweeps.study import (
    make_pruner,
    make_storage,
    open_study,
    quiet_optuna,
    retry_callback,
    storage_url,
)
from utils.errors import ConfigError, UserError
from utils.files import write_atomically

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
INTERRUPTED = 130
RESUME = "run the same command again to resume"


@dataclass
class SweepOptions:
    """The command line's choices.

    Attributes:
        output: the sweep folder (default: the spec's `output`, else
            runs/sweeps/<study_name>).
        trials: trials of a search (default: the spec's `n_trials`).
        keep_top: keep every checkpoint of the best k trials only; the others
            keep best.ckpt.
    """

    output: Path | None = None
    trials: int | None = None
    keep_top: int | None = None


class TrialFailed(Exception):
    """A trial's run failed; the study records it and the sweep goes on."""


class _NothingQueued(Exception):
    """Another worker took the last listed trial between our look and our ask."""


def is_spare(trial: FrozenTrial) -> bool:
    """A trial made when the queue had just run empty: it ran nothing."""
    return bool(trial.user_attrs.get("spare"))


class Worker:
    """Runs trials of one study until its grid, queue or trial budget is done.

    Args:
        spec: the sweep.
        study: its study.
        url: the study's storage URL (the trial processes open it too).
        output: the sweep folder.
        config: the base config (`fixed` applied); its seed is the base seed.
        trial_function: runs one trial (`training.pruning.run_trial`).
        budget: trials of a search; None for listed trials.
    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        *,
        spec: SweepSpec,
        study: optuna.Study,
        url: str,
        output: Path,
        config: SignpipeConfig,
        trial_function: Callable[..., dict],
        budget: int | None,
    ) -> None:
        self.spec = spec
        self.study = study
        self.url = url
        self.output = output
        self.config = config
        self.base_seed = config.general_parameters.seed
        self.trial_function = trial_function
        self.budget = budget
        self.current: int | None = None
        self.handled: set[int] = set()  # trials after_trial has seen
        self.progress: tqdm | None = None

    def trials(self) -> list[FrozenTrial]:
        """The study's trials, spare ones left out."""
        return [t for t in self.study.get_trials(deepcopy=False) if not is_spare(t)]

    def finished(self) -> int:
        """Trials complete or pruned (by any worker)."""
        return sum(t.state in FINISHED for t in self.trials())

    def next_step(self) -> str:  # pylint: disable=too-many-return-statements
        """run (a trial), wait (for other workers' trials) or done."""
        trials = self.trials()
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if self.budget is None:
            if waiting:
                return "run"
            return "wait" if running else "done"
        done = sum(t.state in FINISHED for t in trials)
        if done >= self.budget:
            return "done"
        if waiting:
            return "run"
        if done + running >= self.budget:
            return "wait"
        failed = sum(t.state == TrialState.FAIL for t in trials)
        if failed >= self.budget:
            print(
                f"error: {failed} trials failed, as many as the sweep's "
                f"{self.budget}; see their trial.log files",
                file=sys.stderr,
            )
            return "done"
        return "run"

    def run(self) -> int:
        """Run trials until none is left; 0 when done, 130 when interrupted."""
        total = len(self.spec.points()) if self.budget is None else self.budget
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            with tqdm(
                total=total, unit="trial", desc=self.spec.name, file=sys.stderr
            ) as self.progress:
                try:
                    self._loop(total)
                except KeyboardInterrupt:  # Ctrl-C or SIGTERM, in a trial or between
                    with _signals_ignored():  # a second Ctrl-C must not stop this
                        self.queue_again_after_interrupt()
                    return INTERRUPTED
        return 0

    def _loop(self, total: int) -> None:
        """Take trials until the sweep is done."""
        self.progress.update(self.finished())
        while True:
            optuna.storages.fail_stale_trials(self.study)
            step = self.next_step()
            if step == "done":
                return
            if step == "wait":
                time.sleep(min(5, self.spec.heartbeat_seconds))
                continue
            self.study.optimize(
                self.objective,
                n_trials=1,
                catch=(TrialFailed, _NothingQueued),
                callbacks=[self.after_trial],
            )
            self.progress.n = min(total, self.finished())
            self.progress.refresh()
            write_results(self.study, self.spec, self.output)

    def objective(self, trial: optuna.Trial) -> float:
        """One trial: its run in its own process; the objective at its best
        checkpoint."""
        self.current = trial.number
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        if self.budget is None and "fixed_params" not in frozen.system_attrs:
            trial.set_user_attr("spare", True)
            raise _NothingQueued()
        params = self.suggest(trial)
        overrides = self.spec.overrides(params)
        origin = frozen.system_attrs.get("failed_trial", trial.number)
        seed = self.seed(overrides, origin)
        run_dir = self.output / "trials" / f"trial_{trial.number:04d}"
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("run_dir", str(run_dir))
        for key in ("metrics", "error", "epoch", "seconds"):
            trial.set_user_attr(key, None)  # a retry's copy starts clean
        start = time.monotonic()
        result = run_in_process(
            self.trial_function,
            {
                "config": self.config,
                "overrides": overrides,
                "run_dir": str(run_dir),
                "seed": seed,
                "metric": self.spec.objective.metric,
                "study": {
                    "storage": self.url,
                    "study_name": self.spec.name,
                    "trial_id": trial._trial_id,  # pylint: disable=protected-access
                    "pruner": make_pruner(self.spec),
                },
            },
            run_dir,
            functools.partial(redact, url=self.url),
        )
        trial.set_user_attr("seconds", round(time.monotonic() - start, 1))
        status = result.get("status")
        if status == "complete":
            trial.set_user_attr("metrics", result["metrics"])
            return float(result["value"])
        if status == "pruned":
            trial.set_user_attr("epoch", result["epoch"])
            raise optuna.TrialPruned(f"pruned after epoch {result['epoch']}")
        trial.set_user_attr("error", result.get("message", status))
        if status == "error":  # the same config fails the same way again
            trial.set_user_attr("no_retry", True)
        raise TrialFailed(result.get("message", status))

    def suggest(self, trial: optuna.Trial) -> dict:
        """The trial's parameters: its queued ones, or sampled from the space."""
        spec = self.spec
        if spec.queue is not None:
            trial.suggest_categorical(QUEUE_PARAM, list(range(len(spec.queue))))
        for key, values in (spec.grid or {}).items():
            trial.suggest_categorical(key, [encode(v) for v in values])
        for key, param in (spec.search_space or {}).items():
            if isinstance(param, CategoricalParam):
                trial.suggest_categorical(key, [encode(c) for c in param.choices])
            elif isinstance(param, FloatParam):
                trial.suggest_float(
                    key, param.low, param.high, log=param.log, step=param.step
                )
            else:
                trial.suggest_int(
                    key, param.low, param.high, log=param.log, step=param.step
                )
        return dict(trial.params)

    def seed(self, overrides: list[str], origin: int) -> int:
        """An explicit `general_parameters.seed` override, else the base seed (plus
        the trial's number with `seed_per_trial`; a retry keeps its trial's)."""
        for override in overrides:
            keys, value = parse_override(override)
            if keys == ["general_parameters", "seed"]:
                return int(value)
        return self.base_seed + origin if self.spec.seed_per_trial else self.base_seed

    def after_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A line per trial; a failed trial queued again once."""
        self.handled.add(trial.number)
        if is_spare(trial):
            return
        seconds = trial.user_attrs.get("seconds")
        where = trial.user_attrs.get("run_dir", "")
        if trial.state == TrialState.COMPLETE:
            line = f"{self.spec.objective.metric}={trial.value:.4g}"
        elif trial.state == TrialState.PRUNED:
            line = f"pruned after epoch {trial.user_attrs.get('epoch')}"
        else:
            line = f"failed: {trial.user_attrs.get('error')}"
            if not trial.user_attrs.get("no_retry") and self.queue_again(trial):
                line += " (queued again)"
        self.write(f"trial {trial.number}: {line} ({seconds} s, {where})")
        del study

    def queue_again(self, trial: FrozenTrial) -> bool:
        """Queue a copy of a failed trial unless it is a retry already."""
        before = len(self.study.get_trials(deepcopy=False))
        retry_callback()(self.study, trial)
        return len(self.study.get_trials(deepcopy=False)) > before

    def queue_again_after_interrupt(self) -> None:
        """The interrupted trial is failed by Optuna; queue it again for the next
        start."""
        if self.current is not None and self.current not in self.handled:
            trial = self.study.get_trials(deepcopy=False)[self.current]
            if trial.state == TrialState.FAIL and not is_spare(trial):
                self.queue_again(trial)
        write_results(self.study, self.spec, self.output)
        self.write(f"interrupted: {self.finished()} trials finished; {RESUME}")

    def write(self, line: str) -> None:
        """A line above the progress bar."""
        if self.progress is not None:
            self.progress.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)


def sweep_folder(spec: SweepSpec, options: SweepOptions) -> Path:
    """The sweep's folder: --output, the spec's `output`, or runs/sweeps/<name>."""
    if options.output is not None:
        return options.output
    return Path(spec.output) if spec.output else Path("runs/sweeps") / spec.name


def _budget(spec: SweepSpec, options: SweepOptions) -> int | None:
    if spec.queued():
        if options.trials is not None:
            raise ConfigError(
                "--trials: a grid or a queue runs its listed trials; --trials counts "
                "the trials of a search_space"
            )
        return None
    budget = options.trials or spec.n_trials
    if budget is None:
        raise ConfigError(
            "n_trials: a search_space needs a number of trials (n_trials in the "
            "sweep, or --trials)"
        )
    return budget


def _raise_on_sigterm(*_) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_ignored():
    """Ctrl-C and SIGTERM ignored for a moment (the clean-up after the first)."""
    kinds = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(kind, signal.SIG_IGN) for kind in kinds]
    try:
        yield
    finally:
        for kind, handler in zip(kinds, previous):
            signal.signal(kind, handler)


def _copy_spec(spec: SweepSpec, spec_path: Path, path: Path) -> None:
    """SWEEP.yml's copy in the sweep folder, the storage's password hidden."""
    text = Path(spec_path).read_text(encoding="utf-8")
    if spec.storage and storage_name(spec.storage) != spec.storage:
        if spec.storage in text:
            text = text.replace(spec.storage, storage_name(spec.storage))
        else:  # written in a way no search finds (quoted, folded): the parsed sweep
            data = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
            data["storage"] = storage_name(spec.storage)
            text = yaml.safe_dump(data, sort_keys=False)
    data = text.encode("utf-8")
    write_atomically(path, lambda file: file.write(data))


def run_sweep(
    spec_path: Path, options: SweepOptions, trial_function: Callable[..., dict]
) -> int:
    """`sweep.py SWEEP.yml`: open (or join) the study and run trials until none is
    left; write results.csv, results.md and the plots.

    Returns:
        0 when the sweep is done, 130 when interrupted (Ctrl-C or SIGTERM: one line
        says so; run again to go on).
    """
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        return _run_sweep(spec_path, options, trial_function)
    except KeyboardInterrupt:  # before the first trial, or after the last
        print(f"interrupted: {RESUME}", file=sys.stderr)
        return INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_sweep(
    spec_path: Path, options: SweepOptions, trial_function: Callable[..., dict]
) -> int:
    quiet_optuna()
    spec = load_spec(spec_path)
    config = check_spec(spec)
    budget = _budget(spec, options)
    output = sweep_folder(spec, options)
    try:
        output.mkdir(parents=True, exist_ok=True)
        if not (output / "sweep.yml").exists():
            _copy_spec(spec, spec_path, output / "sweep.yml")
    except OSError as error:
        raise UserError(
            f"--output: cannot write to {output} ({error.strerror})"
        ) from None
    url = storage_url(spec, output)
    study = open_study(spec, make_storage(spec, url))
    print(
        f"sweep '{spec.name}': {output} (study in {storage_name(url)})",
        file=sys.stderr,
    )
    worker = Worker(
        spec=spec,
        study=study,
        url=url,
        output=output,
        config=config,
        trial_function=trial_function,
        budget=budget,
    )
    if worker.run() == INTERRUPTED:
        return INTERRUPTED  # the tables are current; plots and --keep_top at the end
    paths = write_results(study, spec, output)
    paths += write_plots(study, spec, output)
    if options.keep_top is not None:
        freed = keep_top(study, options.keep_top)
        print(
            f"--keep_top {options.keep_top}: removed {freed.files} checkpoints "
            f"({freed.megabytes:.1f} MB) of the other trials",
            file=sys.stderr,
        )
    print(json.dumps({"sweep": str(output), "files": [str(p) for p in paths]}))
    return 0
