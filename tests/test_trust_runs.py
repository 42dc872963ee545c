"""Runs a user can trust: no code runs from a checkpoint or weights file, a full disk
loses nothing, one run per run folder, and bad output or weights paths are refused
before training.

Each failure ends as users see it: exit status 2 and one `error:` line naming the
file, without a traceback.
"""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import errno
import io
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
import yaml
from helpers import ROOT, load_test_cli

import predict
import train
from config.loader import parse_config
from training import run_folder
from training.datamodule import evaluation_sampler
from training.run_folder import LOCK_FILE, prepare_output_dir, run_folder_lock
from utils import files as file_io
from utils.errors import ConfigError, DataError

TEST_CLI = load_test_cli()


class Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def plant(path: Path, marker: Path, form: str = "torch") -> Path:
    """A checkpoint-looking file at `path` whose unpickling creates `marker`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": Payload(marker)}
    if form == "torch":
        torch.save(payload, path)
    else:  # a plain pickle, as torch.load also reads
        path.write_bytes(pickle.dumps(payload))
    return path


def error_lines(err: str) -> list[str]:
    """The `error:` lines of a command's stderr (there must be no traceback)."""
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error: ")]


def assert_one_error(capsys, status: int, *needles: str) -> str:
    """Status 2 and one `error:` line holding every needle; returns that line."""
    lines = error_lines(capsys.readouterr().err)
    assert status == 2 and len(lines) == 1, (status, lines)
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def run_train(write_config, config: dict, *extra: str) -> int:
    """train.py's main on a config dict."""
    return train.main(["--model_config_path", str(write_config(config)), *extra])


def run_dir(config: dict) -> Path:
    """The run directory of a config."""
    return Path(config["general_parameters"]["path_to_save"])


# ------------------------------------------------- no code runs from a loaded file


