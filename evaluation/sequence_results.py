"""Evaluating sequence heads (`ctc`, `t5`): corpus metrics of decoded hypotheses.

A sequence head's outputs (`models.heads.sequence.SequenceOutputs`) are collected
batch by batch as strings: the decoded hypothesis and the reference of every sample
(`""` where the sample has no label), plus the head's summed loss. Over the whole
set (each metric computed once over the corpus, not averaged over batches):

* a gloss-sequence head (label `sequence`, e.g. `ctc`): `wer`, the word error rate
  over the class-id sequences (a fraction, jiwer's), and `bleu4`, corpus BLEU-4 over
  the gloss names (0-100, sacrebleu's);
* a sentence head (label `text`, e.g. `t5`): `bleu4` and `chrf` (0-100).

`loss` is the head's loss (its kind's) averaged over its labelled samples and
`labelled` their count; a head with no labelled sample reports `null` metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from models.heads.sequence import (
    SequenceOutputs,
    ids_text,
    labelled_samples,
    target_ids,
)
from models.registry import HeadKind
from utils.files import write_output
from utils.text_metrics import corpus_bleu, corpus_chrf, corpus_wer

#: Each label kind's metrics, in the order of the results JSON and the table.
METRICS = {"sequence": ("wer", "bleu4"), "text": ("bleu4", "chrf")}


@dataclass(frozen=True)
class SequenceHead:
    """What collecting a sequence head's outputs needs to know of it.

    Attributes:
        kind: its kind (for the loss).
        kind_name: the kind's registered name (`ctc`, `t5`), for messages.
        label: its label kind: `sequence` (class ids) or `text` (sentences).
    """

    kind: HeadKind
    kind_name: str
    label: str


@dataclass
class SequencePredictions:
    """A sequence head's decoded outputs over a set (rows in sample order).

    Attributes:
        head: what the head is.
        hypotheses: the decoded output per sample (CTC: class ids as words).
        references: the label per sample in the same form (`""`: no label).
        loss_sum: the head's loss summed over the labelled samples.
        count: the labelled samples.
    """

    head: SequenceHead
    hypotheses: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    loss_sum: float = 0.0
    count: int = 0

    def __len__(self) -> int:
        return len(self.hypotheses)

    def add(self, outputs: SequenceOutputs, target: torch.Tensor) -> None:
        """One batch's outputs (`SequenceOutputs` of an eval-mode head) and its
        `(B, L)` padded target."""
        # HeadKind is a protocol, its methods bodiless for pylint.
        # pylint: disable-next=assignment-from-no-return
        summed, count = self.head.kind.loss(outputs, target, 0.0)
        self.loss_sum += float(summed)
        self.count += int(count)
        labelled = labelled_samples(target).tolist()
        if outputs.references is not None:
            references = [
                text if keep else "" for text, keep in zip(outputs.references, labelled)
            ]
        else:
            references = [
                ids_text(target_ids(row)) if keep else ""
                for row, keep in zip(target.tolist(), labelled)
            ]
        hypotheses = list(outputs.hypotheses or [])
        if len(hypotheses) != len(references):
            raise RuntimeError(
                f"a {self.head.kind_name} head decoded {len(hypotheses)} hypotheses "
                f"for a batch of {len(references)} samples"
            )
        self.hypotheses += hypotheses
        self.references += references

    def labelled(self) -> tuple[list[str], list[str]]:
        """The hypotheses and references of the samples that have a label."""
        pairs = [
            (hypothesis, reference)
            for hypothesis, reference in zip(self.hypotheses, self.references)
            if reference
        ]
        return [h for h, _ in pairs], [r for _, r in pairs]


@dataclass
class SequenceRes:
    """One sequence head's metrics over a set.

    Attributes:
        kind_name: the head's kind (`ctc`, `t5`).
        metrics: metric name -> value (see the module docstring); None without
            labels.
        loss: the head's loss averaged over the labelled samples (None without).
        labelled: how many samples have this head's label.
    """

    kind_name: str
    metrics: dict[str, float | None]
    loss: float | None
    labelled: int

    def to_dict(self) -> dict:
        """The head's entry of the results JSON."""
        return {**self.metrics, "loss": self.loss, "labelled": self.labelled}


