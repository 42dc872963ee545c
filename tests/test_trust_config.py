"""A config file cannot take the machine down, and HearAI's own configs load.

A small bad file must end in one short message: aliases that expand to gigabytes,
huge or absurd values, and values for transforms that are switched off.
"""

from __future__ import annotations

import copy
import time
import types
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import train
from config.augmentations import TRANSFORM_SETTINGS
from config.loader import MAX_PROBLEMS, load_config, parse_config
from config.schema import SignpipeConfig
from utils.errors import MAX_QUOTED_CHARS, ConfigError

# Numbers that are not sizes or counts: rates, weights and colour jitter strengths
# (whose validators check their own ranges).
UNBOUNDED_NUMBERS = {
    "lr",
    "loss_weight",
    "lr_after_unfreeze",
    "color_jitter_brightness",
    "color_jitter_contrast",
    "color_jitter_saturation",
    "color_jitter_hue",
}


def write(tmp_path: Path, text: str) -> Path:
    """A config file holding `text`."""
    path = tmp_path / "config.yml"
    path.write_text(text, encoding="utf-8")
    return path


def alias_bomb(levels: int) -> str:
    """A YAML list of `10 ** levels` items in a few hundred bytes (each level is ten
    aliases of the one before)."""
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        aliases = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"  a{level}: &a{level} [{aliases}]")
    return "general_parameters:\n" + "\n".join(lines) + "\n"


# ------------------------------------------------------- messages stay short


def test_alias_bomb_is_refused_naming_the_file(tmp_path) -> None:
    path = write(tmp_path, alias_bomb(6) + "  workers: *a5\n")
    started = time.monotonic()
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert len(message) < 500, f"{len(message)} characters"
    assert str(path) in message and "expands to more than" in message


def test_alias_bomb_in_a_set_override_is_refused(tmp_path) -> None:
    levels = [f"&a0 [{', '.join(['x'] * 10)}]"]
    for level in range(1, 6):
        levels.append(f"&a{level} [{', '.join([f'*a{level - 1}'] * 10)}]")
    path = write(tmp_path, "train_parameters: {epochs: 1}\n")
    with pytest.raises(ConfigError, match="--set general_parameters.workers: the YAML"):
        load_config(path, [f"general_parameters.workers=[{', '.join(levels)}]"])


