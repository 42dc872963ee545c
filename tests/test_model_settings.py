"""The built-in models' own settings: declared next to each registration, written
flat in the model's section, checked against the chosen model (another model's key
is an error), filled in with their defaults, and dropped from the configs of older
checkpoints, which saved every model's keys."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import train
from config.loader import (
    config_from_checkpoint,
    config_to_dict,
    load_config,
    parse_config,
    with_overrides,
)
from config.registry import (
    ENCODER_FACTS,
    EXTRACTOR_FACTS,
    import_models,
    model_settings,
)
from models.feature_extractors.cnn import TimmSettings
from models.feature_extractors.landmark_encoders import LandmarkBlocksSettings
from models.pipeline import build_pipeline
from models.transformers.hubert import HubertSettings
from models.transformers.sign_language_transformer import PoolingSettings
from training.run import check_resumable
from utils.errors import ConfigError
from utils.files import load_data_only

ROOT = Path(__file__).resolve().parents[1]
ZOO = sorted((ROOT / "models" / "zoo").glob("*.ckpt"))
#: Every key the shared sections held before the models' own settings moved, with
#: its old default: what an older checkpoint saved for every model.
OLD_FLAT_KEYS = {
    "feature_extractor": {
        "model_path": "resnet18",
        "pretrained_path": None,
        "num_blocks": 3,
        "kernel_size": 17,
        "dropout_rate": 0.2,
    },
    "transformer": {"pretrained_path": None, "pooling": "cls"},
}


@pytest.fixture(autouse=True)
def _models_registered() -> None:
    """The built-in models' settings are checked when they are registered."""
    import_models()


def landmark_config(tiny_config: dict, **extractor) -> dict:
    """The tiny config, landmarks only, with `feature_extractor` as given."""
    raw = copy.deepcopy(tiny_config)
    raw["train_parameters"]["landmarks"] = True
    raw["feature_extractor"] = {"representation_size": 16, **extractor}
    return raw


def old_checkpoint_config(raw: dict) -> dict:
    """`raw` resolved, as an older checkpoint saved it: every flat key of both
    model sections, at its old default where the config did not set it."""
    saved = config_to_dict(parse_config(raw))
    for section, keys in OLD_FLAT_KEYS.items():
        saved[section] = {**keys, **saved[section]}
    return saved


def problems(raw: dict) -> list[str]:
    """The lines of the `ConfigError` that parsing `raw` raises."""
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value).splitlines()[1:]


def test_each_builtin_model_declares_its_own_settings() -> None:
    expected = {
        "cnn_extractor": TimmSettings,
        "landmarks_conv": LandmarkBlocksSettings,
        "landmarks_stgcn": LandmarkBlocksSettings,
        "resnet50_extractor": None,
        "landmarks_extractor": None,
        "r3d_18": None,
    }
    for name, settings in expected.items():
        assert EXTRACTOR_FACTS.known(name).settings is settings, name
    assert ENCODER_FACTS.known("sign_language_transformer").settings is PoolingSettings
    assert ENCODER_FACTS.known("hubert_transformer").settings is HubertSettings
    assert ENCODER_FACTS.known("fake_transformer").settings is None


def test_a_bad_kernel_size_is_an_error_naming_it(tiny_config) -> None:
    raw = landmark_config(tiny_config, name="landmarks_conv", kernel_size=4)
    assert problems(raw) == ["feature_extractor.kernel_size: must be odd, got 4"]
    raw["feature_extractor"].update(name="landmarks_stgcn", kernel_size=0)
    assert problems(raw) == [
        "feature_extractor.kernel_size: Input should be greater than 0"
    ]


def test_an_unknown_pooling_is_an_error(tiny_config) -> None:
    raw = copy.deepcopy(tiny_config)
    raw["transformer"]["pooling"] = "max"
    assert problems(raw) == ["transformer.pooling: Input should be 'cls' or 'mean'"]


def test_another_models_key_is_an_error_naming_who_reads_it(tiny_config) -> None:
    raw = landmark_config(
        tiny_config, name="landmarks_conv", model_path="resnet18", kernel_size=4
    )
    raw["transformer"].update(name="hubert_transformer", pooling="mean")
    assert problems(raw) == [
        "feature_extractor.model_path: read by cnn_extractor, not by feature "
        "extractor 'landmarks_conv'; remove it",
        "feature_extractor.kernel_size: must be odd, got 4",
        "transformer.pooling: read by sign_language_transformer, not by "
        "transformer 'hubert_transformer'; remove it",
    ]
    raw = copy.deepcopy(tiny_config)
    raw["feature_extractor"]["num_blocks"] = 2
    raw["transformer"]["pretrained_path"] = None  # even at its default value
    assert problems(raw) == [
        "feature_extractor.num_blocks: read by landmarks_conv and landmarks_stgcn, "
        "not by feature extractor 'cnn_extractor'; remove it",
        "transformer.pretrained_path: read by hubert_transformer, not by "
        "transformer 'sign_language_transformer'; remove it",
    ]


def test_train_py_reports_another_models_key_with_the_other_problems(
    tiny_config, write_config, capsys
) -> None:
    raw = landmark_config(tiny_config, name="landmarks_stgcn", model_path="resnet18")
    raw["transformer"]["pooling"] = "max"
    assert train.main(["--model_config_path", str(write_config(raw))]) == 2
    err = capsys.readouterr().err
    assert "feature_extractor.model_path: read by cnn_extractor" in err
    assert "transformer.pooling: Input should be 'cls' or 'mean'" in err


