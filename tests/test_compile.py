"""The opt-in `trainer.compile` (slow: compilation takes minutes on a small CPU)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import train


@pytest.mark.manual
def test_compiled_backbone_trains_and_keeps_checkpoint_keys(tiny_config, write_config):
    config = copy.deepcopy(tiny_config)
    config["trainer"]["compile"] = True
    assert train.main(["--model_config_path", str(write_config(config))]) == 0
    save = Path(config["general_parameters"]["path_to_save"])
    state = torch.load(save / "checkpoints" / "best.ckpt", weights_only=True)
    assert not any("_orig_mod" in key for key in state["state_dict"])
