"""sweep.py against hostile or mistaken input (issue 26): a storage password never
shown, a small file that would expand into a huge grid refused before anything is
made, a search space Optuna cannot sample refused before the study exists, Ctrl-C as
one line and exit status 130.

The command line runs in-process with a stand-in for `training.pruning` (no torch):
trials are stand-in functions run in the real trial processes."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import functools
import os
import signal
import sys
import time
import types
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import ROOT

import sweep
from sweeps import child, runner
from sweeps.spec import MAX_CHOICES_CHARS, MAX_LISTED_TRIALS, load_spec
from sweeps.secrets import redact, storage_name
from utils.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
PASSWORD = "S3cretPW"
BASE = str(ROOT / "train_config.yml")
LR = "train_parameters.lr"


def write_sweep(path: Path, **spec) -> Path:
    """A SWEEP.yml over the shipped config."""
    spec = {"base_config": BASE, "heartbeat_seconds": 1, **spec}
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def run_cli(monkeypatch):
    """`sweep.main(argv)` with `trial` standing in for `training.pruning.run_trial`."""
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

    def run(argv: list[str], trial=dict) -> int:
        module = types.ModuleType("training.pruning")
        module.run_trial = trial
        monkeypatch.setitem(sys.modules, "training.pruning", module)
        return sweep.main(argv)

    return run


# 4: a storage password reaches no message, log or report.


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://alice:{PASSWORD}@127.0.0.1:1/sweeps",  # no driver installed
        f"postgresql//alice:{PASSWORD}@127.0.0.1:1/sweeps",  # SQLAlchemy can't read
        f"nosuchdb://alice:{PASSWORD}@dbhost/sweeps",  # no such dialect
        f"postgresql://alice:{PASSWORD}@PW@dbhost/sweeps",  # an @ in the password
        f"postgresql://dbhost/sweeps?user=alice&password={PASSWORD}",
    ],
)
def test_storage_password_is_not_shown(url, run_cli, tmp_path, capfd):
    spec = write_sweep(tmp_path / "s.yml", storage=url, grid={LR: [1e-3]})
    assert run_cli([str(spec), "--output", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err
    assert err.startswith("error: storage: cannot open ") and err.count("\n") == 1
    assert PASSWORD not in err and "***" in err, err
    copy = (tmp_path / "out" / "sweep.yml").read_text(encoding="utf-8")
    assert PASSWORD not in copy and yaml.safe_load(copy)["grid"] == {LR: [1e-3]}


def test_the_copy_hides_a_password_written_with_escapes(run_cli, tmp_path):
    spec = tmp_path / "s.yml"
    spec.write_text(  # \x50 is P: the file never holds the URL as it is read
        f"base_config: {BASE}\n"
        'storage: "postgresql://alice:S3cret\\x50W@127.0.0.1:1/sweeps"\n'
        f"grid: {{{LR}: [0.001]}}\n",
        encoding="utf-8",
    )
    assert run_cli([str(spec), "--output", str(tmp_path / "out")]) == 2
    copy = yaml.safe_load((tmp_path / "out" / "sweep.yml").read_text("utf-8"))
    assert copy["storage"] == "postgresql://alice:***@127.0.0.1:1/sweeps"
    assert copy["grid"] == {LR: [0.001]} and copy["base_config"] == BASE


def test_storage_errors_quoting_the_url_are_masked(
    run_cli, tmp_path, capfd, monkeypatch
):
    url = f"postgresql://alice:{PASSWORD}@dbhost/sweeps"

    def refuse(given, **_):
        raise RuntimeError(f"cannot connect to {given}\nsecond line {PASSWORD}")

    monkeypatch.setattr(optuna.storages, "RDBStorage", refuse)
    spec = write_sweep(tmp_path / "s.yml", storage=url, grid={LR: [1e-3]})
    assert run_cli([str(spec), "--output", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err
    assert PASSWORD not in err and "RuntimeError: cannot connect to" in err, err
    assert storage_name(url) == "postgresql://alice:***@dbhost/sweeps"


@pytest.mark.parametrize(
    "storage",
    [
        [f"postgresql://alice:{PASSWORD}@dbhost/sweeps"],
        {"url": f"postgresql://alice:{PASSWORD}@dbhost/sweeps"},
    ],
)
def test_a_mistyped_storage_is_quoted_without_its_password(
    storage, run_cli, tmp_path, capfd
):
    spec = write_sweep(tmp_path / "s.yml", storage=storage, grid={LR: [1e-3]})
    assert run_cli([str(spec), "--output", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err
    assert err.startswith("error: invalid sweep") and err.count("\n") == 1, err
    assert "storage" in err and PASSWORD not in err and "alice:***@dbhost" in err


def _fail_with_the_url(url: str) -> dict:
    raise RuntimeError(f"lost {url}")


def test_a_trial_error_quoting_the_url_is_masked(tmp_path):
    url = f"postgresql://alice:{PASSWORD}@dbhost/sweeps"
    hide = functools.partial(redact, url=url)
    result = child.run_in_process(_fail_with_the_url, {"url": url}, tmp_path, hide)
    assert (
        result["message"] == "RuntimeError: lost postgresql://alice:***@dbhost/sweeps"
    )
    log = (tmp_path / "trial.log").read_text(encoding="utf-8")
    assert "Traceback" in log and PASSWORD not in log


# 5: a small file that expands into a huge grid is refused before it expands.


def _refused_quickly(path: Path, expected: str) -> None:
    start = time.monotonic()
    with pytest.raises(ConfigError, match=expected) as caught:
        load_spec(path)
    assert time.monotonic() - start < 1.0
    assert "\n" not in str(caught.value)


def test_a_huge_grid_is_refused_before_it_is_listed(tmp_path):
    grid = {f"k{i}": list(range(10)) for i in range(8)}  # 1e8 trials, 600 bytes
    path = write_sweep(tmp_path / "s.yml", grid=grid)
    _refused_quickly(path, r"grid: 10 x 10 .* = 100000000 trials; a grid lists at")
    queue = [[f"{LR}={i}"] for i in range(MAX_LISTED_TRIALS + 1)]
    _refused_quickly(write_sweep(tmp_path / "q.yml", queue=queue), "queue: 1001")


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = [f"base_config: {BASE}", "l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    lines.append(f"grid: {{{LR}: *l8}}")  # 9**9 values once expanded
    path = tmp_path / "bomb.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size < 700
    _refused_quickly(path, "expands to more than 100000 values")


def test_large_grid_values_are_refused(tmp_path):
    big = {"frames": "x" * MAX_CHOICES_CHARS}  # one value, 10 kB of JSON
    path = write_sweep(tmp_path / "s.yml", grid={LR: [big]})
    _refused_quickly(path, f"grid: its values take .* the {MAX_CHOICES_CHARS}")
    space = {"x.y": {"type": "categorical", "choices": [big]}}
    path = write_sweep(tmp_path / "c.yml", search_space=space, n_trials=1)
    _refused_quickly(path, "search_space: its values take")


def test_a_grid_at_the_limit_is_counted_not_listed(tmp_path):
    grid = {"a": list(range(10)), "b": list(range(10)), "c": [[1, 2], 3, "x", None]}
    spec = load_spec(write_sweep(tmp_path / "s.yml", grid={**grid, "c": [0] * 10}))
    points = spec.points()
    assert len(points) == MAX_LISTED_TRIALS
    assert next(iter(points)) == {"a": 0, "b": 0, "c": 0}
    small = load_spec(write_sweep(tmp_path / "t.yml", grid=grid)).points()
    assert list(small)[-1] == {"a": 9, "b": 9, "c": None} and len(small) == 400
    assert list(small)[3] == {"a": 0, "b": 0, "c": None}  # the last key varies first


# 14: a search space Optuna cannot sample is refused before the study exists.


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        ({"type": "float", "low": 1e-2, "high": 1e-4}, "low <= high"),
        ({"type": "int", "low": 4, "high": 1}, "low <= high"),
        ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "low > 0"),
        ({"type": "int", "low": 0, "high": 4, "log": True}, "low >= 1"),
        ({"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}, "step"),
        ({"type": "int", "low": 1, "high": 8, "log": True, "step": 2}, "step"),
        ({"type": "float", "low": 0.0, "high": 1.0, "step": 0}, "greater than 0"),
        ({"type": "float", "low": float("nan"), "high": 1.0}, "finite number"),
        ({"type": "float", "low": 0.0, "high": float("inf")}, "finite number"),
    ],
)
def test_a_bad_search_space_is_refused_before_the_study(
    param, expected, run_cli, tmp_path, capfd
):
    spec = write_sweep(tmp_path / "s.yml", search_space={LR: param}, n_trials=2)
    output = tmp_path / "out"
    assert run_cli([str(spec), "--output", str(output)]) == 2
    err = capfd.readouterr().err
    assert err.startswith("error: invalid sweep") and err.count("\n") == 1, err
    assert f"search_space.{LR}" in err and expected in err, err
    assert not output.exists()  # no study, no folder


def test_a_single_value_range_is_accepted(tmp_path):
    space = {
        LR: {"type": "float", "low": 1e-3, "high": 1e-3, "log": True},
        "x.n": {"type": "int", "low": 2, "high": 2, "log": True},
    }
    load_spec(write_sweep(tmp_path / "s.yml", search_space=space, n_trials=1))


# 21: Ctrl-C is one line and exit status 130; the stopped trial runs again.


def _interrupt_the_sweep(**_) -> dict:
    """A trial during which the user presses Ctrl-C (the worker gets SIGINT)."""
    time.sleep(0.2)
    os.kill(os.getppid(), signal.SIGINT)
    time.sleep(60)  # stopped by the worker before this ends
    return {"status": "complete", "value": 0.0, "metrics": {}}


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt, as in a terminal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_a_trial_is_one_line_and_130(ctrl_c_raises, run_cli, tmp_path, capfd):
    del ctrl_c_raises
    spec = write_sweep(tmp_path / "s.yml", grid={LR: [1e-3, 2e-3]})
    output = tmp_path / "out"
    sigterm = signal.getsignal(signal.SIGTERM)
    start = time.monotonic()
    assert run_cli([str(spec), "--output", str(output)], _interrupt_the_sweep) == 130
    assert time.monotonic() - start < 30
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "KeyboardInterrupt" not in captured.err
    lines = [line for line in captured.err.splitlines() if "interrupted" in line]
    assert len(lines) == 1, captured.err
    assert lines[0].endswith(
        "interrupted: 0 trials finished; run the same command again to resume"
    )
    assert captured.out == ""  # no summary: the sweep is not done
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{output}/study.db")
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "WAITING", "WAITING"]  # trial 0, 1, and 0 again
    assert study.trials[2].system_attrs["failed_trial"] == 0
    assert signal.getsignal(signal.SIGTERM) == sigterm  # put back


def test_ctrl_c_before_the_first_trial_is_one_line_and_130(
    ctrl_c_raises, run_cli, tmp_path, capfd, monkeypatch
):
    del ctrl_c_raises

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "check_spec", interrupted)
    spec = write_sweep(tmp_path / "s.yml", grid={LR: [1e-3]})
    assert run_cli([str(spec), "--output", str(tmp_path / "out")]) == 130
    assert capfd.readouterr().err == (
        "interrupted: run the same command again to resume\n"
    )
