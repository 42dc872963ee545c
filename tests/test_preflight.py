"""Errors found from the config alone come before any data is read, all at once."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import pytest

import train
from datasets import sign_data
from utils.cli import run_cli


@pytest.fixture
def no_indexing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the data fails the test: the errors must come before it."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the data was read before the config errors")

    monkeypatch.setattr(sign_data.SignData, "__init__", refuse)


def run(config: dict, write_config) -> int:
    """train.py as run from the command line."""
    return train.main(["--model_config_path", str(write_config(config))])


def test_every_config_problem_is_reported_before_the_data_is_read(
    tiny_config, write_config, capsys, no_indexing
) -> None:
    del no_indexing
    tiny_config["feature_extractor"]["name"] = "cnn_extractr"
    tiny_config["transformer"]["name"] = "sign_language_transformr"
    tiny_config["general_parameters"]["gpu"] = 7
    tiny_config["transfer"] = {"checkpoint": "/nonexistent/run/best.ckpt"}
    tiny_config["general_parameters"]["data_path"] = "/nonexistent/data"
    assert run(tiny_config, write_config) == 2
    err = capsys.readouterr().err
    assert "general_parameters.data_path: '/nonexistent/data' is not an existing" in err
    assert "feature_extractor.name: unknown feature extractor 'cnn_extractr'" in err
    assert "transformer.name: unknown transformer 'sign_language_transformr'" in err
    assert "general_parameters.gpu: CUDA device 7 is not available" in err
    assert "--checkpoint: '/nonexistent/run/best.ckpt'" in err
    assert "Traceback" not in err


def test_missing_neptune_credentials_come_before_the_data(
    tiny_config, write_config, capsys, monkeypatch, no_indexing
) -> None:
    del no_indexing
    for name in ("NEPTUNE_API_TOKEN", "NEPTUNE_PROJECT_NAME", "NEPTUNE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEPTUNE_MODE", "async")
    tiny_config["general_parameters"]["neptune"] = True
    assert run(tiny_config, write_config) == 2
    assert "NEPTUNE_API_TOKEN" in capsys.readouterr().err


def test_a_missing_weights_file_comes_before_the_data(
    tiny_config, write_config, capsys, tmp_path, no_indexing
) -> None:
    del no_indexing
    tiny_config["feature_extractor"]["pretrained_path"] = str(tmp_path / "no.pth")
    tiny_config["transformer"] = {
        **tiny_config["transformer"],
        "name": "hubert_transformer",
        "pretrained_path": str(tmp_path / "no_hubert"),
    }
    assert run(tiny_config, write_config) == 2
    err = capsys.readouterr().err
    assert "feature_extractor.pretrained_path" in err
    assert "transformer.pretrained_path" in err


def test_a_valid_config_passes_the_checks(tiny_config, write_config) -> None:
    tiny_config["train_parameters"]["epochs"] = 1
    assert run(tiny_config, write_config) == 0


def test_a_missing_dependency_is_one_line_saying_how_to_install(capsys) -> None:
    def command() -> int:
        raise ModuleNotFoundError("No module named 'lightning'", name="lightning")

    assert run_cli(command) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'lightning' is not installed" in err and "make venv" in err
