"""Crash safety and reproducibility of training runs.

* a run killed with SIGKILL loses at most `checkpoint_every_n_steps` optimizer steps
  and `--resume` finishes it with the same number of steps as an uninterrupted run;
* SIGTERM and Ctrl-C save `last.ckpt`, say how to resume and exit 143 / 130;
* a NaN loss stops the run with a user error naming the step, `last.ckpt` intact;
* the same seed and config give the same results;
* a 2-process (DDP) validation counts every sample exactly once;
* checkpoint writes are atomic.

The runs use `test_convnext` (a 0.2M-parameter timm test model) so that a 3-epoch
run takes seconds on a CPU.
"""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import csv
import errno
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import lightning as L
import yaml
from torch.nn import functional as F

from helpers import merge, tiny_overrides

import train
from config.loader import load_config
from data_preprocessing.make_sample_dataset import make_sample_dataset
from models.heads import IGNORE_INDEX
from training import recognition as lightning_module
from training.callbacks import AtomicCheckpointIO
from training.datamodule import SignDataModule
from training.recognition import SignRecognitionModule
from training.run import RunOptions, run_training
from utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]

EPOCHS = 3
EVERY_N_STEPS = 3
# 3 glosses x 8 clips, ratio_train_test 0.85: 7 training and 1 validation clip per
# gloss, so 21 training clips (11 batches of 2) and 3 validation clips (odd).
STEPS_PER_EPOCH = 11
VAL_SAMPLES = 3
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH
RUN_TIMEOUT_S = 420

# The tiny test config, seeded, on `test_convnext`, with checkpoints every few steps.
OVERRIDES = tiny_overrides(
    {
        "general_parameters": {"ratio_train_test": 0.85, "seed": 7},
        "train_parameters": {
            "epochs": EPOCHS,
            "batch_size": 2,
            "checkpoint_every_n_steps": EVERY_N_STEPS,
        },
        "feature_extractor": {"model_path": "test_convnext"},
    }
)

# Runs train.py as `python train.py ARGS` does, with two additions for the tests:
# Ctrl-C raises KeyboardInterrupt as in a terminal (even where the test runner's
# parent ignores SIGINT), and with a file name as the first argument, every completed
# optimizer step is appended to it (after LastCheckpoint's own hook), so a test knows
# how far a killed run got.
LAUNCHER = """
import runpy, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
progress = sys.argv.pop(1)
if progress:
    from training.callbacks import LastCheckpoint
    keep_current = LastCheckpoint.on_train_batch_end
    def record(self, trainer, *args):
        keep_current(self, trainer, *args)
        with open(progress, "a", encoding="utf-8") as file:
            file.write(f"{trainer.global_step}\\n")
    LastCheckpoint.on_train_batch_end = record
sys.argv[0] = "train.py"
runpy.run_path("train.py", run_name="__main__")
"""


def make_config(shipped: dict, data: Path, save: Path, **sections: dict) -> dict:
    """The shipped config on the reliability data, shrunk, saving to `save`."""
    config = merge(copy.deepcopy(shipped), copy.deepcopy(OVERRIDES))
    config["general_parameters"]["data_path"] = str(data)
    config["general_parameters"]["path_to_save"] = str(save)
    return merge(config, copy.deepcopy(sections))


def write_yaml(config: dict, path: Path) -> Path:
    """Write a config file; returns its path."""
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def load_checkpoint(path: Path) -> dict:
    """A whole Lightning checkpoint (it must unpickle: no truncated files)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def subprocess_env() -> dict[str, str]:
    """The environment of train.py subprocesses: offline and quiet."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONUNBUFFERED": "1",
        # One intra-op thread: on 2 busy cores, 2 spinning OpenMP threads per
        # process make a step ~30x slower.
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


@dataclass
class Run:
    """A train.py subprocess whose output goes to a log file."""

    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        """Everything it printed so far (stdout and stderr)."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float = RUN_TIMEOUT_S) -> int:
        """Its exit status (negative: killed by that signal)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"train.py did not finish in {timeout} s:\n{self.tail()}")
        raise AssertionError("unreachable")

    def tail(self, lines: int = 40) -> str:
        """The last lines of its output, for failure messages."""
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self) -> None:
        """Kill it if it still runs (test clean-up)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_train(
    config_path: Path, log: Path, *extra: str, progress: Path | None = None
) -> Run:
    """Start `train.py --model_config_path CONFIG EXTRA...` (see LAUNCHER)."""
    command = [sys.executable, "-c", LAUNCHER, str(progress or "")]
    command += ["--model_config_path", str(config_path), *extra]
    with log.open("w", encoding="utf-8") as file:
        process = subprocess.Popen(  # pylint: disable=consider-using-with
            command,
            cwd=ROOT,
            stdout=file,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        )
    return Run(process, log)


def run_train(config_path: Path, log: Path, *extra: str) -> Run:
    """Run train.py to the end; the run's exit status must be 0."""
    run = start_train(config_path, log, *extra)
    status = run.wait()
    assert status == 0, f"train.py exited {status}:\n{run.tail()}"
    return run


