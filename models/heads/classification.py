"""Named classification heads and their weighted loss."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from utils.constants import IGNORE_INDEX


def _head(input_dim: int, count: int, additional_layers: int, dropout: float):
    layers: list[nn.Module] = []
    for _ in range(additional_layers):
        layers += [nn.Dropout(dropout), nn.Linear(input_dim, input_dim), nn.GELU()]
    layers += [nn.Dropout(dropout), nn.Linear(input_dim, count)]
    return nn.Sequential(*layers)


class MultiHeadClassifier(nn.Module):
    """One classifier per named head over the clip embedding.

    Each head is `additional_layers` hidden layers (Linear + GELU) of the embedding's
    width, then a linear classifier, with dropout before every linear layer.

    Args:
        input_dim: size of the clip embedding.
        num_classes: head name -> number of classes, in a fixed order.
        additional_layers: hidden layers in each head before its classifier.
        dropout_rate: dropout before every linear layer of a head.
    """

    def __init__(
        self,
        *,
        input_dim: int,
        num_classes: dict[str, int],
        additional_layers: int = 0,
        dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.heads = nn.ModuleDict(
            {
                name: _head(input_dim, count, additional_layers, dropout_rate)
                for name, count in num_classes.items()
            }
        )

    def forward(self, embedding: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per head.

        Args:
            embedding: `(B, input_dim)` clip embeddings.

        Returns:
            `{head: (B, num_class) logits}`.
        """
        return {name: head(embedding) for name, head in self.heads.items()}


def weighted_multi_head_loss(
    logits: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    weights: dict[str, float],
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted mean of the heads' cross-entropy losses, missing labels ignored.

    Each head's loss is the mean over the samples that have its label (`IGNORE_INDEX`
    elsewhere). Heads with no label in the batch drop out of the mean, weight included,
    so a batch never yields NaN. Nothing leaves the device.

    Args:
        logits: `{head: (B, C) logits}`.
        labels: `{head: (B,) long}` with `IGNORE_INDEX` where missing.
        weights: `{head: loss weight}`.
        label_smoothing: cross-entropy label smoothing (training only; 0 = none).

    Returns:
        The total loss (scalar) and `{head: loss}` (0 for heads without labels).
    """
    per_head = {}
    total = None
    weight_sum = None
    for name, head_logits in logits.items():
        target = labels[name]
        count = (target != IGNORE_INDEX).sum()
        summed = F.cross_entropy(
            head_logits.float(),
            target,
            ignore_index=IGNORE_INDEX,
            reduction="sum",
            label_smoothing=label_smoothing,
        )
        head_loss = summed / count.clamp(min=1)
        present = (count > 0).to(head_loss.dtype) * weights[name]
        per_head[name] = head_loss
        total = head_loss * present if total is None else total + head_loss * present
        weight_sum = present if weight_sum is None else weight_sum + present
    return total / weight_sum.clamp(min=1e-12), per_head
