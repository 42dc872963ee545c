"""The model zoo: trained checkpoints shipped with signpipe, loaded by name.

`predict.py wlasl300_hands VIDEOS OUT`, `demo.py wlasl300_hands` and
`test.py partial wlasl300_hands val` take a zoo name wherever they take a checkpoint
(`evaluation.checkpoints.load_checkpoint` resolves it with `zoo_file`). Each model is
one weights-only file in this folder (a `train.py` checkpoint without the optimiser
and loop state: the config, class names and weights), listed in `manifest.json` with
its recipe, data, commit, validation figures and the data's licence (see README.md
here). `python3 -m models.zoo list` shows them; `python3 -m models.zoo pack NAME
CHECKPOINT ...` adds one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from utils.errors import UserError

#: The folder holding the zoo's files and manifest.
ZOO_DIR = Path(__file__).resolve().parent
MANIFEST = ZOO_DIR / "manifest.json"
#: The checkpoint keys a zoo file keeps (what `load_checkpoint` reads).
KEPT_KEYS = ("state_dict", "hyper_parameters", "val_metrics")


def manifest() -> dict[str, dict[str, Any]]:
    """The zoo's entries by name (empty when the manifest is missing)."""
    try:
        data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def names() -> list[str]:
    """The names of the zoo's models."""
    return sorted(manifest())


def zoo_file(name: str) -> Path | None:
    """The weights file of the zoo model `name`, or None when no model has that name."""
    entry = manifest().get(str(name))
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        return None
    path = ZOO_DIR / Path(entry["file"]).name
    return path if path.is_file() else None


def resolve(path: str | Path) -> Path:
    """A checkpoint file as given, or the file of a zoo model named `path`.

    Raises:
        UserError: neither a file nor a zoo name (the message lists the zoo).
    """
    path = Path(path)
    if os.path.lexists(path):
        return path
    found = zoo_file(str(path)) if len(path.parts) == 1 else None
    if found is not None:
        return found
    known = ", ".join(names()) or "none"
    raise UserError(
        f"checkpoint {path} does not exist or is not a file, nor the name of a "
        f"model in the zoo ({known})"
    )


def sha256(path: Path) -> str:
    """The file's SHA-256, as the manifest records it."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def strip_checkpoint(checkpoint: dict) -> dict:
    """A `train.py` checkpoint without what only resuming training needs."""
    return {key: checkpoint[key] for key in KEPT_KEYS if key in checkpoint}
