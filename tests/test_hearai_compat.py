"""HearAI users' configs, data folders and commands run as they are."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import train
from config.hearai import translate_legacy
from config.loader import load_config, parse_config
from models.pipeline import build_pipeline
from utils.errors import ConfigError

# A HearAI-style config, written the way HearAI's files are (quoted strings,
# True/False, plain floats), with every legacy key signpipe translates.
HEARAI_CONFIG = """\
general_parameters:
    data_paths: ["{root}"]
    ratio_train_test: 0.8
    workers: 0
    gpu: -1
    path_to_save: "saved_model.pth"
    seed: 2021
    neptune: False

augmentations_parameters:
    apply_resize: True
    apply_center_crop: True
    apply_random_erasing: True
    apply_random_rotation: True
    apply_color_jitter: True
    apply_rgb_shift: True
    apply_blur: True

    resize_size: 36
    center_crop_size: 32
    random_erasing_probability: 0.5
    random_rotation_degree: 5
    color_jitter_brightness: 0.1
    color_jitter_contrast: 0.1
    color_jitter_saturation: 0.1
    color_jitter_hue: 0.05
    rgb_shift_r_shift_limit: 20
    rgb_shift_g_shift_limit: 20
    rgb_shift_b_shift_limit: 20
    blur_limit: 5

train_parameters:
    classification_mode: "{mode}"
    epochs: 10
    batch_size: 4
    lr: 0.001
    num_segments: 8
    fast_dev_run: True
    pre_training: False
    use_frames: True
    use_landmarks: False
    time: null
    warmup_steps: 20.0
    multiply_lr_step: 0.95

feature_extractor:
    name: "cnn_extractor"
    model_path: "resnet10t"
    representation_size: 32
    load_pretrained: True

transformer:
    name: "sign_language_transformer"
    feedforward_size: 64
    transformer_output_size: 784
    num_attention_heads: 4
    num_encoder_layers: 1
    output_size: 32
    dropout_rate: 0.1

heads:
    model:
        additional_layers: 1
        dropout_rate: 0.1
    gloss:
        gloss:
            num_class: 2400
            loss_weight: 1
    hamnosys:
        symmetry_operator:
            num_class: 9
            loss_weight: 0
        hand_shape_base_form:
            num_class: 12
            loss_weight: 0.5
        hand_shape_thumb_position:
            num_class: 4
            loss_weight: 0.5
        hand_shape_bending:
            num_class: 6
            loss_weight: 0
        hand_position_finger_direction:
            num_class: 18
            loss_weight: 0
        hand_position_palm_orientation:
            num_class: 8
            loss_weight: 0
        hand_location_x:
            num_class: 5
            loss_weight: 0
        hand_location_y:
            num_class: 37
            loss_weight: 0

freeze_scheduler:
    model_params:
        feature_extractor: [True, False]
        transformer: [False, True]
    freeze_pattern_repeats: [5, 3]
    freeze_mode: "epoch"
    verbose: True
"""
LEGACY_KEYS = [
    "general_parameters.data_paths",
    "train_parameters.use_frames",
    "train_parameters.use_landmarks",
    "feature_extractor.load_pretrained",
    "transformer.transformer_output_size",
]


@pytest.fixture
def hearai_root(tmp_path: Path) -> Path:
    """Three samples in HearAI's layout, eight frames each, headerless annotations."""
    root = tmp_path / "hearai_data"
    rng = np.random.default_rng(0)
    for name in ("1", "2", "3"):
        (root / name).mkdir(parents=True)
        for index in range(8):
            pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}_{index}.jpg")
    (root / "test_hamnosys.txt").write_text(
        "1 0 7 0 1 1 1 1 1 1 1\n2 0 7 0 1 1 1 1 1 1 1\n3 0 7 0 1 1 1 1 1 1 1\n",
        encoding="utf-8",
    )
    (root / "test_gloss.txt").write_text(
        "1 0 7 8\n2 0 7 8\n3 0 7 8\n", encoding="utf-8"
    )
    return root


@pytest.mark.parametrize("mode", ["gloss", "hamnosys"])
def test_hearai_config_runs_unchanged(hearai_root, tmp_path, monkeypatch, capsys, mode):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"train_config_{mode}.yml"
    path.write_text(HEARAI_CONFIG.format(root=hearai_root, mode=mode), encoding="utf-8")
    assert train.main(["--model_config_path", str(path)]) == 0
    err = capsys.readouterr().err
    for key in LEGACY_KEYS:
        assert sum(line.startswith(f"note: {key} ") for line in err.splitlines()) == 1
    assert "starts from random weights" in err
    assert (tmp_path / "saved_model.pth").is_file(), "weights written where HearAI did"
    assert (tmp_path / "saved_model" / "config.yml").is_file()
    assert list((tmp_path / "saved_model" / "checkpoints").glob("*.ckpt"))


def test_each_legacy_key_translates(tmp_path) -> None:
    raw = {
        "general_parameters": {"data_paths": ["a", "b"]},
        "train_parameters": {"use_frames": False, "use_landmarks": True},
        "feature_extractor": {"name": "cnn_extractor", "load_pretrained": True},
        "transformer": {"transformer_output_size": 784},
        "freeze_scheduler": "None",
    }
    notes = translate_legacy(raw)
    assert raw["general_parameters"] == {"data_path": ["a", "b"]}
    assert raw["train_parameters"] == {"landmarks": True}
    assert raw["feature_extractor"] == {"name": "landmarks_extractor"}
    assert not raw["transformer"]
    assert raw["freeze_scheduler"] is None
    assert len(notes) == 6
    path = tmp_path / "c.yml"
    path.write_text("transformer: None\n", encoding="utf-8")
    config = load_config(path)
    assert config.transformer.name == "fake_transformer"


def test_legacy_and_current_name_with_different_values(tmp_path) -> None:
    path = tmp_path / "mixed.yml"
    path.write_text(
        "general_parameters:\n  data_paths: [a]\n  data_path: b\n", encoding="utf-8"
    )
    with pytest.raises(
        ConfigError, match="data_paths .* and general_parameters.data_path"
    ):
        load_config(path)
    path.write_text(
        "general_parameters:\n  data_paths: [a]\n  data_path: [a]\n", encoding="utf-8"
    )
    assert load_config(path).general_parameters.data_paths() == ["a"]


def test_truly_unknown_keys_stay_errors(tmp_path) -> None:
    path = tmp_path / "typo.yml"
    path.write_text("train_parameters:\n  use_frame: true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="train_parameters.use_frame: unknown key"):
        load_config(path)


def test_heads_model_shapes_every_head(tiny_config) -> None:
    raw = copy.deepcopy(tiny_config)
    raw["heads"]["model"] = {"additional_layers": 2, "dropout_rate": 0.3}
    pipeline = build_pipeline(parse_config(raw), {"gloss": 4})
    layers = list(pipeline.heads.heads["gloss"])
    linear = [m for m in layers if m.__class__.__name__ == "Linear"]
    dropout = [m for m in layers if m.__class__.__name__ == "Dropout"]
    assert len(linear) == 3 and all(d.p == 0.3 for d in dropout) and len(dropout) == 3