def test_a_huge_value_is_quoted_short(tmp_path) -> None:
    path = write(tmp_path, f"general_parameters:\n  workers: {'x' * 1_000_000}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "general_parameters.workers" in message
    assert len(message) < 200 + MAX_QUOTED_CHARS + len(str(path))


def test_many_problems_are_capped(tmp_path) -> None:
    items = ", ".join(f"x{index}" for index in range(500))
    path = write(tmp_path, f"general_parameters:\n  data_path: [{items}, [1]]\n")
    path.write_text(
        "freeze_scheduler:\n  model_params: {transformer: [true]}\n"
        f"  freeze_pattern_repeats: [{items}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    lines = str(error.value).splitlines()
    assert len(lines) == 1 + MAX_PROBLEMS + 1, lines[:3]
    assert lines[-1] == f"... and {500 - MAX_PROBLEMS} more problem(s)"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ("&a [x, *a]", "line 2: an alias repeats a structure inside itself"),
        ("1" * 5000, "unreadable YAML value"),
        ("2021-13-45", "unreadable YAML value: month must be in 1..12"),
    ],
    ids=["deep", "recursive-alias", "huge-int", "bad-date"],
)
def test_unreadable_yaml_is_a_config_error(tmp_path, value, expected) -> None:
    path = write(tmp_path, f"general_parameters:\n  data_path: {value}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(str(path)) and expected in str(error.value)
    assert len(str(error.value)) < 500


# -------------------------------------------------------------- absurd sizes


@pytest.mark.parametrize(
    "key, limit",
    [
        ("feature_extractor.representation_size", 16384),
        ("augmentations_parameters.resize_size", 4096),
        ("augmentations_parameters.center_crop_size", 4096),
        ("train_parameters.num_segments", 10000),
        ("train_parameters.batch_size", 65536),
        ("transformer.output_size", 16384),
        ("transformer.feedforward_size", 65536),
        ("heads.gloss.gloss.num_class", 1000000),
        ("general_parameters.seed", 4294967295),
    ],
)
def test_absurd_size_is_refused_with_its_limit(shipped_config, key, limit) -> None:
    raw = copy.deepcopy(shipped_config)
    *sections, field = key.split(".")
    node = raw
    for section in sections:
        node = node.setdefault(section, {})
    node[field] = 10**9 if limit < 10**9 else 10**12
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert f"{key}: Input should be less than or equal to {limit}" in str(error.value)


def _numbers_without_upper_bound(model: type[BaseModel], prefix: str) -> list[str]:
    """Dotted keys of the int/float fields under `model` that have no `le`/`lt`."""
    missing = []
    for name, field in model.model_fields.items():
        key, numbers = f"{prefix}{name}", set()
        annotation = field.annotation
        union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        for kind in typing.get_args(annotation) if union else (annotation,):
            if typing.get_origin(kind) is dict:
                kind, key = typing.get_args(kind)[1], f"{key}.<name>"
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                missing += _numbers_without_upper_bound(kind, f"{key}.")
            elif typing.get_origin(kind) is typing.Annotated:
                _, *extras = typing.get_args(kind)
                limits = [m for e in extras for m in getattr(e, "metadata", [e])]
                if not any(hasattr(m, "le") for m in limits):
                    numbers.add(typing.get_args(kind)[0])
            elif kind in (int, float):
                numbers.add(kind)
        bounded = any(hasattr(m, "le") or hasattr(m, "lt") for m in field.metadata)
        if numbers and not bounded and name not in UNBOUNDED_NUMBERS:
            missing.append(key)
    return missing


def test_every_size_field_has_an_upper_bound() -> None:
    assert not _numbers_without_upper_bound(SignpipeConfig, "")


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_numbers_are_finite(tmp_path, value) -> None:
    path = write(tmp_path, f"train_parameters:\n  lr: {value}\n")
    with pytest.raises(ConfigError, match="train_parameters.lr: Input should be"):
        load_config(path)


@pytest.mark.parametrize("value", ['""', '"  "'])
def test_empty_path_to_save_is_refused(tmp_path, value) -> None:
    path = write(tmp_path, f"general_parameters:\n  path_to_save: {value}\n")
    with pytest.raises(ConfigError, match="general_parameters.path_to_save: give the"):
        load_config(path)


# ------------------------------------------- values of switched-off transforms

# A value each setting refuses while its transform is on.
INVALID = {
    "resize_size": 0,
    "center_crop_size": -1,
    "random_erasing_probability": 2,
    "random_rotation_degree": 500,
    "color_jitter_brightness": -1,
    "color_jitter_contrast": [2, 1],
    "color_jitter_saturation": "much",
    "color_jitter_hue": 0.9,
    "rgb_shift_r_shift_limit": 0.2,
    "rgb_shift_g_shift_limit": 300,
    "rgb_shift_b_shift_limit": True,
    "blur_limit": 1,
}
SETTINGS = [
    (switch, key) for switch, keys in TRANSFORM_SETTINGS.items() for key in keys
]


def test_every_setting_is_covered() -> None:
    assert sorted(INVALID) == sorted(key for _, key in SETTINGS)


@pytest.mark.parametrize("switch, key", SETTINGS)
def test_setting_of_a_switched_off_transform_is_a_note(shipped_config, switch, key):
    raw = copy.deepcopy(shipped_config)
    raw.pop("augmentations_parameters")
    raw["augmentations_parameters"] = {switch: False, key: INVALID[key]}
    if switch in ("apply_resize", "apply_center_crop"):
        raw["general_parameters"]["frame_cache"] = False
    config = parse_config(copy.deepcopy(raw))
    notes = config.unused_settings()
    assert len(notes) == 1 and notes[0].startswith(
        f"augmentations_parameters.{key}: only used with "
        f"augmentations_parameters.{switch}; "
    ), notes
    raw["augmentations_parameters"][switch] = True
    with pytest.raises(ConfigError, match=f"augmentations_parameters.{key}"):
        parse_config(raw)


def test_hearai_shipped_augmentations_load(tmp_path) -> None:
    # HearAI's train_config.yml section, as shipped.
    path = write(
        tmp_path,
        """\
augmentations_parameters:
    apply_random_rotation: False
    apply_color_jitter: False
    apply_rgb_shift: False
    apply_blur: False

    resize_size: 256
    center_crop_size: 256
    random_rotation_degree: 5
    color_jitter_brightness: 0.1
    color_jitter_contrast: 0.1
    color_jitter_saturation: 0.1
    color_jitter_hue: 0.05
    rgb_shift_r_shift_limit: 0.2
    rgb_shift_g_shift_limit: 0.2
    rgb_shift_b_shift_limit: 0.2
    blur_limit: 1
""",
    )
    config = load_config(path)
    augmentations = config.augmentations_parameters
    assert augmentations.blur_limit == 7 and augmentations.rgb_shift_r_shift_limit == 20
    notes = config.unused_settings()
    assert sum("is not checked while it is off" in note for note in notes) == 4
    assert any(
        note.startswith("augmentations_parameters.blur_limit: ") for note in notes
    )
    reloaded = parse_config(yaml.safe_load(yaml.safe_dump(config.model_dump())))
    assert reloaded.augmentations_parameters.model_dump() == augmentations.model_dump()


def test_an_invalid_switch_leaves_its_settings_checked(shipped_config) -> None:
    raw = copy.deepcopy(shipped_config)
    raw["augmentations_parameters"].update(apply_blur="maybe", blur_limit=1)
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert "augmentations_parameters.apply_blur" in str(error.value)
    assert "augmentations_parameters.blur_limit" in str(error.value)


# ---------------------------------------------- HearAI notes before the error


def test_hearai_notes_come_before_the_error(tmp_path, capsys) -> None:
    path = write(
        tmp_path,
        "general_parameters:\n  data_paths: [data]\n"
        "train_parameters:\n  use_frames: False\n",
    )
    assert train.main(["--model_config_path", str(path)]) == 2
    # The error names a value the user never wrote; the notes say where it came from.
    # (The problem is found while the config is validated when the models are
    # imported already, else by the check before training: either way after the
    # notes.)
    lines = capsys.readouterr().err.splitlines()
    assert lines[:2] == [
        "note: general_parameters.data_paths is now general_parameters.data_path",
        "note: train_parameters.use_frames (false) is now "
        "feature_extractor.name: landmarks_extractor",
    ]
    assert lines[2].startswith("error: "), lines
    assert (
        "feature_extractor.name: landmarks_extractor reads landmarks; set "
        "train_parameters.landmarks: true"
    ) in "\n".join(lines[2:])


def test_notes_before_a_legacy_conflict(tmp_path, capsys) -> None:
    path = write(
        tmp_path,
        "freeze_scheduler: None\n"
        "general_parameters:\n  data_paths: [a]\n  data_path: b\n",
    )
    assert train.main(["--model_config_path", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "note: freeze_scheduler (None) is now freeze_scheduler: null"
    assert lines[1].startswith("error: general_parameters.data_paths (HearAI's name)")
