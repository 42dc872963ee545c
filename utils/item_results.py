"""The outcome of each input of a batch command (the video tools, `predict.py`), and
the failures listed at the end of the run.

One bad input must not stop a batch: each input gets an `ItemResult`, failed ones
carry a one-line reason, and `report_failures` lists them on stderr and gives the
exit status.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence


@dataclass
class ItemResult:
    """The outcome of one item of a batch.

    Attributes:
        name: the item's output name.
        source: the input it came from.
        frames: frames written (0 on failure).
        error: None on success, else a one-line reason.
        details: per-item numbers for the summary (e.g. detections per part).
    """

    name: str
    source: str
    frames: int = 0
    error: str | None = None
    details: dict[str, int] | None = None


def written(results: Sequence[ItemResult]) -> tuple[list[ItemResult], int]:
    """The items that succeeded, and the frames they wrote in all."""
    done = [result for result in results if result.error is None]
    return done, sum(result.frames for result in done)


def report_failures(results: Sequence[ItemResult], kind: str) -> int:
    """Print the failed items on stderr; the exit status: 1 if any failed, else 0."""
    failed = [result for result in results if result.error is not None]
    if not failed:
        return 0
    print(f"failed: {len(failed)} of {len(results)} {kind}:", file=sys.stderr)
    for result in failed:
        error = result.error or ""
        line = error if error.startswith(result.source) else f"{result.source}: {error}"
        print(f"  {line}", file=sys.stderr)
    return 1
