"""Train a multi-head sign recognizer from a YAML config.

python3 train.py --model_config_path train_config.yml [--neptune] [--resume]
                 [--check_data] [--checkpoint CKPT] [--freeze_parts a,b]
                 [--freeze_until_convergence] [--lr_after_unfreeze LR] [--keep_frozen]
                 [--set train_parameters.epochs=1 ...]
"""

from __future__ import annotations

import argparse
import json
import sys

from config.loader import check_data_paths, load_config
from config.schema import SignpipeConfig
from utils.cli import run_cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model_config_path", required=True, help="the YAML config (train_config.yml)"
    )
    parser.add_argument(
        "--neptune", action="store_true", help="also log to neptune.ai (see README)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from <path_to_save>/checkpoints/last.ckpt",
    )
    parser.add_argument(
        "--check_data",
        action="store_true",
        help="decode every frame and landmark file once, list the bad ones, and exit "
        "without training",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train_parameters.epochs=1",
    )
    transfer = parser.add_argument_group("transfer learning (the config's `transfer`)")
    transfer.add_argument("--checkpoint", help="start from this checkpoint's weights")
    transfer.add_argument(
        "--freeze_parts",
        help="comma-separated submodules to freeze, e.g. feature_extractor",
    )
    transfer.add_argument(
        "--freeze_until_convergence",
        action="store_true",
        help="thaw the frozen parts when the validation loss stops improving",
    )
    transfer.add_argument(
        "--patience", type=int, help="validation epochs without improvement (default 3)"
    )
    transfer.add_argument(
        "--lr_after_unfreeze", type=float, help="learning rate from the thaw on"
    )
    transfer.add_argument(
        "--keep_frozen", action="store_true", help="never thaw the frozen parts"
    )
    return parser.parse_args(argv)


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """`--set` overrides plus the flags that are config fields too."""
    overrides = list(args.set)
    if args.neptune:
        overrides.append("general_parameters.neptune=true")
    flags = {
        # JSON is valid YAML: paths with spaces, '#' or ':' survive the override.
        "checkpoint": json.dumps(args.checkpoint) if args.checkpoint else None,
        "freeze_parts": (
            json.dumps([part.strip() for part in args.freeze_parts.split(",")])
            if args.freeze_parts is not None
            else None
        ),
        "freeze_until_convergence": "true" if args.freeze_until_convergence else None,
        "patience": args.patience,
        "lr_after_unfreeze": args.lr_after_unfreeze,
        "keep_frozen": "true" if args.keep_frozen else None,
    }
    overrides += [f"transfer.{k}={v}" for k, v in flags.items() if v is not None]
    return overrides


def load_run_config(args: argparse.Namespace) -> SignpipeConfig:
    """The validated config, legacy notes printed."""
    notes: list[str] = []
    config = load_config(args.model_config_path, overrides_from_args(args), notes)
    for note in notes:
        print(note, file=sys.stderr)
    return config


def train(args: argparse.Namespace) -> int:
    """Validate the config first (fast), then import the heavy parts and train."""
    config = load_run_config(args)
    # torch and Lightning load only after the config checks passed.
    if args.check_data:
        check_data_paths(config)
        # pylint: disable-next=import-outside-toplevel
        from datasets.check import check_data

        return check_data(config)
    # pylint: disable=import-outside-toplevel
    from training.preflight import check_before_data
    from training.run import RunOptions, run_training

    # Data paths, model names, weights files, devices, Neptune: every problem at once.
    check_before_data(config)
    return run_training(config, RunOptions(resume=args.resume))


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one message and exit 2."""
    return run_cli(lambda: train(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
