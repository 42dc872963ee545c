"""The names runs log their metrics under, and that evaluation, sweeps and the
epoch log read back: `{stage}/{head}/{metric}` for a head (`val/gloss/top1`),
`{stage}/{metric}` for the whole model (`val/loss`)."""

from __future__ import annotations

#: What a recognition run logs per head and stage.
HEAD_METRICS = ("top1", "top5", "loss")


def metric_name(stage: str, head: str | None, metric: str) -> str:
    """`val/gloss/top1` for a head's metric; `val/loss` with `head` None."""
    return f"{stage}/{metric}" if head is None else f"{stage}/{head}/{metric}"


def split_metric_name(name: str) -> tuple[str, str | None, str]:
    """`metric_name`'s parts back: (stage, head or None, metric)."""
    stage, _, rest = name.partition("/")
    head, _, metric = rest.rpartition("/")
    return stage, head or None, metric
