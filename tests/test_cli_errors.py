"""User errors on the command line: exit 2, one clear message, no traceback."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest

from helpers import run_train_process


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


def test_wrong_type(tiny_config: dict, write_config) -> None:
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["lr"] = "fast"
    assert_user_error(
        run_train_process(write_config(config)), "train_parameters.lr", "'fast'"
    )


def test_missing_data_path(tiny_config: dict, write_config, tmp_path: Path) -> None:
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["data_path"] = str(tmp_path / "no_such_dir")
    assert_user_error(
        run_train_process(write_config(config)),
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
def test_unknown_model_name(tiny_config, write_config, section, value, allowed) -> None:
    config = copy.deepcopy(tiny_config)
    config[section]["name"] = value
    assert_user_error(
        run_train_process(write_config(config)), f"{section}.name", value, allowed
    )


def test_unknown_timm_model(tiny_config: dict, write_config) -> None:
    config = copy.deepcopy(tiny_config)
    config["feature_extractor"]["model_path"] = "resnet1O"
    assert_user_error(
        run_train_process(write_config(config)),
        "feature_extractor.model_path",
        "resnet1O",
    )


def test_bad_override_and_missing_config(tmp_path: Path) -> None:
    assert_user_error(run_train_process(tmp_path / "none.yml"), "config file not found")


def test_resume_without_checkpoint(tiny_config: dict, write_config) -> None:
    assert_user_error(
        run_train_process(write_config(tiny_config), "--resume"),
        "no checkpoint to resume",
    )
