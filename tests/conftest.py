"""Shared fixtures: tiny generated data and the shipped config, shrunk to test size."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Under pytest-xdist each worker gets one core's worth of threads (torch, OpenMP and
# the processes the tests start), so that two workers do not fight over two cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# pylint: disable=wrong-import-position
from helpers import TINY_OVERRIDES, merge

from data_preprocessing.make_sample_dataset import make_sample_dataset


@pytest.fixture(scope="session")
def shipped_config() -> dict:
    """The raw train_config.yml users run."""
    with (ROOT / "train_config.yml").open(encoding="utf-8") as file:
        return yaml.safe_load(file)


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated dataset in the HearAI layout (shared, read-only)."""
    root = tmp_path_factory.mktemp("sample")
    make_sample_dataset(root, glosses=3, clips_per_gloss=4, seed=1, size=40)
    return root


@pytest.fixture
def tiny_config(shipped_config: dict, sample_root: Path, tmp_path: Path) -> dict:
    """The shipped config, shrunk, on the tiny dataset, saving under tmp_path."""
    config = merge(copy.deepcopy(shipped_config), copy.deepcopy(TINY_OVERRIDES))
    config["general_parameters"]["data_path"] = str(sample_root)
    config["general_parameters"]["path_to_save"] = str(tmp_path / "run")
    return config


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a config dict to a YAML file and return its path."""

    def write(config: dict, name: str = "config.yml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _quiet_and_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
