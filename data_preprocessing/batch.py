"""The parallel batch runner the offline tools share.

`run_batch` runs one function per item over a process pool with a progress bar and
collects every item's outcome (`utils.item_results.ItemResult`), so that one broken
video does not stop the others. Videos are decoded by `datasets.videos`.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

from utils.cli import positive_int
from utils.errors import UserError
from utils.item_results import ItemResult

DEFAULT_MAX_WORKERS = 4


def default_workers() -> int:
    """min(4, number of CPUs)."""
    return max(1, min(DEFAULT_MAX_WORKERS, os.cpu_count() or 1))


def _importable(function: Callable) -> tuple[str, str]:
    """Module and qualified name of a function, as a worker process can import them.

    A tool run as `python3 -m package.tool` has its functions in `__main__`; they
    are looked up under the module's real name instead.
    """
    module = function.__module__
    if module == "__main__":
        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module = spec.name if spec is not None else module
    return module, function.__qualname__


def guarded(
    function: Callable[..., ItemResult] | tuple[str, str],
    name: str,
    source: Path,
    *args: Any,
) -> ItemResult:
    """Run `function(name, source, *args)`; any exception becomes a failed result.

    One bad input must not stop a batch, so every exception is caught and reported
    with its type in the end-of-run summary.

    Args:
        function: the function, or its `(module, qualified name)` to import.
        name: the item's output name.
        source: the item's input.
        *args: further arguments.
    """
    try:
        if isinstance(function, tuple):
            function = getattr(importlib.import_module(function[0]), function[1])
        return function(name, source, *args)
    except Exception as error:  # pylint: disable=broad-exception-caught
        message = (
            str(error)
            if isinstance(error, UserError)
            else f"{type(error).__name__}: {error}"
        )
        return ItemResult(name, str(source), error=message)


def _progress(total: int, unit: str) -> tqdm:
    """The progress bar over a batch's items, on stderr."""
    return tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def run_batch(
    function: Callable[..., ItemResult],
    jobs: Sequence[tuple[str, Path]],
    args: tuple,
    *,
    workers: int,
    unit: str,
) -> list[ItemResult]:
    """Run `function(name, source, *args)` for every job, with a progress bar.

    Args:
        function: a module-level function (picklable) returning an `ItemResult`.
        jobs: `(name, source)` pairs.
        args: further arguments, the same for every job.
        workers: processes; 1 (or a single job) runs in this process.
        unit: what an item is called on the progress bar.

    Returns:
        The results in the order of `jobs`.
    """
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        results = []
        with _progress(len(jobs), unit) as progress:
            for name, source in jobs:
                progress.set_postfix_str(name)
                results.append(guarded(function, name, source, *args))
                progress.update()
        return results
    target = _importable(function)
    # Fresh interpreters, not forks: a fork of a process that already runs
    # MediaPipe, torch threads or a DataLoader can crash in native code.
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn")
    )
    try:
        # Submitted (and the workers forked) before the progress bar starts its thread.
        futures = {
            pool.submit(guarded, target, name, source, *args): index
            for index, (name, source) in enumerate(jobs)
        }
        by_index: dict[int, ItemResult] = {}
        with _progress(len(jobs), unit) as progress:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    by_index[index] = future.result()
                except Exception as error:  # pylint: disable=broad-exception-caught
                    # e.g. a worker killed by the system (BrokenProcessPool)
                    name, source = jobs[index]
                    by_index[index] = ItemResult(
                        name, str(source), error=f"{type(error).__name__}: {error}"
                    )
                progress.set_postfix_str(by_index[index].name)
                progress.update()
    except BaseException:  # Ctrl-C: do not wait for the queued items
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [by_index[index] for index in range(len(jobs))]


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """The `--workers N` option of the batch tools."""
    parser.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        default=default_workers(),
        help="parallel processes (default: min(4, CPUs) = %(default)s)",
    )