class CheckpointWatcher:
    """Reads `global_step` of a checkpoint file, reloading only when it changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._step: int | None = None

    def step(self) -> int | None:
        """The file's global_step, None while there is no file."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns)
        if stamp != self._stamp:
            self._step = load_checkpoint(self.path)["global_step"]
            self._stamp = stamp
        return self._step


def completed_steps(progress: Path) -> int:
    """The last optimizer step LAUNCHER recorded (0 before the first)."""
    if not progress.is_file():
        return 0
    lines = progress.read_text(encoding="utf-8").split()
    return int(lines[-1]) if lines else 0


def wait_until(run: Run, condition, what: str, timeout: float = RUN_TIMEOUT_S):
    """Poll `condition` until it is truthy; fail if the run ends or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if run.process.poll() is not None:
            pytest.fail(
                f"train.py ended (status {run.process.returncode}) before {what}:\n"
                f"{run.tail()}"
            )
        time.sleep(0.02)
    run.stop()
    pytest.fail(f"timed out waiting for {what}:\n{run.tail()}")
    return None


def csv_steps(save: Path) -> list[int]:
    """The `step` column of the run's CSV log (logs/version_0/metrics.csv)."""
    path = save / "logs" / "version_0" / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as file:
        return [int(row["step"]) for row in csv.DictReader(file)]


def numbers(metrics: dict) -> dict:
    """metrics.json without the checkpoint path (which names the run directory)."""
    return {key: value for key, value in metrics.items() if key != "checkpoint"}


@pytest.fixture(autouse=True)
def _one_thread():
    """In-process runs use one intra-op thread, as the subprocesses do (see
    `subprocess_env`); the same thread count keeps their numbers comparable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reliability_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 glosses x 8 clips of 32x32 frames (shared, read-only)."""
    root = tmp_path_factory.mktemp("reliability-data")
    make_sample_dataset(root, glosses=3, clips_per_gloss=8, seed=5, size=32)
    return root


@pytest.fixture(scope="module")
def reference_run(shipped_config, reliability_data, tmp_path_factory) -> Path:
    """An uninterrupted subprocess run of the reliability config; its run directory."""
    folder = tmp_path_factory.mktemp("reference")
    save = folder / "run"
    config = write_yaml(
        make_config(shipped_config, reliability_data, save), folder / "config.yml"
    )
    run_train(config, folder / "train.log")
    return save


@dataclass
class KillAndResume:
    """What a SIGKILLed and resumed run left behind."""

    save: Path
    saved_step: int  # global_step of the last.ckpt that survived the kill
    killed_at: int  # optimizer steps completed when the process died
    csv_before: list[int]  # CSV log steps on disk after the kill
    final: dict  # last.ckpt after the resumed run


@pytest.fixture(scope="module")
def killed_and_resumed(shipped_config, reliability_data, tmp_path_factory):
    """Start a run, SIGKILL it in the middle of epoch 2 after a periodic save,
    then finish it with `--resume`."""
    folder = tmp_path_factory.mktemp("killed")
    save = folder / "run"
    config = write_yaml(
        make_config(shipped_config, reliability_data, save), folder / "config.yml"
    )
    progress = folder / "progress.txt"
    last = save / "checkpoints" / "last.ckpt"
    watcher = CheckpointWatcher(last)

    def mid_epoch_save_then_more_steps() -> bool:
        # The epoch-0 CSV rows are on disk by then (the loggers save at epoch ends).
        step = watcher.step()
        return (
            step is not None
            and step > STEPS_PER_EPOCH
            and step % STEPS_PER_EPOCH != 0
            and completed_steps(progress) > step
        )

    run = start_train(config, folder / "killed.log", progress=progress)
    try:
        wait_until(run, mid_epoch_save_then_more_steps, "a mid-epoch last.ckpt")
        run.process.send_signal(signal.SIGKILL)
        assert run.wait(60) == -signal.SIGKILL
    finally:
        run.stop()
    saved_step = load_checkpoint(last)["global_step"]
    killed_at = completed_steps(progress)
    csv_before = csv_steps(save)
    run_train(config, folder / "resumed.log", "--resume")
    return KillAndResume(save, saved_step, killed_at, csv_before, load_checkpoint(last))