def test_the_payload_runs_code_when_unpickled(tmp_path) -> None:
    """The files planted below are real attacks: plain unpickling runs them."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("form", ["torch", "pickle"])
def test_resume_does_not_unpickle_a_planted_last_checkpoint(
    tiny_config, write_config, tmp_path, capsys, form
) -> None:
    marker = tmp_path / "marker"
    last = plant(run_dir(tiny_config) / "checkpoints" / "last.ckpt", marker, form)
    status = run_train(write_config, tiny_config, "--resume")
    line = assert_one_error(capsys, status, "--resume", str(last))
    assert "could run code" in line or form == "pickle"
    assert not marker.exists()


@pytest.mark.parametrize("how", ["--checkpoint", "transfer"])
def test_transfer_does_not_unpickle_a_planted_checkpoint(
    tiny_config, write_config, tmp_path, capsys, how
) -> None:
    marker = tmp_path / "marker"
    source = plant(tmp_path / "other" / "best.ckpt", marker)
    config = copy.deepcopy(tiny_config)
    extra = ("--checkpoint", str(source)) if how == "--checkpoint" else ()
    if how == "transfer":
        config["transfer"] = {"checkpoint": str(source)}
    status = run_train(write_config, config, *extra)
    assert_one_error(capsys, status, str(source), "could run code")
    assert not marker.exists()


@pytest.mark.parametrize("extractor", ["cnn_extractor", "resnet50_extractor"])
def test_pretrained_path_does_not_unpickle_a_planted_file(
    tiny_config, write_config, tmp_path, capsys, extractor
) -> None:
    marker = tmp_path / "marker"
    weights = plant(tmp_path / "weights.pth", marker)
    config = copy.deepcopy(tiny_config)
    config["feature_extractor"]["name"] = extractor
    if extractor != "cnn_extractor":  # the tiny config's timm model is its setting
        config["feature_extractor"].pop("model_path")
    config["feature_extractor"]["pretrained_path"] = str(weights)
    status = run_train(write_config, config)
    assert_one_error(
        capsys, status, "feature_extractor.pretrained_path", str(weights), "run code"
    )
    assert not marker.exists()


def test_test_py_does_not_unpickle_a_planted_checkpoint(tmp_path, capsys) -> None:
    marker = tmp_path / "marker"
    checkpoint = plant(tmp_path / "best.ckpt", marker)
    status = TEST_CLI.main(["partial", str(checkpoint), "val"])
    assert_one_error(capsys, status, str(checkpoint), "could run code")
    assert not marker.exists()


def test_predict_py_does_not_unpickle_a_planted_checkpoint(
    sample_root, tmp_path, capsys
) -> None:
    marker = tmp_path / "marker"
    checkpoint = plant(tmp_path / "best.ckpt", marker)
    output = tmp_path / "out"
    argv = [str(checkpoint), str(sample_root), str(output), "--embedding_kind", "CLS"]
    assert_one_error(capsys, predict.main(argv), str(checkpoint), "could run code")
    assert not marker.exists() and not output.exists()


# ------------------------------------------------------------- bad weights paths


def _fifo(path: Path) -> Path:
    os.mkfifo(path)

    def unblock() -> None:  # a reader that opened it would wait for ever: end it
        with open(path, "wb"):
            pass

    timer = threading.Timer(60, unblock)
    timer.daemon = True
    timer.start()
    return path


BAD_FILES = {
    "missing": "is not an existing file",
    "folder": "is a directory, not a file",
    "fifo": "is a FIFO (named pipe), not a file",
    "garbage": "not a readable PyTorch checkpoint",
}


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("extractor", ["cnn_extractor", "resnet50_extractor"])
def test_a_bad_pretrained_path_names_the_file_and_what_it_is(
    tiny_config, write_config, tmp_path, capsys, kind, extractor
) -> None:
    path = tmp_path / "weights.pth"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        _fifo(path)
    elif kind == "garbage":
        path.write_bytes(os.urandom(3000))
    config = copy.deepcopy(tiny_config)
    config["feature_extractor"]["name"] = extractor
    if extractor != "cnn_extractor":  # the tiny config's timm model is its setting
        config["feature_extractor"].pop("model_path")
    config["feature_extractor"]["pretrained_path"] = str(path)
    status = run_train(write_config, config)
    assert_one_error(
        capsys, status, "feature_extractor.pretrained_path", str(path), BAD_FILES[kind]
    )
    assert not run_dir(config).exists()


def test_a_fifo_as_checkpoint_is_named_as_a_fifo(tmp_path, capsys) -> None:
    fifo = _fifo(tmp_path / "best.ckpt")
    status = TEST_CLI.main(["partial", str(fifo), "val"])
    assert_one_error(capsys, status, str(fifo), "is a FIFO (named pipe), not a file")


# ------------------------------------------------------------- output paths


def test_a_weights_file_that_is_a_folder_is_refused_before_training(
    tiny_config, write_config, tmp_path, capsys
) -> None:
    target = tmp_path / "saved_model.pth"
    target.mkdir()
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["path_to_save"] = str(target)
    status = run_train(write_config, config)
    assert_one_error(capsys, status, str(target), "is a directory, not a file")
    assert not (tmp_path / "saved_model" / "checkpoints").exists()


def test_config_yml_is_written_atomically(tiny_config, monkeypatch) -> None:
    config = parse_config(tiny_config)
    saved = prepare_output_dir(config) / "config.yml"
    before = saved.read_text(encoding="utf-8")
    assert yaml.safe_load(before)["general_parameters"]["seed"] == 42

    def disk_full(_descriptor) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(file_io.os, "fsync", disk_full)
    changed = copy.deepcopy(tiny_config)
    changed["general_parameters"]["seed"] = 7
    with pytest.raises(ConfigError, match="No space left on device"):
        prepare_output_dir(parse_config(changed))
    assert saved.read_text(encoding="utf-8") == before
    assert sorted(os.listdir(saved.parent)) == ["config.yml"]


# ------------------------------------------------------- a full disk while saving


def test_disk_full_while_saving_keeps_the_previous_checkpoint(
    tiny_config, write_config, capsys, monkeypatch
) -> None:
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["checkpoint_every_n_steps"] = 1
    real_save = torch.save
    saves = []

    def save_then_fill_the_disk(obj, file, *args, **kwargs):
        saves.append(obj.get("global_step") if isinstance(obj, dict) else None)
        if len(saves) == 1:
            return real_save(obj, file, *args, **kwargs)
        data = io.BytesIO()
        real_save(obj, data, *args, **kwargs)
        file.write(data.getvalue()[: len(data.getvalue()) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_then_fill_the_disk)
    status = run_train(write_config, config)
    checkpoints = run_dir(config) / "checkpoints"
    assert_one_error(
        capsys, status, str(checkpoints / "last.ckpt"), "No space left on device"
    )
    assert os.listdir(checkpoints) == ["last.ckpt"], "the temporary file is removed"
    kept = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert kept["global_step"] == saves[0] == 1
    assert not (run_dir(config) / "metrics.json").exists()


# ------------------------------------------------------- one run per run folder

HOLDER = """
import sys, time
from pathlib import Path
from training.run_folder import run_folder_lock
with run_folder_lock(Path(sys.argv[1])):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_second_run_in_a_held_folder_is_refused_and_a_dead_ones_lock_taken_over(
    tiny_config, write_config, capsys
) -> None:
    folder = run_dir(tiny_config)
    holder = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-c", HOLDER, str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        status = run_train(write_config, tiny_config)
        line = assert_one_error(capsys, status, str(folder), f"pid {holder.pid} on")
        assert "in use by another run" in line and "started" in line
        assert not (folder / "config.yml").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # Killed while saving: its temporary files stay behind, and its name in the lock.
    (folder / "checkpoints").mkdir()
    stale = [
        folder / "checkpoints" / ".last.ckpt.tmp-4242",
        folder / ".config.yml.tmp-7",
    ]
    for path in stale:
        path.write_bytes(b"partial")
    (folder / ".keep").write_text("not a temporary file", encoding="utf-8")
    with run_folder_lock(folder):
        assert f"pid {os.getpid()} on" in (folder / LOCK_FILE).read_text("utf-8")
    err = capsys.readouterr().err
    assert f"pid {holder.pid} on" in err and "taking it over" in err
    assert not any(path.exists() for path in stale)
    assert (folder / ".keep").exists()
    assert (folder / LOCK_FILE).read_text(encoding="utf-8") == ""


