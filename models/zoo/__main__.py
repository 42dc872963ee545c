"""List the model zoo, or add a trained checkpoint to it.

Usage::

    python3 -m models.zoo list
    python3 -m models.zoo pack NAME CHECKPOINT --recipe RECIPE --data TEXT
        [--command TEXT] [--test TEXT] [--licence TEXT]

`pack` writes `models/zoo/NAME.ckpt` (the checkpoint without optimiser and loop
state) and its manifest entry: the recipe, the data, the command that trained it,
the current git commit, the validation figures the checkpoint recorded, the file's
SHA-256, and the licence of the data it was trained on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from models.zoo import MANIFEST, ZOO_DIR, manifest, sha256, strip_checkpoint
from utils.cli import run_cli
from utils.errors import UserError
from utils.files import load_data_only, write_atomically


def _commit() -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ZOO_DIR,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return found.stdout.strip() or None


def pack(args: argparse.Namespace) -> int:
    """Write the zoo file and its manifest entry."""
    if not args.name.replace("_", "").isalnum():
        raise UserError(f"NAME must be letters, digits and _, got {args.name!r}")
    checkpoint = load_data_only(args.checkpoint, "CHECKPOINT")
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint:
        raise UserError(f"{args.checkpoint}: not a train.py checkpoint")
    target = ZOO_DIR / f"{args.name}.ckpt"
    write_atomically(
        target, lambda file: torch.save(strip_checkpoint(checkpoint), file)
    )
    val = {
        key: round(float(value), 4)
        for key, value in (checkpoint.get("val_metrics") or {}).items()
    }
    entries = manifest()
    entries[args.name] = {
        "file": target.name,
        "sha256": sha256(target),
        "recipe": args.recipe,
        "data": args.data,
        "command": args.command,
        "commit": _commit(),
        "selected_on": "val",
        "val": val,
        "test": args.test,
        "licence": args.licence,
    }
    text = json.dumps(dict(sorted(entries.items())), indent=2, ensure_ascii=False)
    write_atomically(MANIFEST, lambda file: file.write((text + "\n").encode()))
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) and its entry")
    return 0


def show() -> int:
    """Print the zoo's models, one line each."""
    for name, entry in sorted(manifest().items()):
        val = entry.get("val") or {}
        figures = ", ".join(
            f"{key} {value:.3f}" for key, value in val.items() if "top" in key
        )
        print(f"{name}: {entry.get('data', '')} ({figures or 'no val figures'})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 on a user error."""
    parser = argparse.ArgumentParser(prog="python3 -m models.zoo")
    commands = parser.add_subparsers(dest="command_name", required=True)
    commands.add_parser("list", help="the zoo's models")
    packer = commands.add_parser("pack", help="add a trained checkpoint to the zoo")
    packer.add_argument("name", metavar="NAME")
    packer.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    packer.add_argument("--recipe", required=True)
    packer.add_argument("--data", required=True, help="what it was trained on")
    packer.add_argument("--command", help="the command that trained it")
    packer.add_argument("--test", help="test figures, where measured")
    packer.add_argument(
        "--licence",
        default="",
        help="the licence of the data the weights were trained on",
    )
    args = parser.parse_args(argv)
    if args.command_name == "list":
        return run_cli(show)
    return run_cli(lambda: pack(args))


if __name__ == "__main__":
    sys.exit(main())
