"""`train_parameters.ema_decay`: checkpoints hold the averaged weights as data,
`--resume` continues raw and averaged weights, and test.py evaluates the average."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
import yaml

from helpers import TINY_OVERRIDES, load_test_cli, merge

import train

# 9 training clips in batches of 4: 3 optimizer steps an epoch.
STEPS_PER_EPOCH = 3
EMA = {
    "train_parameters": {"epochs": 2, "ema_decay": 0.9, "checkpoint_every_n_steps": 2}
}


def load(path: Path) -> dict:
    """A checkpoint, read as data only."""
    return torch.load(path, map_location="cpu", weights_only=True)


def write_config(config: dict, folder: Path) -> Path:
    """The config as a YAML file in `folder`."""
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def ema_run(
    shipped_config: dict, sample_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """Two tiny epochs with `ema_decay: 0.9`, then `--resume` for a third.

    Returns the run's checkpoints folder, its `last.ckpt` after the two epochs
    (`before`) and the exit status of the resumed run (`resumed`).
    """
    base = tmp_path_factory.mktemp("ema")
    config = merge(copy.deepcopy(shipped_config), copy.deepcopy(TINY_OVERRIDES))
    merge(config, copy.deepcopy(EMA))
    config["general_parameters"]["data_path"] = str(sample_root)
    config["general_parameters"]["path_to_save"] = str(base / "run")
    argv = ["--model_config_path", str(write_config(config, base))]
    assert train.main(argv) == 0
    checkpoints = base / "run" / "checkpoints"
    before = load(checkpoints / "last.ckpt")
    resumed = train.main([*argv, "--resume", "--set", "train_parameters.epochs=3"])
    return {"checkpoints": checkpoints, "before": before, "resumed": resumed}


@pytest.mark.parametrize("name", ["best.ckpt", "last.ckpt"])
def test_checkpoints_hold_averaged_and_raw_weights_as_data(ema_run, name):
    checkpoint = load(ema_run["checkpoints"] / name)
    averaged, raw = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert averaged.keys() == raw.keys()
    assert any(
        torch.is_floating_point(value) and not torch.equal(value, raw[key])
        for key, value in averaged.items()
    ), "the averaged weights lag behind the raw ones"
    assert "n_averaged" in checkpoint["averaging_state"]


def test_a_step_save_holds_the_average_of_its_step(ema_run):
    """`last.ckpt` after epoch 2 is the save of step 6 (every 2 steps); it comes
    after that step's update of the average, so --resume loses no update."""
    checkpoint = ema_run["before"]
    assert checkpoint["global_step"] == 2 * STEPS_PER_EPOCH
    (state,) = [
        value
        for key, value in checkpoint["callbacks"].items()
        if key.startswith("EMAWeightAveraging")
    ]
    assert state["latest_update_step"] == checkpoint["global_step"]
    assert int(checkpoint["averaging_state"]["n_averaged"]) == 2 * STEPS_PER_EPOCH


def test_resume_continues_raw_and_averaged_weights(ema_run):
    assert ema_run["resumed"] == 0
    before = ema_run["before"]
    after = load(ema_run["checkpoints"] / "last.ckpt")
    assert after["epoch"] == 2
    assert after["global_step"] == 3 * STEPS_PER_EPOCH
    # One update of the average per optimizer step, across the resume.
    assert int(after["averaging_state"]["n_averaged"]) == 3 * STEPS_PER_EPOCH
    for state in ("state_dict", "current_model_state"):
        assert any(
            not torch.equal(value, before[state][key])
            for key, value in after[state].items()
        ), state


def test_test_py_evaluates_the_averaged_weights(ema_run, capsys):
    cli = load_test_cli()
    best = ema_run["checkpoints"] / "best.ckpt"
    assert cli.main(["partial", str(best), "val"]) == 0
    result = json.loads(capsys.readouterr().out)
    # Validation in training ran on the averaged weights, as test.py does.
    assert result["average_loss"] == pytest.approx(
        load(best)["val_metrics"]["val/loss"], abs=1e-4
    )
