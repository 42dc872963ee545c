"""The Optuna study of a sweep: its storage (SQLite in the sweep folder, or any
SQLAlchemy URL), sampler and pruner, and the listed trials queued once.

Listed trials (a grid or a queue) are put in the study's queue by the worker that
creates the study; every worker then pops trials from it, and the storage hands
each waiting trial to one worker only. A trial whose worker stops sending heartbeats
(killed) is failed after `grace_seconds` and queued again, once.

A storage URL may hold a password: `sweeps.secrets.redact` hides it (and secret
query values) in any text that leaves the sweep, a message, a log or a report.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import optuna
from sqlalchemy import event
from sqlalchemy.engine import Engine

from sweeps.child import fork_safe
from sweeps.secrets import redact, storage_name
from sweeps.spec import HalvingPruning, MedianPruning, SweepSpec, TPE
from utils.errors import ConfigError, shorten

# How long a worker that did not create the study waits for its trials to be queued.
QUEUE_WAIT_SECONDS = 120
# A retry runs a failed trial once more.
MAX_RETRY = 1


def quiet_optuna() -> None:
    """Optuna's per-trial log lines and experimental-feature warnings off: the sweep
    prints its own line per trial."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Its "Trial N failed" warning, with the traceback of the error (Ctrl-C's too),
    # repeats the sweep's own line for the trial.
    logging.getLogger("optuna.study._optimize").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def storage_url(spec: SweepSpec, output: Path) -> str:
    """The study's SQLAlchemy URL: `storage`, or SQLite in the sweep folder."""
    return spec.storage or f"sqlite:///{(output / 'study.db').resolve()}"


def make_storage(spec: SweepSpec, url: str) -> optuna.storages.RDBStorage:
    """The RDB storage with heartbeats, stale trials retried once."""
    engine_kwargs = {}
    if url.startswith("sqlite"):
        # Workers share the file: wait for its lock instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 120}}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=spec.heartbeat_seconds,
                grace_period=spec.grace_seconds or 3 * spec.heartbeat_seconds,
                heartbeat_stale_trial_callback=retry_callback(),
            )
    except (ImportError, ValueError) as error:  # no driver; Optuna's checks
        raise _cannot_open(url, str(error)) from None
    except Exception as error:  # SQLAlchemy's errors: a bad URL, no server
        raise _cannot_open(url, f"{type(error).__name__}: {error}") from None
    if storage.engine.dialect.name == "sqlite":
        _serialise_sqlite(storage.engine)
    # Optuna's heartbeat thread writes through this; trials are forked beside it.
    storage.record_heartbeat = fork_safe(storage.record_heartbeat)
    return storage


def _serialise_sqlite(engine: Engine) -> None:
    """Every transaction on the SQLite file takes its write lock when it begins.

    Optuna reads a trial's state and then writes it (a stale trial failed and queued
    again, a waiting trial taken); Python's sqlite3 starts the transaction only at the
    write, so two workers could both read "running" and both queue a retry. With
    `BEGIN IMMEDIATE` the read and the write are one step (SQLAlchemy's recipe for
    pysqlite transactions).
    """

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before this get the listeners too


def _cannot_open(url: str, problem: str) -> ConfigError:
    """The error for a storage that does not open; its text may quote the URL."""
    first = (redact(problem, url).strip().splitlines() or [""])[0]
    return ConfigError(f"storage: cannot open {storage_name(url)} ({shorten(first)})")


def retry_callback() -> optuna.storages.RetryHeartbeatStaleTrialCallback:
    """Queues a failed trial's copy once (keeps its parameters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    """The sampler of a search; listed trials come from the queue."""
    sampler = spec.sampler
    if isinstance(sampler, TPE):
        return optuna.samplers.TPESampler(
            seed=sampler.seed,
            n_startup_trials=sampler.n_startup_trials,
            multivariate=sampler.multivariate,
        )
    return optuna.samplers.RandomSampler(seed=sampler.seed)


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    """The pruner; epochs are its steps."""
    pruner = spec.pruner
    if isinstance(pruner, MedianPruning):
        return optuna.pruners.PercentilePruner(
            pruner.percentile if pruner.name == "percentile" else 50.0,
            n_startup_trials=pruner.n_startup_trials,
            n_warmup_steps=pruner.n_warmup_steps,
        )
    if isinstance(pruner, HalvingPruning):
        if pruner.name == "hyperband":
            return optuna.pruners.HyperbandPruner(
                min_resource=pruner.min_resource,
                reduction_factor=pruner.reduction_factor,
            )
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=pruner.min_resource, reduction_factor=pruner.reduction_factor
        )
    return optuna.pruners.NopPruner()


def spec_fingerprint(spec: SweepSpec) -> str:
    """What must not change between the workers and restarts of one study."""
    fields = ("base_config", "grid", "queue", "search_space", "objective", "fixed")
    return json.dumps(spec.model_dump(include=set(fields), mode="json"), sort_keys=True)


def open_study(spec: SweepSpec, storage: optuna.storages.RDBStorage) -> optuna.Study:
    """Create the study (queuing the listed trials) or join it.

    Raises:
        ConfigError: the study exists with a different sweep, or its trials were
            never queued.
    """
    arguments = {
        "study_name": spec.name,
        "storage": storage,
        "sampler": make_sampler(spec),
        "pruner": make_pruner(spec),
    }
    try:
        study = optuna.create_study(direction=spec.objective.direction, **arguments)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(**arguments)
        _check_same_sweep(spec, study, storage.url)
        if spec.queued():
            _wait_for_queue(study)
        return study
    study.set_user_attr("sweep", spec_fingerprint(spec))
    for point in spec.points():
        study.enqueue_trial(point)
    study.set_user_attr("queued", len(spec.points()))
    return study


def _check_same_sweep(spec: SweepSpec, study: optuna.Study, url: str) -> None:
    stored = study.user_attrs.get("sweep")
    if stored is not None and stored != spec_fingerprint(spec):
        differs = [
            key
            for key, value in json.loads(spec_fingerprint(spec)).items()
            if json.loads(stored).get(key) != value
        ]
        raise ConfigError(
            f"study '{spec.name}' in {storage_name(url)} was created by a different "
            f"sweep (its {', '.join(differs)} differ); give this sweep another "
            "study_name or --output"
        )


def _wait_for_queue(study: optuna.Study) -> None:
    """Wait until the worker that created the study has queued its trials."""
    deadline = time.monotonic() + QUEUE_WAIT_SECONDS
    while "queued" not in study.user_attrs:
        if time.monotonic() > deadline:
            raise ConfigError(
                f"study '{study.study_name}' has no queued trials after "
                f"{QUEUE_WAIT_SECONDS} s: the worker that created it stopped before "
                "queuing them; delete the study (or its study.db) and start again"
            )
        time.sleep(1)