def gloss_names(text: str, names: list[str]) -> str:
    """Class ids as words (`"27 82 5"`) -> their names (an unknown id stays)."""
    words = []
    for word in text.split():
        index = int(word) if word.isdigit() else -1
        words.append(names[index] if 0 <= index < len(names) else word)
    return " ".join(words)


def readable(predictions: SequencePredictions, names: list[str]) -> SequencePredictions:
    """The predictions with class ids mapped to names (a `sequence` head's); a
    `text` head's unchanged."""
    if predictions.head.label != "sequence":
        return predictions
    return SequencePredictions(
        predictions.head,
        [gloss_names(text, names) for text in predictions.hypotheses],
        [gloss_names(text, names) for text in predictions.references],
        predictions.loss_sum,
        predictions.count,
    )


def sequence_head_results(
    predictions: SequencePredictions, names: list[str]
) -> SequenceRes:
    """The head's corpus metrics (`names`: its class names, for BLEU over glosses)."""
    hypotheses, references = predictions.labelled()
    metrics: dict[str, float | None] = {
        name: None for name in METRICS.get(predictions.head.label, ("bleu4",))
    }
    if hypotheses:
        if "wer" in metrics:
            try:
                metrics["wer"] = corpus_wer(hypotheses, references)
            except ValueError:  # the references hold no word
                metrics["wer"] = None
        shown_hypotheses, shown_references = readable(predictions, names).labelled()
        metrics["bleu4"] = corpus_bleu(shown_hypotheses, shown_references)
        if "chrf" in metrics:
            metrics["chrf"] = corpus_chrf(shown_hypotheses, shown_references)
    loss = predictions.loss_sum / predictions.count if predictions.count else None
    return SequenceRes(
        kind_name=predictions.head.kind_name,
        metrics=metrics,
        loss=loss,
        labelled=len(hypotheses),
    )


def weighted_loss(
    losses: dict[str, float | None], weights: dict[str, float]
) -> float | None:
    """The training loss over a set from each head's mean loss: their weighted
    mean over the heads that have a label (None when none has)."""
    present = {head: loss for head, loss in losses.items() if loss is not None}
    total_weight = sum(weights[head] for head in present)
    if not present:
        return None
    total = sum(loss * weights[head] for head, loss in present.items())
    return total / max(total_weight, 1e-12)


def table_line(head: str, result: SequenceRes) -> str:
    """One line of `format_table` for a sequence head."""

    def cell(value: float | None, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    scores = "  ".join(
        f"{name} {cell(value, 3 if name == 'wer' else 2)}"
        for name, value in result.metrics.items()
    )
    return (
        f"{head} ({result.kind_name}): {scores}  loss {cell(result.loss, 4)}  "
        f"n {result.labelled}"
    )


def _cell(text: str) -> str:
    """`text` fit for one TSV cell (tabs and line breaks as spaces)."""
    return " ".join(text.split())


def write_hypotheses(
    predictions: SequencePredictions, names: list[str], sample_names: list[str], path
) -> None:
    """`name<TAB>hypothesis<TAB>reference` per sample, with a header, class ids
    mapped to `names` (atomically)."""
    shown = readable(predictions, names)
    if len(sample_names) != len(shown.hypotheses):
        raise RuntimeError(
            f"{len(sample_names)} sample names for {len(shown.hypotheses)} hypotheses"
        )
    lines = ["name\thypothesis\treference"] + [
        f"{_cell(name)}\t{_cell(hypothesis)}\t{_cell(reference)}"
        for name, hypothesis, reference in zip(
            sample_names, shown.hypotheses, shown.references
        )
    ]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    write_output(path, lambda file: file.write(data))
