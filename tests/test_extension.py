"""Extension in one file: a feature extractor and a head kind defined in a module of
their own (outside the repository), named under `general_parameters.plugins`, train
through `train.py` with no other file edited."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import train
from config.registry import EXTRACTOR_FACTS, HEAD_KIND_FACTS
from models.registry import FEATURE_EXTRACTORS, HEAD_KINDS

EXTRACTOR_MODULE = '''
"""A tiny feature extractor with a setting of its own."""

import torch
from pydantic import Field
from torch import nn

from config.section import Section
from models.registry import FEATURE_EXTRACTORS, NothingToPrepare


class TinySettings(Section):
    """The tiny extractor's own settings."""

    scale: float = Field(1.0, gt=0.0, description="Multiplies the features.")


@FEATURE_EXTRACTORS.register(
    "test_tiny_extractor", reads=("frames",), min_frames=2, settings=TinySettings
)
class TinyExtractor(NothingToPrepare, nn.Module):
    """Each frame's mean colour, projected."""

    def __init__(self, *, representation_size: int, scale: float) -> None:
        super().__init__()
        self.out_dim = representation_size
        self.scale = scale
        self.linear = nn.Linear(3, representation_size)

    def forward(self, batch: dict) -> torch.Tensor:
        colour = batch["frames"].float().mean(dim=(3, 4)) / 255.0  # (B, T, C)
        features = self.linear(colour) * self.scale
        return features * batch["mask"].unsqueeze(-1).to(features.dtype)
'''

HEAD_MODULE = '''
"""A tiny regression head kind: one number per clip, squared error."""

import torch
from torch import nn
from torchmetrics import MeanAbsoluteError

from models.heads.classification import hidden_layers
from models.registry import HEAD_KINDS
from utils.constants import IGNORE_INDEX


@HEAD_KINDS.register("test_regression")
class Regression:
    """The label as a number: squared error, mean absolute error."""

    top_k = ()

    def layer(self, *, input_dim, num_classes, additional_layers, dropout):
        del num_classes
        return nn.Sequential(
            *hidden_layers(input_dim, additional_layers, dropout),
            nn.Linear(input_dim, 1),
        )

    def loss(self, outputs, target, label_smoothing):
        del label_smoothing
        labelled = target != IGNORE_INDEX
        error = (outputs.squeeze(-1).float() - target.float()) ** 2
        return (error * labelled).sum(), labelled.sum()

    def metrics(self, num_classes):
        del num_classes
        return {"mae": MeanAbsoluteError()}

    def metric_inputs(self, outputs, target):
        labelled = target != IGNORE_INDEX
        return outputs.squeeze(-1).float()[labelled], target[labelled].float()

    def predict(self, outputs):
        return outputs.squeeze(-1)
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a module into a directory on the Python path; forget what it
    registered afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    written: list[str] = []

    def write(name: str, text: str) -> str:
        (folder / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)
    for registry in (FEATURE_EXTRACTORS, HEAD_KINDS):
        for name in registry.names():
            if name.startswith("test_"):
                registry.unregister(name)


def _train(config: dict, write_config) -> int:
    config["train_parameters"]["epochs"] = 1
    return train.main(["--model_config_path", str(write_config(config))])


def test_an_extractor_in_one_file_trains_through_train_py(
    plugin, tiny_config, write_config
) -> None:
    module = plugin("my_tiny_extractor", EXTRACTOR_MODULE)
    tiny_config["general_parameters"]["plugins"] = [module]
    tiny_config["feature_extractor"] = {
        "name": "test_tiny_extractor",
        "representation_size": 8,
        "scale": 2.0,
    }
    assert _train(tiny_config, write_config) == 0
    run = Path(tiny_config["general_parameters"]["path_to_save"])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    saved = yaml.safe_load((run / "config.yml").read_text(encoding="utf-8"))
    assert saved["feature_extractor"]["scale"] == 2.0
    facts = EXTRACTOR_FACTS.known("test_tiny_extractor")
    assert facts.min_frames == 2 and facts.setting_names() == ("scale",)


def test_an_extractors_own_settings_are_checked_with_the_rest(
    plugin, tiny_config, write_config, capsys
) -> None:
    module = plugin("my_tiny_extractor", EXTRACTOR_MODULE)
    tiny_config["general_parameters"]["plugins"] = [module]
    tiny_config["feature_extractor"] = {
        "name": "test_tiny_extractor",
        "scale": -1.0,
        "scael": 2.0,
    }
    tiny_config["train_parameters"]["num_segments"] = 1
    assert _train(tiny_config, write_config) == 2
    err = capsys.readouterr().err
    assert "feature_extractor.scale: Input should be greater than 0" in err
    assert "feature_extractor.scael: unknown key" in err
    assert "test_tiny_extractor needs at least 2 frames" in err


def test_a_missing_plugin_is_a_config_error(tiny_config, write_config, capsys):
    tiny_config["general_parameters"]["plugins"] = ["no_such_signpipe_plugin"]
    assert _train(tiny_config, write_config) == 2
    assert "general_parameters.plugins: cannot import" in capsys.readouterr().err


def test_a_head_kind_in_one_file_trains_through_train_py(
    plugin, tiny_config, write_config
) -> None:
    module = plugin("my_regression_head", HEAD_MODULE)
    tiny_config["general_parameters"]["plugins"] = [module]
    tiny_config["heads"]["gloss"] = {"gloss": {"kind": "test_regression"}}
    assert _train(tiny_config, write_config) == 0
    run = Path(tiny_config["general_parameters"]["path_to_save"])
    assert (run / "checkpoints" / "last.ckpt").is_file()
    logged = "".join(
        path.read_text(encoding="utf-8", errors="replace")
        for path in run.rglob("*.csv")
    )
    assert "gloss/mae" in logged and "gloss/top1" not in logged
    assert HEAD_KIND_FACTS.known("test_regression") is not None


def test_an_unknown_head_kind_lists_the_kinds(tiny_config, write_config, capsys):
    tiny_config["heads"]["gloss"] = {"gloss": {"kind": "regresion"}}
    assert _train(tiny_config, write_config) == 2
    err = capsys.readouterr().err
    assert "heads.gloss.gloss.kind: unknown head kind 'regresion'" in err
    assert "classification" in err
