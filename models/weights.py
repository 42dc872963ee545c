"""Weights files read from local paths (`feature_extractor.pretrained_path`): checked
before anything is built, read as data only (nothing unpickled beyond tensors)."""

from __future__ import annotations

from pathlib import Path

import safetensors.torch

from utils.errors import ConfigError
from utils.files import file_problem, load_data_only

WEIGHTS_KEY = "feature_extractor.pretrained_path"


def check_weights_file(pretrained_path: str | None) -> None:
    """Refuse a `pretrained_path` that is not a regular file, saying what it is."""
    problem = None if pretrained_path is None else file_problem(Path(pretrained_path))
    if problem is not None:
        raise ConfigError(
            f"{WEIGHTS_KEY}: '{pretrained_path}' {problem} (weights are read from "
            "local files only)"
        )


def load_weights_file(pretrained_path: str) -> object:
    """A weights file as data: a `.safetensors` file (tensors only, nothing
    unpickled), otherwise a PyTorch file loaded with `weights_only=True`."""
    if not pretrained_path.endswith(".safetensors"):
        return load_data_only(pretrained_path, WEIGHTS_KEY)
    try:
        return safetensors.torch.load_file(pretrained_path, device="cpu")
    except Exception as error:  # pylint: disable=broad-exception-caught
        reason = (str(error).splitlines() or [""])[0][:160]
        raise ConfigError(
            f"{WEIGHTS_KEY}: cannot read {pretrained_path} as a safetensors file "
            f"({type(error).__name__}: {reason})"
        ) from None
