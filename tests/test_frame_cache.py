"""The frame cache: decoded, resized clips in one memory map, built once, reused."""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

import pytest
import torch

import train
from config.loader import parse_config
from training.datamodule import SignDataModule
from utils.errors import ConfigError


def cached_config(tiny_config: dict, tmp_path: Path) -> dict:
    """The tiny config with the frame cache on, in tmp_path."""
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["frame_cache"] = True
    config["general_parameters"]["frame_cache_dir"] = str(tmp_path / "cache")
    return config


def test_cached_clips_equal_decoded_clips(tiny_config, tmp_path) -> None:
    plain = SignDataModule(parse_config(tiny_config))
    cached = SignDataModule(parse_config(cached_config(tiny_config, tmp_path)))
    assert len(list((tmp_path / "cache").glob("frames-*.npy"))) == 1
    for module in (plain, cached):
        module.config.general_parameters.seed = 0
    reference = plain.dataset(plain.data.val_samples, train=False)
    from_cache = cached.dataset(cached.data.val_samples, train=False)
    for index, item in enumerate(reference):
        expected, actual = item["frames"], from_cache[index]["frames"]
        assert actual.dtype == torch.uint8 and actual.shape == expected.shape
        assert torch.equal(actual, expected)


def test_cache_is_reused_and_rebuilt_when_frames_change(tiny_config, tmp_path) -> None:
    config = parse_config(cached_config(tiny_config, tmp_path))
    SignDataModule(config)
    (cache_file,) = (tmp_path / "cache").glob("frames-*.npy")
    built = cache_file.stat().st_mtime_ns
    time.sleep(0.01)
    SignDataModule(config)
    assert cache_file.stat().st_mtime_ns == built, "opened, not rebuilt"
    root = Path(tiny_config["general_parameters"]["data_path"])
    frame = next(root.glob("*/*_3.jpg"))
    copy_root = tmp_path / "changed"
    shutil.copytree(root, copy_root)
    (copy_root / frame.parent.name / frame.name).touch()
    raw = cached_config(tiny_config, tmp_path)
    raw["general_parameters"]["data_path"] = str(copy_root)
    SignDataModule(parse_config(raw))
    assert len(list((tmp_path / "cache").glob("frames-*.npy"))) == 2


def test_training_reads_the_cache(tiny_config, write_config, tmp_path) -> None:
    config = cached_config(tiny_config, tmp_path)
    config["train_parameters"]["fast_dev_run"] = True
    config["augmentations_parameters"]["apply_color_jitter"] = True
    config["general_parameters"]["workers"] = 1
    assert train.main(["--model_config_path", str(write_config(config))]) == 0


def test_cache_needs_resize_and_crop(tiny_config, tmp_path) -> None:
    raw = cached_config(tiny_config, tmp_path)
    raw["augmentations_parameters"]["apply_center_crop"] = False
    with pytest.raises(ConfigError, match="general_parameters.frame_cache"):
        parse_config(raw)
