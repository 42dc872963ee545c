"""train.py end to end as users run it: outputs, model pairings, resume, Neptune."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

import train
from data_preprocessing.make_sample_dataset import make_sample_dataset
from models.pipeline import TRANSFORMERS


def run(write_config, config: dict, *extra: str) -> int:
    """train.py's main on a config dict."""
    return train.main(["--model_config_path", str(write_config(config)), *extra])


def test_one_epoch_writes_checkpoints_config_and_metrics(tiny_config, write_config):
    assert run(write_config, tiny_config) == 0
    save = Path(tiny_config["general_parameters"]["path_to_save"])
    assert (save / "checkpoints" / "best.ckpt").is_file()
    assert (save / "checkpoints" / "last.ckpt").is_file()
    resolved = yaml.safe_load((save / "config.yml").read_text(encoding="utf-8"))
    assert resolved["train_parameters"]["classification_mode"] == ["gloss", "hamnosys"]
    metrics = json.loads((save / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["heads"]) == {"gloss", *tiny_config["heads"]["hamnosys"]}
    for head in metrics["heads"].values():
        assert 0.0 <= head["top1"] <= head["top5"] <= 1.0
        assert head["loss"] > 0
    assert set(metrics["mean_top1"]) == {"gloss", "hamnosys"}
    checkpoint = torch.load(
        save / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True
    )
    hparams = checkpoint["hyper_parameters"]
    assert hparams["config"]["feature_extractor"]["model_path"] == "resnet10t"
    assert hparams["num_classes"]["gloss"] == 3  # `auto` resolved from the data
    assert list((save / "logs").rglob("metrics.csv"))
    assert list((save / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.parametrize("extractor", ["cnn_extractor", "resnet50_extractor"])
@pytest.mark.parametrize("transformer", TRANSFORMERS.names())
def test_every_model_pairing_trains_a_step(
    tiny_config, write_config, extractor, transformer
):
    config = copy.deepcopy(tiny_config)
    config["feature_extractor"]["name"] = extractor
    if extractor != "cnn_extractor":  # the tiny config's timm model is its setting
        config["feature_extractor"].pop("model_path")
    config["transformer"]["name"] = transformer
    config["train_parameters"]["fast_dev_run"] = True
    assert run(write_config, config) == 0


@pytest.mark.parametrize("mode", ["gloss", "hamnosys"])
def test_single_classification_modes(tiny_config, write_config, mode):
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["classification_mode"] = mode
    assert run(write_config, config) == 0
    save = Path(tiny_config["general_parameters"]["path_to_save"])
    metrics = json.loads((save / "metrics.json").read_text(encoding="utf-8"))
    assert list(metrics["mean_top1"]) == [mode]


def test_a_new_run_in_an_earlier_runs_folder_says_so(tiny_config, write_config, capsys):
    assert run(write_config, tiny_config) == 0
    assert "holds the checkpoints of an earlier run" not in capsys.readouterr().err
    assert run(write_config, tiny_config) == 0
    err = capsys.readouterr().err
    folder = tiny_config["general_parameters"]["path_to_save"]
    assert f"warning: {folder} holds the checkpoints of an earlier run" in err
    assert "best.ckpt" in err and "--resume" in err


def test_resume_continues_from_last_checkpoint(tiny_config, write_config, capsys):
    assert run(write_config, tiny_config) == 0
    last = Path(tiny_config["general_parameters"]["path_to_save"]) / "checkpoints"
    first = torch.load(last / "last.ckpt", map_location="cpu", weights_only=True)
    config = copy.deepcopy(tiny_config)
    config["train_parameters"]["epochs"] = 2
    assert run(write_config, config, "--resume") == 0
    assert "earlier run" not in capsys.readouterr().err
    second = torch.load(last / "last.ckpt", map_location="cpu", weights_only=True)
    assert first["epoch"] == 0 and second["epoch"] == 1
    assert second["global_step"] == 2 * first["global_step"]


def test_neptune_offline_run_logs_metrics(tiny_config, write_config, monkeypatch):
    monkeypatch.setenv("NEPTUNE_MODE", "offline")
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    assert run(write_config, tiny_config, "--neptune") == 0
    save = Path(tiny_config["general_parameters"]["path_to_save"])
    logs = list((save / ".neptune").rglob("data-1.log"))
    assert logs, "the offline run keeps its data on disk"
    text = "".join(log.read_text(encoding="utf-8") for log in logs)
    for path in (
        '["training", "val", "gloss", "top1"]',
        '["training", "train", "loss_step"]',
    ):
        assert path in text


def test_neptune_without_credentials_is_a_user_error(
    tiny_config, write_config, monkeypatch, capsys
):
    monkeypatch.setenv("NEPTUNE_MODE", "async")
    monkeypatch.delenv("NEPTUNE_API_TOKEN", raising=False)
    monkeypatch.delenv("NEPTUNE_PROJECT_NAME", raising=False)
    monkeypatch.delenv("NEPTUNE_PROJECT", raising=False)
    assert run(write_config, tiny_config, "--neptune") == 2
    assert "NEPTUNE_API_TOKEN" in capsys.readouterr().err


def test_shipped_config_trains_one_epoch(shipped_config, write_config, tmp_path):
    """The README command with `--set train_parameters.epochs=1` on the default data."""
    data = tmp_path / "sample"
    make_sample_dataset(data)
    config = copy.deepcopy(shipped_config)
    config["general_parameters"]["data_path"] = str(data)
    config["general_parameters"]["path_to_save"] = str(tmp_path / "run")
    assert run(write_config, config, "--set", "train_parameters.epochs=1") == 0
    metrics = json.loads(
        (tmp_path / "run" / "metrics.json").read_text(encoding="utf-8")
    )
    assert len(metrics["heads"]) == 9
