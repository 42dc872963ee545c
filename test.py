"""Evaluate a trained checkpoint: exact top-k metrics, losses and plots per head.

python3 test.py partial CHECKPOINT SET [--shuffle_frames] [--bar_graph]
                [--confusion_matrix] [--heatmap] [--save] [--output_dir DIR]
                [--data_path PATH ...] [--batch_size N]
python3 test.py full CHECKPOINT [--save] [--output_dir DIR] [--data_path PATH ...]
                [--batch_size N]

The checkpoint carries everything needed: the config (data, sampling, model), the
class counts and the label names. The data is rebuilt from the checkpoint's config
(or `--data_path`), with the same seeded split as training and evaluation
transforms (deterministic frame sampling, no augmentation), even for SET=train.

`partial` evaluates one set (train, val or test; test needs a `split` column).
`--shuffle_frames` permutes the sampled frames of every clip with one seeded
permutation, to show how much the model relies on temporal order. `full` evaluates
test (val when there is no test split), val and test with shuffled frames, and
bundles them with the run's best validation loss and accuracy.

The results JSON is printed on stdout and a per-head table goes to stderr. `--save`
(or `--output_dir`) also writes the JSON and the plots to `<run>/results/` (run = the
folder holding the checkpoint's `checkpoints/` folder) or to DIR, named
`<checkpoint stem>_<set>-results.json` (`full`: `<checkpoint stem>_full-results.json`)
and `<checkpoint stem>_<set>-<head>-<plot>.png`. The plot flags choose the plots of
`partial`; with none given, `--save` draws all three. `full` draws all three for its
test set (val when the data has no test split).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation.evaluator import (
    SETS,
    Evaluator,
    read_training_record,
    results_dir,
    safe_name,
    save_partial,
    save_plots,
    write_json,
)
from evaluation.metrics import CompRes, format_table
from evaluation.plots import PLOT_KINDS
from utils.cli import run_cli
from utils.errors import UserError


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `partial` and `full`."""
    parser.add_argument("checkpoint", help="a checkpoint written by train.py")
    parser.add_argument(
        "--save",
        action="store_true",
        help="write the JSON (and plots) to <run>/results/ or --output_dir",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="write the results here instead of <run>/results/ (implies --save)",
    )
    parser.add_argument(
        "--data_path",
        nargs="+",
        default=None,
        metavar="PATH",
        help="dataset root(s) instead of the checkpoint's general_parameters.data_path",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=None,
        help="evaluation batch size (default: the checkpoint's batch_size)",
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    one_set = commands.add_parser("partial", help="evaluate one set")
    add_common_options(one_set)
    one_set.add_argument("set", help="train, val or test")
    one_set.add_argument(
        "--shuffle_frames",
        action="store_true",
        help="permute every clip's frames in time with one seeded permutation",
    )
    for kind, text in (
        ("bar_graph", "per-class accuracy bars"),
        ("confusion_matrix", "confusion matrix"),
        ("heatmap", "per-class precision/recall/F1 heatmap"),
    ):
        one_set.add_argument(
            f"--{kind}", action="store_true", help=f"plot the {text} of every head"
        )
    bundle = commands.add_parser(
        "full", help="test (or val), val and shuffled test, with the training record"
    )
    add_common_options(bundle)
    args = parser.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch_size must be positive, got {args.batch_size}")
    return args


def partial(args: argparse.Namespace) -> int:
    """`test.py partial`: evaluate one set."""
    if args.set not in SETS:
        raise UserError(f"unknown set '{args.set}': choose one of {', '.join(SETS)}")
    evaluator = Evaluator(Path(args.checkpoint), args.data_path, args.batch_size)
    result = evaluator.evaluate(args.set, shuffle=args.shuffle_frames)
    print(format_table(result), file=sys.stderr)
    kinds = [kind for kind in PLOT_KINDS if getattr(args, kind)]
    if args.save or args.output_dir:
        directory = results_dir(evaluator.checkpoint, args.output_dir)
        for path in save_partial(evaluator, result, directory, kinds or PLOT_KINDS):
            print(f"wrote {path}", file=sys.stderr)
    elif kinds:
        print("note: plots are written with --save or --output_dir", file=sys.stderr)
    print(json.dumps(result.to_dict(), indent=2))
    return 0


def full(args: argparse.Namespace) -> int:
    """`test.py full`: test (or val), val, shuffled test and the training record."""
    checkpoint = Path(args.checkpoint)
    evaluator = Evaluator(checkpoint, args.data_path, args.batch_size)
    notes = []
    test_set = "test"
    if not evaluator.samples("test"):
        test_set = "val"
        notes.append(
            "the data has no test split (no 'split' column with test rows): "
            "'test' and 'test_shuffled' are evaluated on the val set"
        )
        print(f"note: {notes[-1]}", file=sys.stderr)
    val = evaluator.evaluate("val")
    test = val if test_set == "val" else evaluator.evaluate("test")
    shuffled = evaluator.evaluate(test_set, shuffle=True)
    record = read_training_record(
        checkpoint, evaluator.loaded, evaluator.config.head_modes()
    )
    notes += record["notes"]
    bundle = CompRes(
        checkpoint=str(checkpoint),
        test_set=test_set,
        test=test,
        val=val,
        test_shuffled=shuffled,
        best_val_loss=record["loss"],
        best_val_acc=record["acc"],
        best_val_mean_top1=record["mean_top1"],
        notes=notes,
    )
    for result in ([test] if test_set == "test" else []) + [val, shuffled]:
        print(format_table(result), file=sys.stderr)
    if args.save or args.output_dir:
        directory = results_dir(checkpoint, args.output_dir)
        name = f"{safe_name(checkpoint.stem)}_full-results.json"
        written = [write_json(bundle.to_dict(), directory / name)]
        written += save_plots(evaluator, test, directory, list(PLOT_KINDS))
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    print(json.dumps(bundle.to_dict(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one `error:` line and exit 2."""
    args = parse_args(argv)
    return run_cli(lambda: partial(args) if args.command == "partial" else full(args))


if __name__ == "__main__":
    sys.exit(main())
