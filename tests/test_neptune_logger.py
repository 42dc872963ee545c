"""NeptuneLogger in offline/debug mode: config errors, on-disk data, a real fit."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning
import pytest
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.utils.data import DataLoader, TensorDataset

from training.neptune_logger import (
    DATA_DIRECTORY_ENV,
    NeptuneLogger,
    flatten_hyperparams,
    neptune_mode_from_env,
)
from utils.errors import ConfigError

NEPTUNE_ENV = (
    "NEPTUNE_MODE",
    "NEPTUNE_PROJECT_NAME",
    "NEPTUNE_PROJECT",
    "NEPTUNE_API_TOKEN",
    "NEPTUNE_DATA_DIRECTORY",
    "NEPTUNE_CUSTOM_RUN_ID",
)
# No background threads watching CPU/stdout: faster, quieter tests.
QUIET = {
    "capture_hardware_metrics": False,
    "capture_stdout": False,
    "capture_stderr": False,
    "capture_traceback": False,
    "git_ref": False,
    "source_files": [],
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in NEPTUNE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def offline_operations(data_path: Path) -> list[dict[str, Any]]:
    """All operations of all offline runs under a ``.neptune`` folder.

    Each run folder ``offline/run__<uuid>__<pid>__<random>`` holds
    ``data-<n>.log`` files with one JSON object per line:
    ``{"obj": {"type": ..., "path": [...], ...}, "version": n, "at": time}``.
    """
    run_dirs = sorted((data_path / "offline").glob("run__*"))
    assert run_dirs, f"no offline run under {data_path}"
    operations = []
    for run_dir in run_dirs:
        for log_file in sorted(run_dir.glob("data-*.log")):
            for line in log_file.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    operations.append(json.loads(line)["obj"])
    return operations


def float_series(operations: list[dict[str, Any]]) -> dict[str, list[tuple]]:
    """``{"a/b": [(step, value), ...]}`` from the LogFloats operations."""
    series: dict[str, list[tuple]] = {}
    for operation in operations:
        if operation["type"] == "LogFloats":
            points = series.setdefault("/".join(operation["path"]), [])
            points.extend((v["step"], v["value"]) for v in operation["values"])
    return series


def assignments(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"a/b": value}`` from the Assign* operations (last one wins)."""
    return {
        "/".join(op["path"]): op["value"]
        for op in operations
        if op["type"].startswith("Assign")
    }


