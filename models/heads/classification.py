"""The `classification` head kind, the named heads and their weighted loss."""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import Metric
from torchmetrics.classification import MulticlassAccuracy

from config.section import Section
from models.heads.sequence import HeadInput, head_metric_names
from models.registry import HEAD_KINDS, HeadKind, kind_trait
from utils.constants import IGNORE_INDEX


def hidden_layers(input_dim: int, additional_layers: int, dropout: float) -> list:
    """`additional_layers` blocks of Dropout, Linear(width, width), GELU, then the
    dropout before a head's last linear layer (shared by the head kinds)."""
    layers: list[nn.Module] = []
    for _ in range(additional_layers):
        layers += [nn.Dropout(dropout), nn.Linear(input_dim, input_dim), nn.GELU()]
    return layers + [nn.Dropout(dropout)]


@HEAD_KINDS.register("classification")
class Classification:
    """One label of `num_class` classes per sample: logits, cross-entropy over the
    labelled samples, top-1/top-5 accuracy, softmax probabilities as prediction."""

    top_k = (1, 5)

    def layer(
        self,
        *,
        input_dim: int,
        num_classes: int,
        additional_layers: int,
        dropout: float,
    ) -> nn.Module:
        """Hidden layers, then Linear(width, num_classes): `(B, num_classes)` logits."""
        return nn.Sequential(
            *hidden_layers(input_dim, additional_layers, dropout),
            nn.Linear(input_dim, num_classes),
        )

    def loss(
        self, outputs: torch.Tensor, target: torch.Tensor, label_smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross-entropy over the labelled samples, and their count."""
        summed = F.cross_entropy(
            outputs.float(),
            target,
            ignore_index=IGNORE_INDEX,
            reduction="sum",
            label_smoothing=label_smoothing,
        )
        return summed, (target != IGNORE_INDEX).sum()

    def metrics(self, num_classes: int) -> dict[str, Metric]:
        """Micro-averaged top-k accuracy over the labelled samples."""
        return {
            f"top{k}": MulticlassAccuracy(
                num_classes=num_classes,
                top_k=min(k, num_classes),
                average="micro",
                ignore_index=IGNORE_INDEX,
            )
            for k in self.top_k
        }

    def metric_inputs(
        self, outputs: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and labels as they are (the metric ignores `IGNORE_INDEX`)."""
        return outputs, target

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities `(B, num_classes)`."""
        return outputs.float().softmax(dim=-1)


def head_kind(name: str) -> HeadKind:
    """A registered head kind, ready to use; `ConfigError` listing the kinds if
    unknown."""
    return HEAD_KINDS.get(name)()


def build_layer(  # pylint: disable=too-many-arguments
    kind: HeadKind,
    *,
    input_dim: int,
    num_classes: int,
    additional_layers: int,
    dropout: float,
    settings: Section | None,
) -> nn.Module:
    """A kind's head layer; its own `settings` are passed when its `layer` names
    them (kinds without settings keep the four-argument `layer`)."""
    arguments = {
        "input_dim": input_dim,
        "num_classes": num_classes,
        "additional_layers": additional_layers,
        "dropout": dropout,
    }
    if "settings" in inspect.signature(kind.layer).parameters:
        arguments["settings"] = settings
    return kind.layer(**arguments)


class MultiHeadClassifier(nn.Module):
    """One head per name, each built by its kind, over the clip embedding (or, for
    a `frames` kind, the per-frame outputs: `models.heads.sequence.HeadInput`).

    A `classification` head is `additional_layers` hidden layers (Linear + GELU) of
    the embedding's width, then a linear classifier, with dropout before every
    linear layer.

    Args:
        input_dim: size of the clip embedding (and of the per-frame outputs).
        num_classes: head name -> number of classes, in a fixed order.
        additional_layers: hidden layers in each head before its classifier.
        dropout_rate: dropout before every linear layer of a head.
        kinds: head name -> its kind's registered name (default: classification).
        settings: head name -> its own settings (its kind's `settings`, defaults
            filled in), for kinds that declare them.
    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        *,
        input_dim: int,
        num_classes: dict[str, int],
        additional_layers: int = 0,
        dropout_rate: float = 0.0,
        kinds: dict[str, str] | None = None,
        settings: dict[str, Section | None] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = dict(num_classes)
        kind_names = {
            name: (kinds or {}).get(name, "classification") for name in num_classes
        }
        self.kinds: dict[str, HeadKind] = {
            name: head_kind(kind) for name, kind in kind_names.items()
        }
        self.heads = nn.ModuleDict(
            {
                name: build_layer(
                    self.kinds[name],
                    input_dim=input_dim,
                    num_classes=count,
                    additional_layers=additional_layers,
                    dropout=dropout_rate,
                    settings=(settings or {}).get(name),
                )
                for name, count in num_classes.items()
            }
        )
        self.frame_heads = {
            name
            for name, kind in self.kinds.items()
            if kind_trait(kind, "inputs") == "frames"
        }

    @property
    def reads_frames(self) -> bool:
        """Whether a head reads the per-frame outputs (a `frames` kind)."""
        return bool(self.frame_heads)

    def forward(  # pylint: disable=too-many-arguments
        self,
        embedding: torch.Tensor,
        frames: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        labels: dict[str, torch.Tensor] | None = None,
        texts: dict[str, list[str]] | None = None,
    ) -> dict:
        """Outputs per head.

        Args:
            embedding: `(B, input_dim)` clip embeddings.
            frames: `(B, T, input_dim)` per-frame outputs (for `frames` kinds).
            mask: `(B, T)` bool, True at real frames.
            labels: `{head: (B, L) long}` sequence targets (teacher forcing), or
                None (prediction).
            texts: `{head: [sentence]}` of text heads, or None.

        Returns:
            `{head: outputs}`: logits `(B, num_class)` for classification; a
            `SequenceOutputs` for a sequence kind.
        """
        outputs = {}
        for name, head in self.heads.items():
            if name not in self.frame_heads:
                outputs[name] = head(embedding)
                continue
            if frames is None or mask is None:
                raise ValueError(f"head {name} reads the per-frame outputs and mask")
            outputs[name] = head(
                HeadInput(
                    clip=embedding,
                    frames=frames,
                    mask=mask,
                    target=(labels or {}).get(name),
                    texts=(texts or {}).get(name),
                )
            )
        return outputs

    def metric_names(self) -> dict[str, tuple[str, ...]]:
        """What each head logs per stage (`head_metric_names` of its kind)."""
        return {
            name: head_metric_names(self.kinds[name], self.num_classes[name])
            for name in self.kinds
        }

    def predict(self, outputs: dict) -> dict:
        """Each head's prediction output from its raw outputs (its kind's)."""
        return {name: self.kinds[name].predict(out) for name, out in outputs.items()}


def weighted_multi_head_loss(
    logits: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    weights: dict[str, float],
    label_smoothing: float = 0.0,
    kinds: dict[str, HeadKind] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted mean of the heads' losses, missing labels ignored.

    Each head's loss (its kind's; cross-entropy for classification) is the mean over
    the samples that have its label (`IGNORE_INDEX` elsewhere). Heads with no label in
    the batch drop out of the mean, weight included, so a batch never yields NaN.
    Nothing leaves the device.

    Args:
        logits: `{head: raw outputs}` (`(B, ...)` tensors, or a sequence kind's).
        labels: `{head: (B,) long}` (sequence heads: `(B, L)`) with
            `IGNORE_INDEX` where missing.
        weights: `{head: loss weight}`.
        label_smoothing: cross-entropy label smoothing (training only; 0 = none).
        kinds: `{head: its kind}`; classification where not given.

    Returns:
        The total loss (scalar) and `{head: loss}` (0 for heads without labels).
    """
    per_head = {}
    total = None
    weight_sum = None
    default = Classification()
    for name, head_logits in logits.items():
        kind = (kinds or {}).get(name, default)
        summed, count = kind.loss(head_logits, labels[name], label_smoothing)
        head_loss = summed / count.clamp(min=1)
        present = (count > 0).to(head_loss.dtype) * weights[name]
        per_head[name] = head_loss
        total = head_loss * present if total is None else total + head_loss * present
        weight_sum = present if weight_sum is None else weight_sum + present
    return total / weight_sum.clamp(min=1e-12), per_head
