"""The config schema: the shipped config validates; bad values name their key."""

from __future__ import annotations

import copy

import pytest

from helpers import ROOT
from config.loader import apply_overrides, load_config, parse_config
from models.pipeline import unused_model_settings
from utils.errors import ConfigError

CONFIG = ROOT / "train_config.yml"


def test_shipped_config_validates(shipped_config: dict) -> None:
    config = parse_config(copy.deepcopy(shipped_config))
    assert config.train_parameters.modes() == ["gloss", "hamnosys"]
    assert list(config.active_heads())[0] == "gloss"
    assert len(config.active_heads()) == 9
    assert config.head_modes()["hand_location_y"] == "hamnosys"


def test_misspelled_key_names_key_and_suggestion(shipped_config: dict) -> None:
    raw = copy.deepcopy(shipped_config)
    raw["train_parameters"]["epocs"] = 3
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    message = str(error.value)
    assert "train_parameters.epocs: unknown key" in message
    assert "did you mean 'epochs'" in message


def test_unknown_section_is_rejected(shipped_config: dict) -> None:
    raw = copy.deepcopy(shipped_config)
    raw["optimiser"] = {"lr": 1}
    with pytest.raises(ConfigError, match="optimiser: unknown key"):
        parse_config(raw)


def test_wrong_type_names_key_and_value(shipped_config: dict) -> None:
    raw = copy.deepcopy(shipped_config)
    raw["train_parameters"]["batch_size"] = "eight"
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert "train_parameters.batch_size" in str(error.value)
    assert "'eight'" in str(error.value)


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("train_parameters", "batch_size", 0),
        ("train_parameters", "epochs", -1),
        ("augmentations_parameters", "resize_size", 0),
        ("general_parameters", "ratio_train_test", 1.5),
        ("train_parameters", "classification_mode", "phonemes"),
    ],
)
def test_out_of_range_values(shipped_config: dict, section, key, value) -> None:
    raw = copy.deepcopy(shipped_config)
    raw[section][key] = value
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        parse_config(raw)


def test_classification_mode_forms(shipped_config: dict) -> None:
    for mode, expected in [
        ("gloss", ["gloss"]),
        ("hamnosys", ["hamnosys"]),
        (["hamnosys", "gloss"], ["hamnosys", "gloss"]),
    ]:
        raw = copy.deepcopy(shipped_config)
        raw["train_parameters"]["classification_mode"] = mode
        assert parse_config(raw).train_parameters.modes() == expected


def test_freeze_lists_must_match_repeats(shipped_config: dict) -> None:
    raw = copy.deepcopy(shipped_config)
    raw["freeze_scheduler"] = {
        "model_params": {"feature_extractor": [True, False], "transformer": [True]},
        "freeze_pattern_repeats": [2, 3],
    }
    with pytest.raises(ConfigError, match="model_params.transformer has 1 entries"):
        parse_config(raw)


def test_num_class_too_small_and_auto(shipped_config: dict) -> None:
    raw = copy.deepcopy(shipped_config)
    raw["heads"]["gloss"]["gloss"]["num_class"] = 1
    with pytest.raises(ConfigError, match="heads.gloss.gloss"):
        parse_config(raw)
    raw["heads"]["gloss"]["gloss"]["num_class"] = "auto"
    assert parse_config(raw).heads.gloss["gloss"].num_class == "auto"


def test_overrides_parse_yaml_values(shipped_config: dict) -> None:
    raw = apply_overrides(
        copy.deepcopy(shipped_config),
        ["train_parameters.epochs=1", "general_parameters.data_path=[a, b]"],
    )
    config = parse_config(raw)
    assert config.train_parameters.epochs == 1
    assert config.general_parameters.data_paths() == ["a", "b"]
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        apply_overrides({}, ["train_parameters.epochs"])


def test_malformed_yaml_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("train_parameters:\n  epochs: [1,\n  lr: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yml:\d+:\d+: malformed YAML"):
        load_config(path)


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    "overrides,expected",
    [
        ([], []),
        (
            [
                "feature_extractor.name=landmarks_conv",
                "train_parameters.landmarks=true",
                'feature_extractor.pretrained_path="/somewhere"',
            ],
            ["feature_extractor.pretrained_path: landmarks_conv does not use it"],
        ),
        (
            ["landmarks_parameters.apply_flip=true"],
            [
                "landmarks_parameters.apply_flip: landmarks are not read "
                "(train_parameters.landmarks is false)"
            ],
        ),
        (
            ["train_parameters.default_fps=25"],
            ["train_parameters.default_fps: only used with train_parameters.time"],
        ),
        (
            ["transfer.patience=5"],
            ["transfer.patience: only used with transfer.freeze_until_convergence"],
        ),
        (
            ['general_parameters.frame_cache_dir="/tmp/frames"'],
            [
                "general_parameters.frame_cache_dir: only used with "
                "general_parameters.frame_cache"
            ],
        ),
        # Given, but at the default value: nothing to say.
        (["transfer.patience=3", "train_parameters.default_fps=null"], []),
    ],
)
def test_settings_that_are_never_read_are_named(overrides, expected) -> None:
    config = load_config(CONFIG, overrides)
    assert config.unused_settings() + unused_model_settings(config) == expected


def test_used_settings_are_not_named() -> None:
    config = load_config(
        CONFIG,
        [
            "train_parameters.time=1.0",
            "train_parameters.default_fps=25",
            "train_parameters.landmarks=true",
            "landmarks_parameters.apply_flip=true",
        ],
    )
    assert not config.unused_settings() + unused_model_settings(config)
