"""The final-model protocol: after the settings were chosen on val, a model trains
on train+val for the chosen epochs, and says everywhere that its val figures are not
held out."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import train
from config.loader import load_config
from datasets.sign_data import SignData


def test_train_on_val_trains_on_both_splits_and_keeps_the_last_epoch(
    tiny_config, write_config, capsys
):
    tiny_config["train_parameters"].update(
        classification_mode="gloss", epochs=2, train_on_val=True
    )
    path = write_config(tiny_config)
    data = SignData(load_config(path))
    held_out = SignData(load_config(path, ["train_parameters.train_on_val=false"]))
    assert len(data.train_samples) == len(held_out.train_samples) + len(
        held_out.val_samples
    )
    assert {s.name for s in held_out.val_samples} <= {
        s.name for s in data.train_samples
    }
    assert "train_on_val" in data.describe()

    assert train.main(["--model_config_path", str(path)]) == 0
    out = capsys.readouterr().out
    assert "validation (on val clips it trained on: train_on_val):" in out
    run = tiny_config["general_parameters"]["path_to_save"]
    metrics = json.loads(Path(run, "metrics.json").read_text(encoding="utf-8"))
    assert metrics["train_on_val"] is True
    best = torch.load(f"{run}/checkpoints/best.ckpt", weights_only=False)
    assert best["epoch"] == 1  # the last of 2 epochs, whatever val says