def test_defaults_are_filled_in(tiny_config) -> None:
    config = parse_config(landmark_config(tiny_config, name="landmarks_conv"))
    settings = model_settings(config.feature_extractor, EXTRACTOR_FACTS)
    assert settings == LandmarkBlocksSettings()
    assert (settings.num_blocks, settings.kernel_size, settings.dropout_rate) == (
        3,
        17,
        0.2,
    )
    saved = config_to_dict(config)
    assert saved["feature_extractor"] == {
        "name": "landmarks_conv",
        "pretrained_path": None,
        "representation_size": 16,
        "num_blocks": 3,
        "kernel_size": 17,
        "dropout_rate": 0.2,
    }
    assert saved["transformer"]["pooling"] == "cls"
    pipeline = build_pipeline(config, {"gloss": 3})
    kernels = {
        module.kernel_size
        for module in pipeline.feature_extractor.modules()
        if isinstance(module, torch.nn.Conv1d)
    }
    assert kernels == {(17,)}
    default = parse_config({})
    assert model_settings(default.feature_extractor, EXTRACTOR_FACTS) == (
        TimmSettings(model_path="resnet18")
    )


def test_an_old_checkpoint_config_with_every_flat_key_loads(tiny_config) -> None:
    raw = landmark_config(
        tiny_config, name="landmarks_conv", num_blocks=2, kernel_size=5
    )
    raw["transformer"]["pooling"] = "mean"
    saved = old_checkpoint_config(raw)
    assert saved["feature_extractor"]["model_path"] == "resnet18"
    assert problems(copy.deepcopy(saved))  # written by a user, it is an error
    config = config_from_checkpoint(copy.deepcopy(saved), "in checkpoint old.ckpt")
    assert model_settings(config.feature_extractor, EXTRACTOR_FACTS) == (
        LandmarkBlocksSettings(num_blocks=2, kernel_size=5)
    )
    assert model_settings(config.transformer, ENCODER_FACTS) == PoolingSettings(
        pooling="mean"
    )
    assert config_to_dict(config) == config_to_dict(parse_config(raw))
    # A cnn_extractor checkpoint keeps its own model_path, drops the blocks' keys.
    saved = old_checkpoint_config(tiny_config)
    saved["feature_extractor"]["num_blocks"] = 5  # not read: never mattered
    config = config_from_checkpoint(saved, "in checkpoint old.ckpt")
    assert config_to_dict(config)["feature_extractor"] == {
        "name": "cnn_extractor",
        "pretrained_path": None,
        "representation_size": 16,
        "model_path": "resnet10t",
    }


def test_a_checkpoint_config_keeps_its_unknown_keys_as_errors(tiny_config) -> None:
    saved = old_checkpoint_config(tiny_config)
    saved["feature_extractor"]["kernal_size"] = 5
    with pytest.raises(ConfigError, match="feature_extractor.kernal_size: unknown"):
        config_from_checkpoint(saved, "in checkpoint old.ckpt")


@pytest.mark.parametrize("path", ZOO, ids=[path.stem for path in ZOO])
def test_the_zoo_checkpoints_load_in_both_layouts(path: Path) -> None:
    # The shipped files, and the same config as the older layout saved it (every
    # flat key of both model sections).
    saved = load_data_only(path, "checkpoint")["hyper_parameters"]["config"]
    old = dict(saved)
    for section, keys in OLD_FLAT_KEYS.items():
        old[section] = {**keys, **saved[section]}
    for layout in (saved, old):
        config = config_from_checkpoint(layout, f"in checkpoint {path}")
        resolved = config_to_dict(config)
        assert "model_path" not in resolved["feature_extractor"]
        assert resolved["feature_extractor"]["kernel_size"] == 17
        assert "pretrained_path" not in resolved["transformer"]
        assert resolved["transformer"]["pooling"] == "mean"


def test_resuming_an_old_checkpoint_compares_the_resolved_configs(
    tiny_config, tmp_path
) -> None:
    raw = landmark_config(tiny_config, name="landmarks_conv", num_blocks=2)
    config = parse_config(raw)
    path = tmp_path / "last.ckpt"
    hparams = {"config": old_checkpoint_config(raw), "num_classes": {"gloss": 3}}
    torch.save({"hyper_parameters": hparams}, path)
    check_resumable(path, config, {"gloss": 3})
    other = parse_config(landmark_config(tiny_config, name="landmarks_conv"))
    with pytest.raises(ConfigError, match="different feature_extractor"):
        check_resumable(path, other, {"gloss": 3})


def test_an_override_choosing_another_model_drops_the_replaced_settings() -> None:
    notes: list[str] = []
    config = load_config(
        ROOT / "train_config.yml",
        ["feature_extractor.name=landmarks_conv", "train_parameters.landmarks=true"],
        notes,
    )
    assert "model_path" not in config_to_dict(config)["feature_extractor"]
    assert notes == [
        "note: feature_extractor.model_path is dropped: a setting of cnn_extractor, "
        "which --set feature_extractor.name=landmarks_conv replaces"
    ]
    # A setting the new model reads too is kept; one set by an override stays.
    recipe = ROOT / "recipes" / "wlasl100_hands.yml"
    stgcn = load_config(recipe, ["feature_extractor.name=landmarks_stgcn"])
    assert model_settings(stgcn.feature_extractor, EXTRACTOR_FACTS).num_blocks == 2
    with pytest.raises(ConfigError, match="feature_extractor.num_blocks: read by"):
        load_config(
            recipe,
            [
                "feature_extractor.name=landmarks_extractor",
                "feature_extractor.num_blocks=2",
            ],
        )
    hubert = with_overrides(config, ["transformer.name=hubert_transformer"])
    assert "pooling" not in config_to_dict(hubert)["transformer"]
