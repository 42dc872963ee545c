"""User errors on the command line: exit 2, one clear message, no traceback.

The first test runs train.py in its own process, as a user does; the others call
its `main` in this process (the same code after the interpreter starts, without
importing torch again for each case)."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest

from helpers import run_train_process
import train


@pytest.fixture
def run_train(capsys):
    """train.py's `main` on a config (and more arguments), as a finished process:
    its exit status and what it printed."""

    def run(config_path: Path, *args: str) -> subprocess.CompletedProcess:
        command = ["--model_config_path", str(config_path), *args]
        status = train.main(command)
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(command, status, captured.out, captured.err)

    return run


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2, a message naming the problem, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # `warning:`/`note:` lines may come first; the error is one message at the end.
    errors = [
        i
        for i, line in enumerate(result.stderr.splitlines())
        if line.startswith("error: ")
    ]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_misspelled_key(tiny_config: dict, write_config) -> None:
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["batch_sise"] = 4
    result = run_train_process(write_config(config))
    assert_user_error(result, "train_parameters.batch_sise", "batch_size")
    assert len(result.stderr.strip().splitlines()) == 2  # header + the one problem
    assert result.stderr.startswith("error: ")  # a config error comes before anything


def test_wrong_type(tiny_config: dict, write_config, run_train) -> None:
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["lr"] = "fast"
    assert_user_error(run_train(write_config(config)), "train_parameters.lr", "'fast'")


def test_missing_data_path(
    tiny_config: dict, write_config, tmp_path: Path, run_train
) -> None:
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["data_path"] = str(tmp_path / "no_such_dir")
    assert_user_error(
        run_train(write_config(config)),
        "general_parameters.data_path",
        "no_such_dir",
    )


@pytest.mark.parametrize(
    "section, value, allowed",
    [
        ("feature_extractor", "vgg_extractor", "cnn_extractor"),
        ("transformer", "lstm", "sign_language_transformer"),
    ],
)
def test_unknown_model_name(  # pylint: disable=too-many-arguments
    tiny_config, write_config, section, value, allowed, run_train
) -> None:
    config = copy.deepcopy(tiny_config)
    config[section]["name"] = value
    assert_user_error(
        run_train(write_config(config)), f"{section}.name", value, allowed
    )


def test_unknown_timm_model(tiny_config: dict, write_config, run_train) -> None:
    config = copy.deepcopy(tiny_config)
    config["feature_extractor"]["model_path"] = "resnet1O"
    assert_user_error(
        run_train(write_config(config)),
        "feature_extractor.model_path",
        "resnet1O",
    )


def test_bad_override_and_missing_config(tmp_path: Path, run_train) -> None:
    assert_user_error(run_train(tmp_path / "none.yml"), "config file not found")


def test_resume_without_checkpoint(tiny_config: dict, write_config, run_train) -> None:
    assert_user_error(
        run_train(write_config(tiny_config), "--resume"),
        "no checkpoint to resume",
    )
