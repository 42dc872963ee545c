"""What sequence heads read and give: `HeadInput` (the encoder's per-frame outputs
and the batch's labels) and `SequenceOutputs` (logits over time and decoded
hypotheses), plus the helpers every head kind shares: which samples are labelled,
and the metric names a kind logs."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from utils.constants import IGNORE_INDEX


@dataclass
class HeadInput:
    """What a head of a `frames` kind reads (see `models.registry.HeadKind`).

    Attributes:
        clip: `(B, D)` clip embeddings.
        frames: `(B, T, D)` the temporal encoder's per-frame (per-token) outputs.
        mask: `(B, T)` bool, True at real frames.
        target: `(B, L)` long, the head's labels padded with `IGNORE_INDEX` (class
            ids of a sequence, token ids of a sentence); None when not given
            (prediction).
        texts: the sentences of a text head (`""` = no label), or None.
    """

    clip: torch.Tensor
    frames: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor | None = None
    texts: list[str] | None = None


@dataclass
class SequenceOutputs:
    """The raw outputs of a sequence head.

    Attributes:
        logits: `(B, T, C)` scores per time step (per frame for CTC, per target
            token for a decoder under teacher forcing); None when not computed.
        lengths: `(B,)` long, the valid steps of `logits` per sample.
        hypotheses: the decoded outputs, one string per sample (words separated by
            spaces; CTC: class ids), when decoded (evaluation), else None.
        references: what the hypotheses are compared with, one string per sample
            (`""` = no label), when the labels were given, else None.
    """

    logits: torch.Tensor | None
    lengths: torch.Tensor
    hypotheses: list[str] | None = None
    references: list[str] | None = None

    def detach(self) -> SequenceOutputs:
        """The same outputs, cut from the graph."""
        logits = None if self.logits is None else self.logits.detach()
        return replace(self, logits=logits, lengths=self.lengths.detach())


def labelled_samples(target: torch.Tensor) -> torch.Tensor:
    """`(B,)` bool: the samples that have a label (`target` `(B,)` class ids, or
    `(B, L)` padded sequences: a row with any id)."""
    labelled = target != IGNORE_INDEX
    return labelled if labelled.dim() == 1 else labelled.any(dim=-1)


def ids_text(ids: list[int]) -> str:
    """Class ids as words (`"27 82 5"`), the form CTC's hypotheses take."""
    return " ".join(str(i) for i in ids)


def target_ids(row: list[int]) -> list[int]:
    """The ids of one padded target row (`IGNORE_INDEX` dropped)."""
    return [int(i) for i in row if i != IGNORE_INDEX]


def head_metric_names(kind, num_classes: int = 2) -> tuple[str, ...]:
    """What a head of `kind` logs per stage: its top-k accuracies, its other
    metrics, and `loss` (`("top1", "top5", "loss")` for classification)."""
    top = tuple(f"top{k}" for k in kind.top_k)
    others = tuple(name for name in kind.metrics(num_classes) if name not in top)
    return (*top, *others, "loss")
