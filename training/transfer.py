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


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The weights of a Lightning checkpoint (or a plain state dict file) and its
    class names per head (empty when it has none)."""
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
    names = (checkpoint.get("hyper_parameters") or {}).get("label_names")
    if not isinstance(names, dict) or not all(
        isinstance(v, list) and all(isinstance(n, str) for n in v)
        for v in names.values()
    ):
        names = {}
    return state, names


def _rows_by_name(
    source: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    source_names: dict[str, list[str]],
    target_names: dict[str, list[str]],
) -> dict[str, torch.Tensor]:
    """A head's per-class tensors (its classifier's weight rows and biases) whose
    class count differs, filled row by row from the checkpoint's classes of the same
    name: a model of WLASL2000 starts a WLASL100 head with its 100 glosses' rows.
    Classes the checkpoint lacks keep their fresh rows; a head sharing no class name
    is left out."""
    filled = {}
    for key, value in source.items():
        head = key.removeprefix("model.heads.heads.").split(".")[0]
        if not key.startswith("model.heads.heads.") or key not in target:
            continue
        old, new = source_names.get(head) or [], target_names.get(head) or []
        fresh = target[key]
        per_class = (value.shape[0], fresh.shape[0]) == (len(old), len(new))
        if value.shape == fresh.shape or value.shape[1:] != fresh.shape[1:]:
            continue
        if not per_class:
            continue
        row_of = {name: row for row, name in enumerate(old)}
        pairs = [(i, row_of[name]) for i, name in enumerate(new) if name in row_of]
        if pairs:
            rows = fresh.clone()
            to_rows, from_rows = zip(*pairs)
            rows[list(to_rows)] = value[list(from_rows)].to(rows.dtype)
            filled[key] = rows
    return filled


def load_matching_weights(module: nn.Module, path: str | Path) -> dict[str, Counter]:
    """Copy every tensor whose name and shape match into `module`.

    A head whose class count differs takes the rows of the checkpoint's classes
    with the same names (both models' `label_names`), when they share any; the rest
    of it, and anything else that does not fit, keeps its fresh initialisation.

    Returns:
        Tensor counts per readable part: loaded, rows matched by class name,
        re-initialised (shape differs) and new (not in the checkpoint).
    """
    source, source_names = read_checkpoint(path)
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
    by_name = _rows_by_name(
        source, target, source_names, getattr(module, "label_names", None) or {}
    )
    module.load_state_dict({**loaded, **by_name}, strict=False)
    return {
        "loaded from the checkpoint": Counter(_part(k) for k in loaded),
        "class rows matched by name": Counter(_part(k) for k in by_name),
        "re-initialised (shape differs)": Counter(
            _part(k)
            for k in source
            if k in target and k not in loaded and k not in by_name
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
