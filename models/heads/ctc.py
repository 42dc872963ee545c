"""The `ctc` head kind: a gloss sequence per clip from the encoder's per-frame
outputs, trained with CTC, decoded greedily or by prefix beam search, scored by WER."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F
from torchmetrics import Metric

from config.section import Section
from models.heads.classification import hidden_layers
from models.heads.ctc_decode import beam_decode, greedy_decode
from models.heads.sequence import (
    HeadInput,
    SequenceOutputs,
    ids_text,
    labelled_samples,
    target_ids,
)
from models.heads.sequence_metrics import WordErrorRate
from models.registry import HEAD_KINDS
from utils.constants import IGNORE_INDEX


class CtcSettings(Section):
    """The `ctc` head's own settings."""

    beam_size: int = Field(
        1,
        ge=1,
        le=64,
        description="Prefixes kept by the beam search when decoding (validation, "
        "test, prediction); 1 = greedy best-path decoding, on the device.",
    )


class CtcLayer(nn.Module):
    """Per-frame scores over the classes and CTC's blank (the last index).

    Args:
        input_dim: the per-frame outputs' width.
        num_classes: the classes (glosses); the layer gives one more, the blank.
        additional_layers: hidden layers before the classifier.
        dropout: dropout before every linear layer.
        beam_size: 1 = greedy decoding, else prefix beam search of that width.
    """

    def __init__(  # pylint: disable=too-many-arguments
        self,
        *,
        input_dim: int,
        num_classes: int,
        additional_layers: int,
        dropout: float,
        beam_size: int,
    ) -> None:
        super().__init__()
        self.blank = num_classes
        self.beam_size = beam_size
        self.net = nn.Sequential(
            *hidden_layers(input_dim, additional_layers, dropout),
            nn.Linear(input_dim, num_classes + 1),
        )

    def forward(self, inputs: HeadInput) -> SequenceOutputs:
        """`(B, T, C + 1)` logits; decoded hypotheses (class ids as words) when in
        eval mode."""
        logits = self.net(inputs.frames)
        lengths = inputs.mask.sum(dim=1)
        outputs = SequenceOutputs(logits=logits, lengths=lengths)
        if not self.training:
            outputs.hypotheses = [ids_text(ids) for ids in self.decode(logits, lengths)]
        return outputs

    def decode(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """The class ids per sample (greedy, or beam search when `beam_size` > 1)."""
        with torch.no_grad():
            if self.beam_size > 1:
                return beam_decode(logits, lengths, self.blank, self.beam_size)
            return greedy_decode(logits, lengths, self.blank)


@HEAD_KINDS.register("ctc", settings=CtcSettings, label="sequence")
class Ctc:
    """A sequence of `num_class` classes per clip (e.g. the glosses of a signed
    sentence, `27+82+5` in the annotations): per-frame scores plus a blank, CTC loss
    per target length, greedy or beam decoding, word error rate (validation and
    test only: decoding leaves the device)."""

    top_k: tuple[int, ...] = ()
    inputs = "frames"
    metric_stages = ("val", "test")

    def layer(  # pylint: disable=too-many-arguments
        self,
        *,
        input_dim: int,
        num_classes: int,
        additional_layers: int,
        dropout: float,
        settings: CtcSettings | None = None,
    ) -> nn.Module:
        """A `CtcLayer` (`num_classes + 1` outputs per frame)."""
        return CtcLayer(
            input_dim=input_dim,
            num_classes=num_classes,
            additional_layers=additional_layers,
            dropout=dropout,
            beam_size=(settings or CtcSettings()).beam_size,
        )

    def loss(
        self, outputs: SequenceOutputs, target: torch.Tensor, label_smoothing: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed CTC loss over the labelled samples, each divided by its target's
        length, and their count; a target longer than the clip's frames allow
        counts 0 (`zero_infinity`)."""
        del label_smoothing  # not defined for CTC
        log_probs = outputs.logits.float().log_softmax(dim=-1)
        blank = log_probs.shape[-1] - 1
        target_lengths = (target != IGNORE_INDEX).sum(dim=-1)
        per_sample = F.ctc_loss(
            log_probs.transpose(0, 1),
            target.clamp(min=0),
            outputs.lengths,
            target_lengths,
            blank=blank,
            reduction="none",
            zero_infinity=True,
        ) / target_lengths.clamp(min=1)
        labelled = labelled_samples(target)
        summed = torch.where(labelled, per_sample, torch.zeros_like(per_sample)).sum()
        return summed, labelled.sum()

    def metrics(self, num_classes: int) -> dict[str, Metric]:
        """Word error rate over the labelled samples (class ids as words)."""
        del num_classes
        return {"wer": WordErrorRate()}

    def metric_inputs(
        self, outputs: SequenceOutputs, target: torch.Tensor
    ) -> tuple[list[str], list[str]]:
        """The labelled samples' hypotheses and reference id sequences."""
        labelled = labelled_samples(target).tolist()
        rows = target.tolist()
        pairs = [
            (hypothesis, ids_text(target_ids(row)))
            for hypothesis, row, keep in zip(outputs.hypotheses or [], rows, labelled)
            if keep
        ]
        return [h for h, _ in pairs], [r for _, r in pairs]

    def predict(self, outputs: SequenceOutputs) -> list[str]:
        """The decoded class ids per sample, as words (`"27 82 5"`)."""
        return list(outputs.hypotheses or [])