def test_sigkill_loses_at_most_n_steps(killed_and_resumed: KillAndResume):
    result = killed_and_resumed
    assert result.saved_step > STEPS_PER_EPOCH  # a periodic save in epoch 1...
    assert result.saved_step % STEPS_PER_EPOCH != 0  # ...not at an epoch end
    lost = result.killed_at - result.saved_step
    print(
        f"SIGKILL after step {result.killed_at}; last.ckpt at step "
        f"{result.saved_step}: {lost} steps lost"
    )
    assert result.killed_at > result.saved_step
    assert lost <= EVERY_N_STEPS, (
        f"killed after step {result.killed_at}, last.ckpt at step "
        f"{result.saved_step}: {lost} steps lost"
    )


def test_resumed_run_takes_as_many_steps_as_an_uninterrupted_one(
    killed_and_resumed: KillAndResume, reference_run: Path
):
    reference = load_checkpoint(reference_run / "checkpoints" / "last.ckpt")
    assert reference["global_step"] == TOTAL_STEPS
    assert killed_and_resumed.final["global_step"] == reference["global_step"]
    assert killed_and_resumed.final["epoch"] == reference["epoch"] == EPOCHS - 1
    metrics = json.loads(
        (killed_and_resumed.save / "metrics.json").read_text(encoding="utf-8")
    )
    assert all(math.isfinite(h["loss"]) for h in metrics["heads"].values())


def test_resumed_run_continues_the_same_log_version(
    killed_and_resumed: KillAndResume,
):
    save = killed_and_resumed.save
    assert sorted(p.name for p in (save / "logs").iterdir()) == ["version_0"]
    assert sorted(p.name for p in (save / "tensorboard").iterdir()) == ["version_0"]
    before = killed_and_resumed.csv_before
    assert before, "the killed run had written its epoch-0 rows"
    after = csv_steps(save)
    assert max(after) > max(before)
    assert [s for s in after if s > killed_and_resumed.saved_step]


