"""sweep.py: grid and TPE studies on the sample data, a killed sweep resumed by two
workers sharing its study, --keep_top and --clean, SWEEP.yml errors."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import csv
import fcntl
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import ROOT

import sweep
from sweeps import child
from sweeps.spec import check_spec, load_spec
from sweeps.study import make_storage, open_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
QUEUE = [
    ["train_parameters.lr=1.0e-3"],
    ["train_parameters.lr=3.0e-3"],
    ["transformer.dropout_rate=0.0", "train_parameters.lr=2.0e-3"],
]
GRID = {"train_parameters.lr": [1.0e-3, 3.0e-3], "transformer.dropout_rate": [0.0, 0.1]}


@pytest.fixture
def base_config(tiny_config: dict, write_config) -> Path:
    """The shrunk shipped config, gloss head only (fewer plots per trial)."""
    tiny_config["train_parameters"]["classification_mode"] = "gloss"
    tiny_config["general_parameters"]["path_to_save"] = "unused"
    return write_config(tiny_config, "base.yml")


def write_sweep(path: Path, base: Path, **spec) -> Path:
    """A SWEEP.yml over `base`."""
    spec = {
        "base_config": str(base),
        "heartbeat_seconds": 1,
        "grace_seconds": 3,
        **spec,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def start_sweep(*args: str) -> subprocess.Popen:
    """sweep.py as a user starts it, in its own process."""
    return subprocess.Popen(
        [sys.executable, "sweep.py", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def finish(process: subprocess.Popen, timeout: int = 600) -> str:
    """Wait for a sweep; its stderr (asserting exit status 0)."""
    _, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return err


def results(output: Path) -> list[dict]:
    """results.csv's rows."""
    with (output / "results.csv").open(encoding="utf-8") as file:
        return list(csv.DictReader(file))


def checkpoints(run_dir: str) -> set[str]:
    """The files in a run's checkpoints/."""
    return {p.name for p in (Path(run_dir) / "checkpoints").iterdir()}


def test_grid_sweep_writes_results_and_keep_top_then_clean(base_config, tmp_path):
    spec = write_sweep(tmp_path / "grid.yml", base_config, grid=GRID)
    output = tmp_path / "sweep"
    err = finish(start_sweep(str(spec), "--output", str(output), "--keep_top", "1"))
    rows = results(output)
    assert [row["state"] for row in rows] == ["complete"] * 4
    combos = {
        (row["train_parameters.lr"], row["transformer.dropout_rate"]) for row in rows
    }
    assert combos == {(lr, d) for lr in ("0.001", "0.003") for d in ("0.0", "0.1")}
    assert len({row["seed"] for row in rows}) == 4  # a seed per trial
    for row in rows:
        run_dir = Path(row["run_dir"])
        assert (run_dir / "results" / "best_full-results.json").is_file()
        assert float(row["val/loss"]) > 0 and row["test/gloss/top1"] != ""
    table = (output / "results.md").read_text(encoding="utf-8")
    assert table.count("| complete |") == 4 and "`train_parameters.lr=0.003`" in table
    for plot in ("optimization_history.png", "param_importances.png"):
        assert (output / plot).read_bytes()[:4] == b"\x89PNG"
    best = min(rows, key=lambda row: float(row["val/loss"]))
    for row in rows:
        expected = {"best.ckpt", "last.ckpt"} if row is best else {"best.ckpt"}
        assert checkpoints(row["run_dir"]) == expected, row["trial"]
    assert "--keep_top 1: removed 3 checkpoints" in err

    # --clean: finished runs keep best.ckpt and last.ckpt; an unfinished run and
    # files outside checkpoints/ are left alone.
    extra = Path(best["run_dir"]) / "checkpoints" / "epoch=0.ckpt"
    extra.write_bytes(b"x")
    unfinished = output / "trials" / "killed" / "checkpoints"
    unfinished.mkdir(parents=True)
    for name in ("last.ckpt", "epoch=3.ckpt"):
        (unfinished / name).write_bytes(b"x")
    assert sweep.main(["--clean", str(output)]) == 0
    assert checkpoints(best["run_dir"]) == {"best.ckpt", "last.ckpt"}
    assert checkpoints(str(unfinished.parent)) == {"last.ckpt", "epoch=3.ckpt"}
    assert (Path(best["run_dir"]) / "metrics.json").is_file()


