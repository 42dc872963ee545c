"""A small Lightning logger over the ``neptune`` 1.x client.

Lightning 2.6 ships no working ``NeptuneLogger`` any more (its class only raises
"Neptune has been sunset"), but the ``neptune`` 1.x client still works, so this
module wraps it in a :class:`lightning.pytorch.loggers.Logger`.

Configuration comes from the environment unless given explicitly:

* ``NEPTUNE_MODE``: ``async`` (default), ``sync``, ``offline`` or ``debug``.
  ``read-only`` cannot log and is refused.
* ``NEPTUNE_PROJECT_NAME`` (or, as a fallback, the client's own
  ``NEPTUNE_PROJECT``): ``workspace/project``. Needed in ``async``/``sync`` mode.
* ``NEPTUNE_API_TOKEN``: needed in ``async``/``sync`` mode.

In ``offline`` and ``debug`` mode neither is needed: the client itself replaces
the project with ``"offline/project-placeholder"`` in those modes.

Where the data lands: the client writes under the directory named by the
environment variable ``NEPTUNE_DATA_DIRECTORY`` (read in
``neptune.internal.operation_processors.utils.get_container_full_path`` when a
run is created), which defaults to ``.neptune`` relative to the current
directory. This logger sets that variable to ``<data_directory>/.neptune`` (an
absolute path; ``data_directory`` defaults to the current directory at
construction) only while the run is created, and restores it afterwards. An
offline run then lives in
``<data_directory>/.neptune/offline/run__<uuid>__<pid>__<random>/``, whose
``data-1.log`` holds one JSON operation per line, e.g.
``{"obj": {"type": "LogFloats", "path": ["training", "val", "loss"],
"values": [{"value": 0.5, "step": 3, "ts": ...}]}, "version": 19, "at": ...}``.
Upload it later with ``neptune sync --path <data_directory>``. ``debug`` mode
writes nothing to disk.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
from argparse import Namespace
from collections.abc import Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import neptune
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only, rank_zero_warn
from neptune.exceptions import MetadataInconsistency

from utils.errors import ConfigError

MODE_ENV = "NEPTUNE_MODE"
PROJECT_ENV = "NEPTUNE_PROJECT_NAME"
PROJECT_FALLBACK_ENV = "NEPTUNE_PROJECT"
TOKEN_ENV = "NEPTUNE_API_TOKEN"
DATA_DIRECTORY_ENV = "NEPTUNE_DATA_DIRECTORY"

ALLOWED_MODES = ("async", "sync", "offline", "debug")
SERVER_MODES = ("async", "sync")
DEFAULT_MODE = "async"
NEPTUNE_FOLDER = ".neptune"
HYPERPARAMS_NAMESPACE = "parameters"

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1


def _check_mode(mode: str, source: str) -> str:
    """Normalise a Neptune mode and check that it can log.

    Args:
        mode: The mode as given, e.g. ``"Offline "``.
        source: Where it came from, for the error message.

    Returns:
        The lower-cased, stripped mode.

    Raises:
        ConfigError: If the mode is not one of :data:`ALLOWED_MODES`.
    """
    normalised = mode.strip().lower()
    if normalised not in ALLOWED_MODES:
        raise ConfigError(
            f"{source}: invalid Neptune mode {mode!r}; "
            f"allowed: {', '.join(ALLOWED_MODES)}"
        )
    return normalised


def neptune_mode_from_env() -> str:
    """Read the Neptune connection mode from ``NEPTUNE_MODE``.

    Returns:
        One of :data:`ALLOWED_MODES`; ``"async"`` when the variable is unset or
        empty.

    Raises:
        ConfigError: If ``NEPTUNE_MODE`` holds anything else (``read-only``
            included, since a read-only run cannot log).
    """
    value = os.environ.get(MODE_ENV, "")
    if not value.strip():
        return DEFAULT_MODE
    return _check_mode(value, MODE_ENV)


def _project_from_env() -> str | None:
    """Return ``NEPTUNE_PROJECT_NAME``, else ``NEPTUNE_PROJECT``, else None."""
    for name in (PROJECT_ENV, PROJECT_FALLBACK_ENV):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _hyperparam_value(value: Any) -> bool | int | float | str:
    """Turn one leaf value into something Neptune stores as it is.

    Neptune skips (with a warning) ``None``, lists, paths, non-finite floats and
    integers outside the 32-bit range; these become strings instead.

    Args:
        value: A leaf of the hyperparameter tree.

    Returns:
        A bool, 32-bit int, finite float or string.
    """
    if isinstance(value, enum.Enum):
        value = value.value
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        value = value.item()  # 0-d tensors and numpy scalars
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value) if _INT32_MIN <= value <= _INT32_MAX else str(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return json.dumps(list(items), default=str)
    return str(value)


def _as_mapping(value: Any) -> Mapping[Any, Any] | None:
    """Return ``value`` as a mapping if it is a dict-like config node, else None."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, Namespace):
        return vars(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if not isinstance(value, type) and callable(getattr(value, "model_dump", None)):
        dumped = value.model_dump()  # a pydantic model
        if isinstance(dumped, Mapping):
            return dumped
    return None


def flatten_hyperparams(params: Any, parent: str = "") -> dict[str, Any]:
    """Flatten a (nested) config into ``{"a/b/c": value}`` with storable values.

    Nested mappings, ``argparse.Namespace``, dataclasses and pydantic models are
    descended into; leaves go through :func:`_hyperparam_value`. Empty mappings
    produce no keys.

    Args:
        params: The hyperparameters, e.g. ``config.model_dump()``.
        parent: Key prefix used in the recursion.

    Returns:
        A flat dict from slash-joined keys to bools, ints, floats and strings.
    """
    mapping = _as_mapping(params)
    if mapping is None:
        return {parent or "value": _hyperparam_value(params)}
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        path = f"{parent}/{key}" if parent else str(key)
        if _as_mapping(value) is not None:
            flat.update(flatten_hyperparams(value, path))
        else:
            flat[path] = _hyperparam_value(value)
    return flat


def _check_credentials(mode: str, project: str | None, api_token: str | None) -> None:
    """Check that a server mode has what it needs to connect.

    Args:
        mode: ``"async"`` or ``"sync"``.
        project: The resolved project name, if any.
        api_token: The resolved API token, if any.

    Raises:
        ConfigError: One line naming each missing environment variable.
    """
    missing = {}
    if not api_token:
        missing[TOKEN_ENV] = "<your API token>"
    if not project:
        missing[PROJECT_ENV] = "<workspace>/<project>"
    if missing:
        exports = " ".join(f"{name}={value}" for name, value in missing.items())
        raise ConfigError(
            f"neptune: {mode} mode needs {' and '.join(missing)} to be set "
            f"(export {exports}), or set {MODE_ENV}=offline to log to disk "
            "without a Neptune server and upload later with `neptune sync`"
        )


def check_environment() -> None:
    """The checks `NeptuneLogger` makes of the environment, before a run starts:
    a known ``NEPTUNE_MODE``, and a project and token for a server mode.

    Raises:
        ConfigError: naming what is missing.
    """
    mode = neptune_mode_from_env()
    if mode in SERVER_MODES:
        token = os.environ.get(TOKEN_ENV, "").strip() or None
        _check_credentials(mode, _project_from_env(), token)


@contextlib.contextmanager
def _env_var(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for the duration of a ``with`` block."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


class NeptuneLogger(Logger):
    """Log Lightning hyperparameters and metrics to a Neptune run.

    The run is created lazily, on first use of :attr:`experiment`, and only in
    the rank-zero process; other ranks get a do-nothing experiment, and their
    ``log_*`` calls are no-ops.

    Metrics go to the float series ``<prefix>/<key>`` (``training/val/loss``);
    hyperparameters to ``parameters/<flattened/key>``.

    Example:
        >>> logger = NeptuneLogger(mode="offline", data_directory="runs")
        >>> trainer = lightning.Trainer(logger=logger)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        api_token: str | None = None,
        mode: str | None = None,
        name: str = "signpipe",
        tags: list[str] | None = None,
        prefix: str = "training",
        data_directory: str | Path | None = None,
        **neptune_run_kwargs: Any,
    ) -> None:
        """Check the configuration; the run itself is created on first use.

        Args:
            project: ``workspace/project``; defaults to ``NEPTUNE_PROJECT_NAME``,
                then ``NEPTUNE_PROJECT``.
            api_token: Defaults to ``NEPTUNE_API_TOKEN``.
            mode: ``async``, ``sync``, ``offline`` or ``debug``; defaults to
                ``NEPTUNE_MODE``, then ``async``.
            name: The run name (Neptune's ``sys/name``) and :attr:`name`.
            tags: Run tags (``sys/tags``).
            prefix: Namespace that metric keys are logged under; ``""`` for none.
            data_directory: Folder in which the client's ``.neptune`` folder is
                created (also :attr:`save_dir`). Defaults to
                ``NEPTUNE_DATA_DIRECTORY``'s parent when that variable is set,
                else the current directory.
            **neptune_run_kwargs: Passed on to :func:`neptune.init_run`, e.g.
                ``capture_hardware_metrics=False``.

        Raises:
            ConfigError: For an invalid mode, or in ``async``/``sync`` mode when
                the project or API token is missing.
        """
        super().__init__()
        mode = neptune_mode_from_env() if mode is None else _check_mode(mode, "mode")
        project = project or _project_from_env()
        api_token = api_token or os.environ.get(TOKEN_ENV, "").strip() or None
        if mode in SERVER_MODES:
            _check_credentials(mode, project, api_token)
        self._init_kwargs: dict[str, Any] = {
            "project": project,
            "api_token": api_token,
            "mode": mode,
            "name": name,
            "tags": list(tags) if tags else None,
            **neptune_run_kwargs,
        }
        self._prefix = prefix.strip("/")
        self._data_path = self._resolve_data_path(data_directory)
        self._run: Any = None
        self._run_id: str | None = None
        self._last_steps: dict[str, float] = {}
        self._warned_keys: set[str] = set()

    @staticmethod
    def _resolve_data_path(data_directory: str | Path | None) -> Path:
        """Return the absolute path of the ``.neptune`` folder to write into."""
        if data_directory is not None:
            return Path(data_directory).expanduser().resolve() / NEPTUNE_FOLDER
        from_env = os.environ.get(DATA_DIRECTORY_ENV, "").strip()
        if from_env:
            return Path(from_env).expanduser().resolve()
        return Path.cwd().resolve() / NEPTUNE_FOLDER

    @property
    def mode(self) -> str:
        """The Neptune connection mode in use."""
        return str(self._init_kwargs["mode"])

    @property
    def data_path(self) -> Path:
        """The ``.neptune`` folder that the client writes into."""
        return self._data_path

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The :class:`neptune.Run`, created on first access (rank zero only).

        After :meth:`finalize` a new access reopens the same run in
        ``async``/``sync`` mode; offline and debug runs cannot be reopened, so a
        new one is started.
        """
        if self._run is None:
            self._run = self._init_run()
        return self._run

    @property
    def run(self) -> Any:
        """Alias of :attr:`experiment`."""
        return self.experiment

    def _init_run(self) -> Any:
        """Create (or, after finalize in a server mode, reopen) the Neptune run."""
        kwargs = dict(self._init_kwargs)
        if self._run_id is not None:
            if self.mode in SERVER_MODES:
                kwargs["with_id"] = self._run_id
            else:
                rank_zero_warn(
                    f"NeptuneLogger: the {self.mode} run {self._run_id} was "
                    "finalized and cannot be reopened; logging to a new run"
                )
                self._last_steps.clear()
        with _env_var(DATA_DIRECTORY_ENV, str(self._data_path)):
            run = neptune.init_run(**kwargs)
        self._run_id = self._id_of(run)
        return run

    def _id_of(self, run: Any) -> str:
        """Return the run's id: ``sys/id`` on a server, else the local UUID."""
        # pylint: disable=protected-access
        # Public fetch() of sys/id fails offline, and offline runs all share the
        # sys id "OFFLINE-1"; the container UUID names the run's folder on disk.
        if self.mode in SERVER_MODES:
            return str(run._sys_id)
        return str(run._id)

    @property
    def name(self) -> str:
        """The run name given at construction."""
        return str(self._init_kwargs["name"])

    @property
    def version(self) -> str | None:
        """The run id (``PROJ-123``; the local UUID offline).

        Creates the run if none was made yet; after :meth:`finalize` it stays the
        id of the last run. None on non-zero ranks, which have no run.
        """
        if self._run_id is None and rank_zero_only.rank == 0:
            _ = self.experiment
        return self._run_id

    @property
    def save_dir(self) -> str:
        """The folder holding the ``.neptune`` folder (``data_directory``)."""
        return str(self._data_path.parent)

    def _metric_path(self, key: str) -> str:
        """Return the Neptune path of a metric key, under the prefix."""
        return f"{self._prefix}/{key}" if self._prefix else key

    def _next_step(self, path: str, step: float | None) -> float | None:
        """Return a step that keeps the series ``path`` strictly increasing.

        Neptune rejects a point whose step is not greater than the series' last
        one. Such a point is moved to the smallest float above the last step, so
        its value is kept and later steps are unaffected.

        Args:
            path: The series path.
            step: The step asked for; None lets Neptune append after the last.

        Returns:
            The step to pass to Neptune.
        """
        last = self._last_steps.get(path)
        if step is None:
            self._last_steps[path] = 0.0 if last is None else last + 1.0
            return None
        if last is not None and step <= last:
            step = math.nextafter(last, math.inf)
        self._last_steps[path] = float(step)
        return step

    def _warn_once(self, key: str, message: str) -> None:
        """Warn about ``key`` the first time only."""
        if key not in self._warned_keys:
            self._warned_keys.add(key)
            rank_zero_warn(f"NeptuneLogger: {message}")

    @rank_zero_only
    def log_hyperparams(
        self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any
    ) -> None:
        """Store hyperparameters under ``parameters/...``.

        Args:
            params: A (nested) dict, Namespace, dataclass or pydantic model.
            *args: Ignored (Lightning API).
            **kwargs: Ignored (Lightning API).
        """
        run = self.experiment
        for key, value in flatten_hyperparams(params).items():
            path = f"{HYPERPARAMS_NAMESPACE}/{key}"
            try:
                run[path] = value
            except MetadataInconsistency as error:
                self._warn_once(path, f"skipped hyperparameter {path!r}: {error}")

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append each metric to the float series ``<prefix>/<key>``.

        Non-finite values (which Neptune cannot store) are skipped with a
        warning, once per key.

        Args:
            metrics: Metric name to number (float, int or 0-d tensor).
            step: The global step; made strictly increasing per series.
        """
        run = self.experiment
        for key, raw in metrics.items():
            path = self._metric_path(key)
            value = float(raw)
            if not math.isfinite(value):
                self._warn_once(path, f"skipped non-finite value {value} of {path!r}")
                continue
            try:
                run[path].append(value, step=self._next_step(path, step))
            except MetadataInconsistency as error:
                self._warn_once(path, f"skipped metric {path!r}: {error}")

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Record ``<prefix>/status`` and stop the run.

        Stopping waits until everything queued is written (offline) or sent
        (async). A run that was never created is not created here.

        Args:
            status: Lightning's status, e.g. ``"success"`` or ``"failed"``.
        """
        if self._run is None:
            return
        run, self._run = self._run, None
        run[self._metric_path("status")] = status
        run.stop()