def test_resumed_run_keeps_the_csv_rows_of_before_the_interruption(
    killed_and_resumed: KillAndResume,
):
    after = csv_steps(killed_and_resumed.save)
    missing = sorted(set(killed_and_resumed.csv_before) - set(after))
    assert not missing, f"CSV rows of steps {missing} are gone after --resume"


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)]
)
def test_signal_saves_last_checkpoint_and_exits_with_its_status(
    shipped_config, reliability_data, tmp_path, signum, status
):
    save = tmp_path / "run"
    config = write_yaml(
        make_config(shipped_config, reliability_data, save), tmp_path / "config.yml"
    )
    progress = tmp_path / "progress.txt"
    watcher = CheckpointWatcher(save / "checkpoints" / "last.ckpt")
    run = start_train(config, tmp_path / "train.log", progress=progress)
    try:
        # Between two periodic saves, so the signal's own save is what counts.
        wait_until(
            run,
            lambda: (watcher.step() or 0) >= EVERY_N_STEPS
            and completed_steps(progress) % EVERY_N_STEPS != 0,
            "training past the first periodic save",
        )
        run.process.send_signal(signum)
        exit_status = run.wait(120)
    finally:
        run.stop()
    output = run.output()
    assert exit_status == status, output[-3000:]
    name = signal.Signals(signum).name
    message = re.search(
        rf"{name}: saved (\S*last\.ckpt) at step (\d+); continue with --resume", output
    )
    assert message, output[-3000:]
    assert "Traceback" not in output, output
    assert Path(message[1]) == save / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(save / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == int(message[2])
    # The save on the signal is current: every step the run completed is in it.
    assert checkpoint["global_step"] >= completed_steps(progress)
    assert checkpoint["global_step"] < TOTAL_STEPS
    # What the message says works: the run finishes with every step, none twice.
    run_train(config, tmp_path / "resumed.log", "--resume")
    resumed = load_checkpoint(save / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == TOTAL_STEPS


def test_nan_loss_stops_with_the_step_and_keeps_last_checkpoint(
    shipped_config, reliability_data, tmp_path, monkeypatch, capsys
):
    nan_at_call = 5  # the 5th training step: global_step 4, after the save at 3
    calls = {"train": 0}
    real_loss = lightning_module.weighted_multi_head_loss

    def loss_turning_nan(logits, labels, weights, **options):
        total, per_head = real_loss(logits, labels, weights, **options)
        if torch.is_grad_enabled():  # training, not validation
            calls["train"] += 1
            if calls["train"] >= nan_at_call:
                total = total * float("nan")
        return total, per_head

    monkeypatch.setattr(lightning_module, "weighted_multi_head_loss", loss_turning_nan)
    save = tmp_path / "run"
    config = write_yaml(
        make_config(shipped_config, reliability_data, save), tmp_path / "config.yml"
    )
    assert train.main(["--model_config_path", str(config)]) == 2
    err = capsys.readouterr().err
    assert "the training loss is nan at optimizer step 4" in err, err
    assert "Traceback" not in err
    last = save / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(last)
    assert checkpoint["global_step"] == EVERY_N_STEPS
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())
    module = SignRecognitionModule.load_from_checkpoint(last, map_location="cpu")
    assert all(torch.isfinite(p).all() for p in module.parameters())


@pytest.mark.parametrize("workers", [0, 2])
def test_same_seed_and_config_give_the_same_metrics(
    shipped_config, reliability_data, reference_run, tmp_path, workers
):
    def run_in_process(save: Path) -> Path:
        config = make_config(
            shipped_config,
            reliability_data,
            save,
            general_parameters={"workers": workers},
        )
        path = write_yaml(config, tmp_path / f"{save.name}.yml")
        assert train.main(["--model_config_path", str(path)]) == 0
        return save

    if workers == 0:
        # The uninterrupted subprocess run is one of the pair: the same numbers in a
        # fresh process and in this one.
        first, second = reference_run, run_in_process(tmp_path / "second")
    else:
        first = run_in_process(tmp_path / "first")
        second = run_in_process(tmp_path / "second")
    metrics = [
        json.loads((save / "metrics.json").read_text(encoding="utf-8"))
        for save in (first, second)
    ]
    assert numbers(metrics[0]) == numbers(metrics[1])
    weights = [
        load_checkpoint(save / "checkpoints" / "last.ckpt")["state_dict"]
        for save in (first, second)
    ]
    assert weights[0].keys() == weights[1].keys()
    for key, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][key]), key


def evaluate_in_one_process(checkpoint: Path, config_path: Path) -> dict:
    """top-1 (correct / labelled) and mean cross-entropy per head, and the weighted
    total loss, over the validation split in this process, batch by batch."""
    module = SignRecognitionModule.load_from_checkpoint(checkpoint, map_location="cpu")
    module.eval()
    datamodule = SignDataModule(load_config(config_path))
    assert len(datamodule.data.val_samples) == VAL_SAMPLES
    counts = {
        head: {"correct": 0, "top5": 0, "labelled": 0, "loss": 0.0}
        for head in module.num_classes
    }
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            logits = module(batch)["logits"]
            for head, count in counts.items():
                target = batch["labels"][head]
                labelled = target != IGNORE_INDEX
                predicted = logits[head].argmax(dim=-1)
                count["correct"] += int((predicted == target)[labelled].sum())
                best5 = logits[head].topk(min(5, logits[head].shape[-1])).indices
                in_best5 = (best5 == target[:, None]).any(dim=-1)
                count["top5"] += int(in_best5[labelled].sum())
                count["labelled"] += int(labelled.sum())
                count["loss"] += float(
                    F.cross_entropy(
                        logits[head].float(),
                        target,
                        ignore_index=IGNORE_INDEX,
                        reduction="sum",
                    )
                )
    weights = module.loss_weights
    total = sum(weights[h] * c["loss"] / c["labelled"] for h, c in counts.items())
    return {
        "counts": counts,
        "val_loss": total / sum(weights.values()),
    }


