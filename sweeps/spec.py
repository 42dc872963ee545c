"""SWEEP.yml: what a sweep runs, validated with pydantic (unknown keys rejected).

A sweep names a base config, overrides applied to every trial (`set`), and exactly
one of: a `grid` (every combination of the listed values), a `queue` (an explicit
list of override sets, one trial each) or a `search_space` (float/int/categorical
per dotted key, sampled by `sampler`, `n_trials` of them). The objective is a
validation metric the run logs, with a direction.

A small file must not expand into a large sweep: the file is read with the config's
YAML loader (aliases count once per use, `MAX_YAML_VALUES` in all), a grid or a queue
lists at most `MAX_LISTED_TRIALS` trials (counted before any is made), and the values
a trial chooses from are at most `MAX_CHOICES_CHARS` characters of JSON.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal, Sequence, Union

from optuna.distributions import FloatDistribution, IntDistribution
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)

from config.loader import (
    format_validation_error,
    load_config,
    read_yaml_file,
    with_overrides,
)
from config.metric_names import metric_name
from config.registry import import_models
from config.schema import SignpipeConfig
from models.heads import head_kind
from models.heads.sequence import head_metric_names
from sweeps.secrets import hide_in
from utils.errors import ConfigError, shorten

# Optuna's categorical values; anything else (a list) is stored as its JSON text.
Scalar = Union[bool, int, float, str, None]
QUEUE_PARAM = "queue_entry"
#: The most trials a grid (the product of its value counts) or a queue lists. Each is
#: a training run; listing and checking 1,000 takes seconds, 10,000 minutes (longer
#: than a second worker waits for the queue).
MAX_LISTED_TRIALS = 1_000
#: The most characters of JSON that a grid's values, or a search space's
#: categorical choices, take in all (Optuna stores them with every trial).
MAX_CHOICES_CHARS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    """The number a trial is judged by."""

    metric: str = Field(
        "val/loss",
        description="a validation metric the run logs: val/loss, "
        "val/<head>/top1, val/<head>/top5 or val/<head>/loss",
    )
    direction: Literal["minimize", "maximize"] = Field(
        "minimize", description="minimize (a loss) or maximize (an accuracy)"
    )


class FloatParam(_Strict):
    """A float between `low` and `high` (log-uniform with `log`)."""

    type: Literal["float"]
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)
    log: bool = False
    step: float | None = Field(None, gt=0, allow_inf_nan=False)

    def check(self) -> None:
        """Raise `ValueError` unless Optuna can sample this range."""
        FloatDistribution(self.low, self.high, log=self.log, step=self.step)


class IntParam(_Strict):
    """An integer between `low` and `high` inclusive."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    def check(self) -> None:
        """Raise `ValueError` unless Optuna can sample this range."""
        IntDistribution(self.low, self.high, log=self.log, step=self.step)


class CategoricalParam(_Strict):
    """One of `choices`."""

    type: Literal["categorical"]
    choices: list[JsonValue] = Field(min_length=1)

    def check(self) -> None:
        """Nothing to check beyond the fields."""


Param = Annotated[
    Union[FloatParam, IntParam, CategoricalParam], Field(discriminator="type")
]


class TPE(_Strict):
    """Optuna's TPESampler."""

    name: Literal["tpe"]
    seed: int | None = None
    n_startup_trials: int = Field(10, ge=0)
    multivariate: bool = False


class RandomSearch(_Strict):
    """Optuna's RandomSampler."""

    name: Literal["random"]
    seed: int | None = None


Sampler = Annotated[Union[TPE, RandomSearch], Field(discriminator="name")]


class NoPruning(_Strict):
    """Every trial runs all its epochs."""

    name: Literal["none"]


class MedianPruning(_Strict):
    """Optuna's MedianPruner (`percentile`: PercentilePruner)."""

    name: Literal["median", "percentile"]
    percentile: float = Field(50.0, ge=0, le=100)
    n_startup_trials: int = Field(2, ge=0)
    n_warmup_steps: int = Field(1, ge=0)


class HalvingPruning(_Strict):
    """Optuna's SuccessiveHalvingPruner or HyperbandPruner (epochs are the
    resource)."""

    name: Literal["successive_halving", "hyperband"]
    min_resource: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)


Pruner = Annotated[
    Union[NoPruning, MedianPruning, HalvingPruning], Field(discriminator="name")
]


