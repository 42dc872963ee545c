"""Evaluate a trained checkpoint: exact top-k metrics, losses and plots per head.

python3 test.py partial CHECKPOINT SET [--shuffle_frames] [--bar_graph]
                [--confusion_matrix] [--heatmap] [--save] [--output_dir DIR]
                [--data_path PATH ...] [--batch_size N]
                [--ensemble CHECKPOINT ...] [--mirror]
python3 test.py full CHECKPOINT [--save] [--output_dir DIR] [--data_path PATH ...]
                [--batch_size N] [--ensemble CHECKPOINT ...] [--mirror]

The checkpoint carries everything needed: the config (data, sampling, model), the
class counts and the label names. The data is rebuilt from the checkpoint's config
(or `--data_path`), with the same seeded split as training and evaluation
transforms (deterministic frame sampling, no augmentation), even for SET=train.

`partial` evaluates one set (train, val or test; test needs a `split` column).
`--shuffle_frames` permutes the sampled frames of every clip with one seeded
permutation, to show how much the model relies on temporal order. `full` evaluates
test (val when there is no test split), val and test with shuffled frames, and
bundles them with the run's best validation loss and accuracy.

`--ensemble` averages the class probabilities of more checkpoints (other seeds,
epochs or streams such as a `bone_inputs` model, trained on the same data, heads and
classes) with CHECKPOINT's; `--mirror`
also averages each clip's horizontal mirror (the flip training augments with).
Each costs a forward pass per clip: 3 checkpoints with `--mirror` are 6 passes.

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
import sys
from pathlib import Path

from utils.cli import add_ensemble_option, run_cli

#: `partial`'s plot options (`evaluation.plots.PLOT_KINDS`) and what they draw.
PLOTS = (
    ("bar_graph", "per-class accuracy bars"),
    ("confusion_matrix", "confusion matrix"),
    ("heatmap", "per-class precision/recall/F1 heatmap"),
)


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
    add_ensemble_option(
        parser,
        "more checkpoints whose class probabilities are averaged with "
        "CHECKPOINT's (same data, heads and classes)",
    )
    parser.add_argument(
        "--mirror",
        action="store_true",
        help="also average each clip's horizontal mirror (test-time augmentation)",
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
    for kind, text in PLOTS:
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


def evaluate(args: argparse.Namespace) -> int:
    """Run the command; the library (and torch) loads only now, so --help answers at
    once and a missing dependency is a one-line error."""
    # pylint: disable-next=import-outside-toplevel
    from evaluation.evaluator import EvaluationOptions, run_full, run_partial

    options = EvaluationOptions(
        checkpoint=Path(args.checkpoint),
        data_path=args.data_path,
        batch_size=args.batch_size,
        save=args.save,
        output_dir=args.output_dir,
        ensemble=tuple(args.ensemble),
        mirror=args.mirror,
    )
    if args.command == "full":
        return run_full(options)
    plots = tuple(kind for kind, _ in PLOTS if getattr(args, kind))
    return run_partial(
        options, args.set, shuffle_frames=args.shuffle_frames, plots=plots
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one `error:` line and exit 2."""
    args = parse_args(argv)
    return run_cli(lambda: evaluate(args))


if __name__ == "__main__":
    sys.exit(main())