def test_offline_run_writes_metrics_and_hyperparams(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An offline run's metrics and hyperparameters land in .neptune/offline."""
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    logger = NeptuneLogger(tags=["test"], **QUIET)
    assert logger.mode == "offline"
    assert not (tmp_path / ".neptune").exists(), "the run must be created lazily"

    logger.log_hyperparams(
        {
            "model": {"lr": 0.001, "dropout": None, "layers": [1, 2]},
            "data": {"path": Path("/data/x"), "seed": 2**40, "shuffle": True},
            "name": "tiny",
        }
    )
    for step, top1 in enumerate([0.25, 0.5, 0.75]):
        logger.log_metrics(
            {"val/gloss/top1": top1, "lr-AdamW": torch.tensor(0.1 * step)}, step
        )
    version = logger.version
    logger.finalize("success")

    assert (tmp_path / ".neptune").is_dir()
    run_dirs = list((tmp_path / ".neptune" / "offline").iterdir())
    assert [d.name.split("__")[1] for d in run_dirs] == [version]

    operations = offline_operations(tmp_path / ".neptune")
    series = float_series(operations)
    assert series["training/val/gloss/top1"] == [(0, 0.25), (1, 0.5), (2, 0.75)]
    assert [s for s, _ in series["training/lr-AdamW"]] == [0, 1, 2]
    assert series["training/lr-AdamW"][2][1] == pytest.approx(0.2)

    values = assignments(operations)
    assert values["parameters/model/lr"] == 0.001
    assert values["parameters/model/dropout"] == "None"
    assert values["parameters/model/layers"] == "[1, 2]"
    assert values["parameters/data/path"] == "/data/x"
    assert values["parameters/data/seed"] == str(2**40)
    assert values["parameters/data/shuffle"] is True
    assert values["parameters/name"] == "tiny"
    assert values["sys/name"] == "signpipe"
    assert values["training/status"] == "success"


def test_data_directory_is_used_and_env_restored(tmp_path: Path) -> None:
    """data_directory redirects .neptune; NEPTUNE_DATA_DIRECTORY is restored."""
    out = tmp_path / "out"
    logger = NeptuneLogger(mode="offline", data_directory=out, prefix="", **QUIET)
    logger.log_metrics({"val/loss": 1.5}, step=7)
    logger.finalize("success")

    assert logger.save_dir == str(out)
    assert not (tmp_path / ".neptune").exists()
    assert DATA_DIRECTORY_ENV not in os.environ
    assert float_series(offline_operations(out / ".neptune"))["val/loss"] == [(7, 1.5)]


@pytest.mark.parametrize(
    ("env", "named", "not_named"),
    [
        ({}, ["NEPTUNE_API_TOKEN", "NEPTUNE_PROJECT_NAME"], []),
        ({"NEPTUNE_API_TOKEN": "t0k3n"}, ["NEPTUNE_PROJECT_NAME"], ["API_TOKEN"]),
        ({"NEPTUNE_PROJECT": "ws/proj"}, ["NEPTUNE_API_TOKEN"], ["PROJECT_NAME"]),
        ({"NEPTUNE_MODE": "sync"}, ["NEPTUNE_API_TOKEN", "sync mode"], []),
    ],
)
def test_server_mode_without_credentials_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    named: list[str],
    not_named: list[str],
) -> None:
    """async/sync without token or project: one line naming what to set."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        NeptuneLogger()
    message = str(caught.value)
    assert "\n" not in message
    assert "NEPTUNE_MODE=offline" in message
    for text in named:
        assert text in message
    for text in not_named:
        assert text not in message
    assert not (tmp_path / ".neptune").exists()


@pytest.mark.parametrize("mode", ["bogus", "read-only", "offlin"])
def test_invalid_mode_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """A bad NEPTUNE_MODE (read-only included) lists the allowed modes."""
    monkeypatch.setenv("NEPTUNE_MODE", mode)
    for make in (neptune_mode_from_env, NeptuneLogger):
        with pytest.raises(ConfigError, match="NEPTUNE_MODE") as caught:
            make()
        assert "async, sync, offline, debug" in str(caught.value)
        assert repr(mode) in str(caught.value)
    with pytest.raises(ConfigError, match="allowed: async, sync, offline, debug"):
        NeptuneLogger(mode="nope")


def test_mode_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """NEPTUNE_MODE is normalised; unset or empty means async."""
    assert neptune_mode_from_env() == "async"
    monkeypatch.setenv("NEPTUNE_MODE", " Offline ")
    assert neptune_mode_from_env() == "offline"
    monkeypatch.setenv("NEPTUNE_MODE", "")
    assert neptune_mode_from_env() == "async"


def test_server_mode_with_credentials_constructs_without_connecting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Construction alone never contacts the server."""
    monkeypatch.setenv("NEPTUNE_API_TOKEN", "t0k3n")
    monkeypatch.setenv("NEPTUNE_PROJECT_NAME", "ws/proj")
    logger = NeptuneLogger()
    assert logger.mode == "async"
    assert logger.name == "signpipe"
    assert not (tmp_path / ".neptune").exists()


def test_repeated_and_decreasing_steps_are_kept_increasing(tmp_path: Path) -> None:
    """Repeated/decreasing steps are kept, on a strictly increasing axis."""
    logger = NeptuneLogger(mode="offline", **QUIET)
    for step, value in [(5, 1.0), (5, 2.0), (4, 3.0), (6, 4.0), (6, 5.0), (9, 6.0)]:
        logger.log_metrics({"val/loss": value}, step=step)
    logger.log_metrics({"val/loss": 7.0})  # no step at all
    logger.finalize("success")

    points = float_series(offline_operations(tmp_path / ".neptune"))[
        "training/val/loss"
    ]
    assert [value for _, value in points] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    explicit = [step for step, _ in points[:-1]]
    assert all(a < b for a, b in zip(explicit, explicit[1:])), explicit
    assert explicit[0] == 5 and explicit[3] == 6 and explicit[5] == 9
    assert 5 < explicit[1] < explicit[2] < 5.001
    assert points[-1][0] is None


def test_non_finite_metric_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """NaN is skipped (Neptune cannot store it), with a warning."""
    logger = NeptuneLogger(mode="offline", **QUIET)
    with pytest.warns(UserWarning, match="non-finite"):
        logger.log_metrics({"train/loss": float("nan"), "val/loss": 1.0}, step=0)
    logger.finalize("success")
    series = float_series(offline_operations(tmp_path / ".neptune"))
    assert "training/train/loss" not in series
    assert series["training/val/loss"] == [(0, 1.0)]


