"""Starting a model from another run's checkpoint: load what fits, report the rest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from torch import nn

from utils.errors import ConfigError
from utils.files import load_data_only


def _part(key: str, depth: int = 3) -> str:
    """`model.heads.heads.gloss.1.weight` -> `heads.heads.gloss` (a readable group)."""
    parts = key.removeprefix("model.").split(".")
    return ".".join(parts[:depth])


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a Lightning checkpoint (or a plain state dict file)."""
    checkpoint = load_data_only(path, "--checkpoint")
    state = (
        checkpoint.get("state_dict", checkpoint)
        if isinstance(checkpoint, dict)
        else None
    )
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConfigError(f"--checkpoint: '{path}' holds no model weights")
    return state


def load_matching_weights(module: nn.Module, path: str | Path) -> dict[str, Counter]:
    """Copy every tensor whose name and shape match into `module`.

    Heads whose class count differs (and anything else that does not fit) keep their
    fresh initialisation.

    Returns:
        Tensor counts per readable part: loaded, re-initialised (shape differs) and
        new (not in the checkpoint).
    """
    source = read_state_dict(path)
    # Weights saved from the bare pipeline lack the LightningModule's "model." prefix.
    if not any(key.startswith("model.") for key in source):
        source = {f"model.{key}": value for key, value in source.items()}
    target = module.state_dict()
    loaded = {
        k: v for k, v in source.items() if k in target and v.shape == target[k].shape
    }
    if not any(key.startswith("model.") for key in loaded):
        raise ConfigError(
            f"--checkpoint: no weight of '{path}' fits this model (a different "
            "feature extractor or encoder?)"
        )
    module.load_state_dict(loaded, strict=False)
    return {
        "loaded from the checkpoint": Counter(_part(k) for k in loaded),
        "re-initialised (shape differs)": Counter(
            _part(k) for k in source if k in target and k not in loaded
        ),
        "new (not in the checkpoint)": Counter(
            _part(k) for k in target if k not in source and k.startswith("model.")
        ),
    }


def describe_transfer(report: dict[str, Counter]) -> str:
    """Lines for the user: which parts were loaded and which were not."""
    lines = []
    for kind, counts in report.items():
        if counts:
            parts = ", ".join(f"{part} ({n})" for part, n in sorted(counts.items()))
            lines.append(f"{kind}: {parts}")
    return "\n".join(lines)