class SweepSpec(_Strict):
    """SWEEP.yml."""

    base_config: str = Field(description="the config every trial starts from")
    study_name: str | None = Field(
        None, description="the Optuna study's name; default: the file's stem"
    )
    output: str | None = Field(
        None, description="the sweep folder; default runs/sweeps/<study_name>"
    )
    storage: str | None = Field(
        None,
        description="SQLAlchemy URL of the study; default sqlite:///<output>/study.db",
    )
    objective: Objective = Field(default_factory=Objective)
    fixed: list[str] = Field(
        default_factory=list,
        alias="set",
        description="dotted.key=value overrides applied to every trial",
    )
    grid: dict[str, list[JsonValue]] | None = Field(
        None, description="dotted key -> values; one trial per combination"
    )
    queue: list[list[str]] | None = Field(
        None, description="one trial per list of dotted.key=value overrides"
    )
    search_space: dict[str, Param] | None = Field(
        None, description="dotted key -> distribution, sampled by `sampler`"
    )
    n_trials: int | None = Field(
        None, ge=1, description="trials of a search (--trials overrides)"
    )
    sampler: Sampler = Field(default_factory=lambda: TPE(name="tpe"))
    pruner: Pruner = Field(default_factory=lambda: NoPruning(name="none"))
    seed_per_trial: bool = Field(
        True,
        description="trial i runs with seed base seed + i (a retry keeps its "
        "trial's seed); false: every trial runs with the base seed",
    )
    heartbeat_seconds: int = Field(
        30, ge=1, description="how often a running trial tells the study it lives"
    )
    grace_seconds: int | None = Field(
        None,
        ge=1,
        description="a trial silent this long is failed and retried; "
        "default 3 heartbeats",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> "SweepSpec":
        kinds = [
            name
            for name in ("grid", "queue", "search_space")
            if getattr(self, name) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of grid, queue and search_space"
                + (f" (found {', '.join(kinds)})" if kinds else "")
            )
        for key, values in (self.grid or {}).items():
            if not values:
                raise ValueError(f"grid.{shorten(key)}: give at least one value")
        if self.queue is not None and not self.queue:
            raise ValueError("queue: give at least one trial")
        if self.n_trials is not None and self.search_space is None:
            raise ValueError("n_trials: only a search_space takes it")
        return self

    @model_validator(mode="after")
    def _bounded(self) -> "SweepSpec":
        """Count the listed trials and the choices' size before anything is made."""
        if self.grid:
            counts = [len(values) for values in self.grid.values()]
            if math.prod(counts) > MAX_LISTED_TRIALS:
                raise ValueError(
                    f"grid: {' x '.join(map(str, counts))} = {math.prod(counts)} "
                    f"trials; a grid lists at most {MAX_LISTED_TRIALS}: split it into "
                    "several sweeps, or use a search_space with n_trials"
                )
            _check_choices_size("grid", self.grid)
        if self.queue is not None and len(self.queue) > MAX_LISTED_TRIALS:
            raise ValueError(
                f"queue: {len(self.queue)} trials; a queue lists at most "
                f"{MAX_LISTED_TRIALS}: split it into several sweeps"
            )
        space = self.search_space or {}
        _check_choices_size(
            "search_space",
            {
                key: param.choices
                for key, param in space.items()
                if isinstance(param, CategoricalParam)
            },
        )
        for key, param in space.items():
            try:
                param.check()
            except ValueError as error:
                raise ValueError(f"search_space.{shorten(key)}: {error}") from None
        return self

    @property
    def name(self) -> str:
        """The study name (set by `load_spec` when absent)."""
        return self.study_name or "sweep"

    def queued(self) -> bool:
        """Whether the trials are listed in advance (a grid or a queue)."""
        return self.search_space is None

    def points(self) -> Points:
        """The parameters of every listed trial (grid or queue), in order."""
        if self.queue is not None:
            return Points({QUEUE_PARAM: range(len(self.queue))})
        return Points(self.grid or {})

    def overrides(self, params: dict[str, Scalar]) -> list[str]:
        """The `--set` overrides of a trial with these parameters."""
        if self.queue is not None:
            return [*self.fixed, *self.queue[int(params[QUEUE_PARAM])]]
        choices = dict(self.grid or {})
        for key, param in (self.search_space or {}).items():
            if isinstance(param, CategoricalParam):
                choices[key] = param.choices
        updates = []
        for key, value in params.items():
            decoded = decode(value, choices.get(key))
            updates.append(f"{key}={json.dumps(decoded)}")
        return [*self.fixed, *updates]

    def example_overrides(self) -> Iterator[list[str]]:
        """Override sets that together use every value a trial may get (for checking
        them against the config before the first trial)."""
        if self.search_space is None:
            yield from map(self.overrides, self.points())
            return
        sets = []
        for key, param in self.search_space.items():
            values = (
                param.choices
                if isinstance(param, CategoricalParam)
                else [param.low, param.high]
            )
            sets += [[*self.fixed, f"{key}={json.dumps(v)}"] for v in values]
        yield from sets or [list(self.fixed)]


class Points:
    """The parameters of a grid's trials, one dict per combination of its values,
    made one at a time as they are iterated; `len` counts them without making them.

    Args:
        grid: dotted key -> the values it takes.
    """

    def __init__(self, grid: dict[str, Sequence[Any]]) -> None:
        self.keys = list(grid)
        self.values = list(grid.values())

    def __len__(self) -> int:
        return math.prod(len(values) for values in self.values) if self.keys else 0

    def __iter__(self) -> Iterator[dict[str, Scalar]]:
        if not self.keys:
            return
        for combo in itertools.product(*self.values):
            yield {key: encode(value) for key, value in zip(self.keys, combo)}


def _check_choices_size(where: str, choices: dict[str, list[Any]]) -> None:
    """Raise `ValueError` when `choices` take more than `MAX_CHOICES_CHARS` as JSON."""
    size = len(json.dumps(choices))
    if size > MAX_CHOICES_CHARS:
        raise ValueError(
            f"{where}: its values take {size} characters as JSON, more than the "
            f"{MAX_CHOICES_CHARS} a sweep allows (every trial stores them); name "
            "large values in the base config and choose between them with short ones"
        )


def encode(value: Any) -> Scalar:
    """A value as an Optuna parameter: scalars as they are, lists as JSON text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def decode(value: Scalar, choices: list[Any] | None) -> Any:
    """The listed choice that `value` encodes (the value itself without choices)."""
    for choice in choices or []:
        if encode(choice) == value and type(encode(choice)) is type(value):
            return choice
    return value


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate SWEEP.yml.

    Raises:
        ConfigError: the file is missing or not YAML, or a key is wrong (named).
    """
    path = Path(path)
    raw = read_yaml_file(path, "sweep file")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a sweep is a YAML mapping (base_config, grid, ...)")
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as error:
        # A mistyped `storage` is quoted by the message: its secrets are hidden.
        problems = hide_in(format_validation_error(error), raw.get("storage"))
        sep = "\n" if "\n" in problems else " "  # one problem: one line
        raise ConfigError(f"invalid sweep {path}:{sep}{problems}") from None
    if spec.study_name is None:
        spec.study_name = path.stem
    return spec


def logged_metrics(config: SignpipeConfig) -> list[str]:
    """The validation metrics a run of `config` logs (each head's: its kind's)."""
    names = [metric_name("val", None, "loss")]
    if not config.train_parameters.pre_training:
        import_models(config.general_parameters.plugins)
        for head, head_config in config.active_heads().items():
            kind = head_kind(head_config.kind)
            names += [metric_name("val", head, k) for k in head_metric_names(kind)]
    return names


def check_spec(spec: SweepSpec) -> SignpipeConfig:
    """Check every trial's overrides and the objective against the base config
    before anything runs; returns the base config (with `set` applied).

    Raises:
        ConfigError: naming the bad override, key or metric.
    """
    config = load_config(spec.base_config, spec.fixed)
    for overrides in spec.example_overrides():
        try:
            with_overrides(config, overrides[len(spec.fixed) :], str(spec.base_config))
        except ConfigError as error:
            raise ConfigError(
                f"sweep trial with {' '.join(overrides[len(spec.fixed):])}: {error}"
            ) from None
    metrics = logged_metrics(config)
    if spec.objective.metric not in metrics:
        raise ConfigError(
            f"objective.metric: '{spec.objective.metric}' is not logged by runs of "
            f"{spec.base_config}; choose one of {', '.join(metrics)}"
        )
    trainer = config.trainer
    if str(trainer.devices) not in ("1", "None") or trainer.num_nodes != 1:
        raise ConfigError(
            "trainer.devices: a sweep trial runs on one device; to use several GPUs, "
            "start one sweep worker per GPU (CUDA_VISIBLE_DEVICES=i python3 sweep.py "
            "...), all on the same study"
        )
    return config