def test_debug_mode_logs_without_disk_or_credentials(tmp_path: Path) -> None:
    """debug mode keeps everything in memory."""
    logger = NeptuneLogger(mode="debug", **QUIET)
    logger.log_hyperparams({"a": {"b": None}})
    logger.log_metrics({"val/loss": 0.5}, step=1)
    assert logger.experiment["training/val/loss"].fetch_last() == 0.5
    assert logger.version
    logger.finalize("success")
    # The client may leave an empty .neptune/sync folder, but no run data.
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_non_zero_rank_creates_no_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On rank > 0 the logger does nothing."""
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = NeptuneLogger(mode="offline", **QUIET)
    logger.log_hyperparams({"a": 1})
    logger.log_metrics({"val/loss": 0.5}, step=1)
    logger.experiment.anything("is a no-op")
    assert logger.version is None
    logger.finalize("success")
    assert not (tmp_path / ".neptune").exists()


def test_flatten_hyperparams_handles_nested_and_odd_values() -> None:
    """Nested keys are joined; unsupported leaves become strings."""
    flat = flatten_hyperparams(
        {"a": {"b": {"c": 1}}, "t": (1, "x"), "nan": float("nan"), "empty": {}}
    )
    assert flat == {"a/b/c": 1, "t": '[1, "x"]', "nan": "nan"}


class _TwoParameterModel(lightning.LightningModule):
    """y = w * x + b, trained on random numbers."""

    def __init__(self, lr: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.learning_rate = lr
        self.layer = torch.nn.Linear(1, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        del batch_idx
        inputs, targets = batch
        loss = torch.nn.functional.mse_loss(self.layer(inputs), targets)
        self.log("train/loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.learning_rate)


@pytest.mark.filterwarnings("ignore:.*NVML", "ignore:.*LeafSpec")
def test_lightning_fit_logs_to_offline_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real (tiny) Trainer.fit logs train/loss per step to an offline run."""
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(12, 1), torch.randn(12, 1))
    trainer = lightning.Trainer(
        logger=NeptuneLogger(),  # client defaults: monitoring threads included
        max_steps=3,
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=tmp_path,
    )
    trainer.fit(_TwoParameterModel(), DataLoader(data, batch_size=4))

    operations = offline_operations(tmp_path / ".neptune")
    losses = float_series(operations)["training/train/loss"]
    assert [step for step, _ in losses] == [0, 1, 2]
    values = assignments(operations)
    assert values["parameters/lr"] == 0.1
    assert values["training/status"] == "success"


def test_logging_after_finalize_starts_a_new_offline_run(tmp_path: Path) -> None:
    """Offline runs cannot be reopened (e.g. fit then test): a new one is made."""
    logger = NeptuneLogger(mode="offline", **QUIET)
    logger.log_metrics({"val/loss": 1.0}, step=3)
    first = logger.version
    logger.finalize("success")
    with pytest.warns(UserWarning, match="cannot be reopened"):
        logger.log_metrics({"test/loss": 2.0}, step=0)
    assert logger.version != first
    logger.finalize("success")
    logger.finalize("success")  # a second finalize is harmless

    run_ids = {d.name.split("__")[1] for d in (tmp_path / ".neptune/offline").iterdir()}
    assert run_ids == {first, logger.version}
    series = float_series(offline_operations(tmp_path / ".neptune"))
    assert series["training/val/loss"] == [(3, 1.0)]
    assert series["training/test/loss"] == [(0, 2.0)]


class _FakeRun:
    """Stands in for a server-side neptune.Run (no server is reachable)."""

    def __init__(self, calls: list[dict[str, Any]], **kwargs: Any) -> None:
        calls.append(kwargs)
        self._sys_id = kwargs.get("with_id") or "SIGN-7"
        self.fields: dict[str, Any] = {}
        self.stopped = False

    def __getitem__(self, path: str) -> Any:
        return self.fields.setdefault(path, _FakeSeries())

    def __setitem__(self, path: str, value: Any) -> None:
        self.fields[path] = value

    def stop(self) -> None:
        """Mark the run as stopped."""
        self.stopped = True


class _FakeSeries(list):
    """A float series: records (step, value) pairs."""

    def append(self, value: Any, step: Any = None) -> None:  # type: ignore[override]
        super().append((step, value))


def test_async_run_gets_credentials_and_is_reopened_after_finalize(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a server mode the token/project reach init_run; reuse resumes the run."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "training.neptune_logger.neptune.init_run",
        lambda **kwargs: _FakeRun(calls, **kwargs),
    )
    monkeypatch.setenv("NEPTUNE_API_TOKEN", "t0k3n")
    monkeypatch.setenv("NEPTUNE_PROJECT", "ws/fallback")
    logger = NeptuneLogger(tags=["a"])
    logger.log_metrics({"val/loss": 1.0}, step=1)
    first_run = logger.experiment
    logger.finalize("success")
    logger.log_metrics({"val/loss": 2.0}, step=1)

    assert first_run.stopped and first_run.fields["training/status"] == "success"
    assert logger.version == "SIGN-7"
    assert [call.get("with_id") for call in calls] == [None, "SIGN-7"]
    for call in calls:
        assert call["api_token"] == "t0k3n" and call["project"] == "ws/fallback"
        assert call["mode"] == "async" and call["name"] == "signpipe"
        assert call["tags"] == ["a"]
    series = logger.experiment["training/val/loss"]
    assert series[0][0] > 1 and series[0][1] == 2.0
