"""Run a sweep of training runs as an Optuna study, or clean up finished runs.

python3 sweep.py SWEEP.yml [--output DIR] [--trials N] [--keep_top K]
python3 sweep.py --clean RUNS

SWEEP.yml names a base config and a grid, a queue of override sets or a search space,
and the validation metric to optimise (see docs/guide/sweeps.md). Each trial is a
normal run in DIR/trials/trial_NNNN (train, then `test.py full` on its best
checkpoint), with its own seed. The study lives in DIR/study.db (or the sweep's
`storage` URL): run the same command again to resume a stopped sweep, or on more
machines to share its trials. DIR gets results.csv, results.md,
optimization_history.png and param_importances.png.

`--keep_top K` leaves only best.ckpt to the trials outside the best K. `--clean RUNS`
removes every checkpoint but best.ckpt and last.ckpt of the finished runs under RUNS.

Exit status: 0 when the sweep is done, 130 when interrupted (run again to go on),
2 on a bad SWEEP.yml (the key is named).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from utils.cli import positive_int, run_cli


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python3 sweep.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("sweep", nargs="?", type=Path, metavar="SWEEP.yml")
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="the sweep folder (default: the sweep's output, else "
        "runs/sweeps/<study_name>)",
    )
    parser.add_argument(
        "--trials",
        type=positive_int,
        metavar="N",
        help="trials of a search_space (default: its n_trials)",
    )
    parser.add_argument(
        "--keep_top",
        type=positive_int,
        metavar="K",
        help="at the end, trials outside the best K keep only best.ckpt",
    )
    parser.add_argument(
        "--clean",
        type=Path,
        metavar="RUNS",
        help="remove all checkpoints but best.ckpt and last.ckpt of the finished "
        "runs under RUNS, and exit",
    )
    args = parser.parse_args(argv)
    if (args.sweep is None) == (args.clean is None):
        parser.error("give SWEEP.yml, or --clean RUNS")
    if args.clean is not None and (args.output or args.trials or args.keep_top):
        parser.error("--clean takes no other option")
    return args


def sweep(args: argparse.Namespace) -> int:
    """Run the command; torch, Lightning and Optuna load only now."""
    # pylint: disable=import-outside-toplevel
    if args.clean is not None:
        from sweeps.cleanup import clean_runs

        return clean_runs(args.clean)
    # Checking for GPUs through NVML leaves CUDA unstarted here, so that the trial
    # processes forked from this one can start it.
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    from sweeps.runner import SweepOptions, run_sweep
    from training.pruning import run_trial

    options = SweepOptions(args.output, args.trials, args.keep_top)
    return run_sweep(args.sweep, options, run_trial)


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one `error:` line and exit 2."""
    args = parse_args(argv)
    return run_cli(lambda: sweep(args))


if __name__ == "__main__":
    sys.exit(main())