@pytest.mark.slow
def test_tpe_search_with_pruning(base_config, tmp_path):
    spec = write_sweep(
        tmp_path / "search.yml",
        base_config,
        search_space={
            "train_parameters.lr": {
                "type": "float",
                "low": 1e-4,
                "high": 1e-2,
                "log": True,
            },
            "transformer.num_encoder_layers": {"type": "int", "low": 1, "high": 2},
            "augmentations_parameters.apply_color_jitter": {
                "type": "categorical",
                "choices": [True, False],
            },
        },
        n_trials=4,
        sampler={"name": "tpe", "seed": 0, "n_startup_trials": 2},
        pruner={"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
        set=["train_parameters.epochs=2"],
        objective={"metric": "val/gloss/top1", "direction": "maximize"},
    )
    output = tmp_path / "search"
    finish(start_sweep(str(spec), "--output", str(output)))
    rows = results(output)
    assert len(rows) == 4
    assert {row["state"] for row in rows} <= {"complete", "pruned"}
    assert "complete" in {row["state"] for row in rows}
    for row in rows:
        assert 1e-4 <= float(row["train_parameters.lr"]) <= 1e-2
    study = optuna.load_study(
        study_name="search", storage=f"sqlite:///{output}/study.db"
    )
    for trial in study.trials:  # the pruner saw every epoch's validation accuracy
        assert set(trial.intermediate_values) <= {0, 1} and trial.intermediate_values
    assert (output / "optimization_history.png").is_file()
    assert (output / "param_importances.png").is_file()


@pytest.mark.slow
def test_killed_sweep_resumes_with_two_workers(base_config, tmp_path):
    spec = write_sweep(tmp_path / "queue.yml", base_config, queue=QUEUE)
    output = tmp_path / "sweep"
    first = start_sweep(str(spec), "--output", str(output))
    second_log = output / "trials" / "trial_0001" / "trial.log"
    deadline = time.monotonic() + 400
    while not second_log.exists():  # trial 2 has started
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(2)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    workers = [start_sweep(str(spec), "--output", str(output)) for _ in range(2)]
    for worker in workers:
        finish(worker)
    study = optuna.load_study(
        study_name="queue", storage=f"sqlite:///{output}/study.db"
    )
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    entries = sorted(t.params["queue_entry"] for t in done)
    assert entries == [0, 1, 2]  # every queued run once
    assert [
        t.user_attrs["overrides"][-len(QUEUE[1]) :]
        for t in done
        if t.params["queue_entry"] == 1
    ] == [QUEUE[1]]
    failed = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in failed] == [1]  # the killed one, retried once
    retry = [t for t in done if t.system_attrs.get("failed_trial") == 1]
    assert len(retry) == 1 and retry[0].params == failed[0].params
    assert retry[0].user_attrs["seed"] == failed[0].user_attrs["seed"]
    # Each queued run ran to the end in one run folder only.
    complete = sorted(
        path.parent.name
        for path in output.glob("trials/*/trial_result.json")
        if '"complete"' in path.read_text(encoding="utf-8")
    )
    assert complete == sorted(Path(t.user_attrs["run_dir"]).name for t in done)


def test_bad_sweep_names_the_key(base_config, tmp_path, capsys):
    cases = [
        (
            {"grid": GRID, "search_space": {}},
            "exactly one of grid, queue and search_space",
        ),
        ({"grid": {"train_parameters.lrr": [1]}}, "train_parameters.lrr"),
        (
            {"grid": GRID, "objective": {"metric": "val/acc"}},
            "objective.metric: 'val/acc'",
        ),
        ({"grid": GRID, "pruner": {"name": "median", "patience": 2}}, "patience"),
        (
            {
                "search_space": {
                    "train_parameters.lr": {"type": "float", "low": 1e-4, "high": 1e-2}
                }
            },
            "n_trials",
        ),
    ]
    for number, (body, expected) in enumerate(cases):
        spec = write_sweep(tmp_path / f"bad{number}.yml", base_config, **body)
        assert sweep.main([str(spec), "--output", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") or "invalid sweep" in err, err
        assert expected in err, err


def test_help_needs_no_torch():
    code = (
        "import sys, sweep\n"
        "try:\n    sweep.parse_args(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'optuna' not in sys.modules"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert b"--keep_top K" in done.stdout


@pytest.mark.parametrize("name", ["sweep_sample.yml", "wlasl_sweep.yml"])
def test_recipes_parse_and_build_their_study(name, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    spec = load_spec(ROOT / "recipes" / name)
    check_spec(spec)  # every trial's overrides fit the base config
    study = open_study(spec, make_storage(spec, f"sqlite:///{tmp_path / 'study.db'}"))
    expected = len(spec.points()) if spec.queued() else 0
    assert len(study.trials) == expected


def test_clean_leaves_a_run_that_is_training(tmp_path, capsys):
    run = tmp_path / "runs" / "busy"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text("{}", encoding="utf-8")  # an earlier end
    for name in ("best.ckpt", "last.ckpt", "best-v1.ckpt"):
        (run / "checkpoints" / name).write_bytes(b"x")
    with open(run / "run.lock", "wb") as lock:  # held as a training run holds it
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        assert sweep.main(["--clean", str(tmp_path / "runs")]) == 0
        assert checkpoints(str(run)) == {"best.ckpt", "last.ckpt", "best-v1.ckpt"}
        assert "is not finished" in capsys.readouterr().err
    assert sweep.main(["--clean", str(tmp_path / "runs")]) == 0
    assert checkpoints(str(run)) == {"best.ckpt", "last.ckpt"}
    assert sweep.main(["--clean", str(tmp_path / "nothing")]) == 2


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_trial_process_returns_its_result_or_its_failure(
    method, tmp_path, monkeypatch
):
    monkeypatch.setattr(child, "start_method", lambda: method)
    result = child.run_in_process(dict, {"status": "complete", "value": 1.5}, tmp_path)
    assert result == {"status": "complete", "value": 1.5}
    failed = child.run_in_process(int, {"base": 1}, tmp_path / "broken")
    assert failed["status"] == "failed" and failed["message"].startswith("TypeError")
    assert "Traceback" in (tmp_path / "broken" / "trial.log").read_text()


def test_a_sqlite_study_reads_and_writes_a_trial_in_one_locked_step(
    base_config, tmp_path
):
    # Two workers joining after a kill both read the stale trial as running; the
    # one that reads second must wait for the other's write, or both queue a retry.
    spec = load_spec(write_sweep(tmp_path / "queue.yml", base_config, queue=QUEUE))
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = make_storage(spec, url)
    open_study(spec, storage)
    other = sqlite3.connect(tmp_path / "study.db", timeout=0)
    with storage.engine.begin() as connection:  # a worker between read and write
        connection.exec_driver_sql("SELECT state FROM trials").fetchall()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("UPDATE trials SET state = 'FAIL'")
    other.execute("UPDATE trials SET state = 'FAIL'")  # free once it has ended
    other.rollback()
    other.close()