def test_ddp_validation_counts_every_sample_once(
    shipped_config, reliability_data, tmp_path
):
    save = tmp_path / "run"
    config = make_config(
        shipped_config, reliability_data, save, train_parameters={"epochs": 1}
    )
    config_path = write_yaml(config, tmp_path / "config.yml")
    log = tmp_path / "train.log"
    with log.open("w", encoding="utf-8") as file:
        result = subprocess.run(
            [sys.executable, "train.py", "--model_config_path", str(config_path)]
            + ["--set", "trainer.devices=2", "--set", "trainer.strategy=ddp"],
            cwd=ROOT,
            stdout=file,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    output = log.read_text(encoding="utf-8")
    assert result.returncode == 0, output[-3000:]
    assert "MEMBER: 2/2" in output, output[-3000:]
    metrics = json.loads((save / "metrics.json").read_text(encoding="utf-8"))
    assert Path(metrics["checkpoint"]) == save / "checkpoints" / "best.ckpt"
    expected = evaluate_in_one_process(Path(metrics["checkpoint"]), config_path)
    for head, count in expected["counts"].items():
        assert count["labelled"] == VAL_SAMPLES, head
        top1 = metrics["heads"][head]["top1"]
        # Exactly once: the metric is a whole number of correct samples out of 3
        # (a padded 4th sample would make it k/4), and the same number as here.
        assert round(top1 * count["labelled"]) == count["correct"], (head, top1)
        assert top1 == pytest.approx(count["correct"] / count["labelled"], abs=1e-6)
        top5 = metrics["heads"][head]["top5"]
        assert top5 == pytest.approx(count["top5"] / count["labelled"], abs=1e-6)
        assert metrics["heads"][head]["loss"] == pytest.approx(
            count["loss"] / count["labelled"], rel=1e-4
        ), head
    assert metrics["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-4)


def test_sigterm_during_final_validation_is_not_a_success(
    shipped_config, reliability_data, tmp_path, monkeypatch
):
    real_step = SignRecognitionModule.validation_step

    def step_then_sigterm(self, batch, batch_idx):
        if self.trainer.state.fn == "validate":  # the best checkpoint's validation
            # What Lightning's SIGTERM handler does on a real signal.
            # pylint: disable-next=protected-access
            self.trainer._signal_connector.received_sigterm = True
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(SignRecognitionModule, "validation_step", step_then_sigterm)
    save = tmp_path / "run"
    config = make_config(
        shipped_config, reliability_data, save, train_parameters={"epochs": 1}
    )
    path = write_yaml(config, tmp_path / "config.yml")
    try:
        status = train.main(["--model_config_path", str(path)])
    except SystemExit as error:
        status = error.code
    assert (save / "metrics.json").is_file() or status not in (0, None), status


def test_atomic_checkpoint_io_replaces_the_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint({"global_step": 1}, target)
    checkpoint_io.save_checkpoint({"global_step": 2, "w": torch.ones(3)}, target)
    assert os.listdir(target.parent) == ["last.ckpt"]
    replaced = load_checkpoint(target)
    assert replaced["global_step"] == 2 and torch.equal(replaced["w"], torch.ones(3))


def test_failed_serialization_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint({"global_step": 1, "w": torch.zeros(64)}, target)
    before = target.read_bytes()

    def failing_save(*_args, **_kwargs):
        raise RuntimeError("serialization failed")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="serialization failed"):
        checkpoint_io.save_checkpoint({"global_step": 2}, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]


def test_disk_full_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    checkpoint_io = AtomicCheckpointIO()
    checkpoint_io.save_checkpoint({"global_step": 1, "w": torch.zeros(64)}, target)
    before = target.read_bytes()
    real_save = torch.save

    def write_half_then_fail(obj, file):
        data = io.BytesIO()
        real_save(obj, data)
        file.write(data.getvalue()[: len(data.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", write_half_then_fail)
    with pytest.raises(UserError, match="last.ckpt .No space left on device"):
        checkpoint_io.save_checkpoint({"global_step": 2, "w": torch.ones(4096)}, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.ckpt"]


class _TermAtTrainEnd(L.Callback):
    """Sends this process SIGTERM when training has ended, after Lightning's last
    check of its flag: the flag is set and nothing raises."""

    def on_train_end(self, *_args) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_after_the_last_epoch_still_stops_the_run(
    tiny_config, write_config, capsys
):
    # A killed sweep worker's trial gets SIGTERM; arriving at the end of Lightning's
    # fit, it must not end as a finished run (metrics.json, a "complete" trial).
    tiny_config["train_parameters"].update(classification_mode="gloss", epochs=1)
    config = load_config(write_config(tiny_config))
    options = RunOptions(callbacks=[_TermAtTrainEnd()])
    assert run_training(config, options) == 128 + signal.SIGTERM
    assert "SIGTERM: stopped after training" in capsys.readouterr().out
    run = Path(tiny_config["general_parameters"]["path_to_save"])
    assert not (run / "metrics.json").exists()