def test_a_run_after_a_finished_one_takes_the_folder_quietly(tmp_path, capsys) -> None:
    with run_folder_lock(tmp_path / "run"):
        with pytest.raises(ConfigError, match="in use by another run"):
            with run_folder_lock(tmp_path / "run"):
                pass
    with run_folder_lock(tmp_path / "run"):
        pass
    assert "taking it over" not in capsys.readouterr().err


def test_stale_temporaries_beside_the_weights_file_are_the_runs_own_only(
    tmp_path,
) -> None:
    weights_file = tmp_path / "saved_model.pth"
    own, other = tmp_path / ".saved_model.pth.tmp-12", tmp_path / ".other.pth.tmp-12"
    for path in (own, other):
        path.write_bytes(b"partial")
    with run_folder_lock(tmp_path / "saved_model", weights_file):
        pass
    assert not own.exists() and other.exists()


def test_a_file_system_without_locks_trains_with_a_note(
    tmp_path, capsys, monkeypatch
) -> None:
    def no_locks(*_args) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_folder.fcntl, "flock", no_locks)
    with run_folder_lock(tmp_path / "run"):
        pass
    assert "cannot lock files (No locks available)" in capsys.readouterr().err


# ------------------------------------------------------- DDP and validation size


def test_the_exact_once_sampler_needs_a_sample_per_process() -> None:
    dataset = list(range(3))
    with pytest.raises(DataError, match="3 samples but the run uses 4 processes"):
        evaluation_sampler(dataset, num_replicas=4, rank=0)
    shares = [list(evaluation_sampler(dataset, num_replicas=2, rank=r)) for r in (0, 1)]
    assert sorted(shares[0] + shares[1]) == dataset


def test_more_processes_than_validation_samples_is_refused_before_training(
    tiny_config, write_config, capsys
) -> None:
    config = copy.deepcopy(tiny_config)
    config["trainer"] = {"devices": 4, "strategy": "ddp"}
    status = run_train(write_config, config)
    assert_one_error(capsys, status, "validation set has 3 samples", "4 processes")
    assert not (run_dir(config) / "checkpoints").exists()
