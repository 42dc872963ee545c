"""Evaluating a trained checkpoint: exact top-k metrics, losses and frame shuffling.

The metrics are computed once over the whole set (every sample counted exactly once),
not averaged over batches:

* ``top_k_per_instance_acc``: the share of labelled samples whose label is among the
  k highest logits (k = 1, 5, 10, capped at the head's class count).
* ``top_k_average_per_class_acc``: the same top-k accuracy computed separately for
  every class present in the set (by label), then averaged over those classes, so
  rare classes weigh as much as frequent ones.
* ``loss``: the head's cross-entropy averaged over its labelled samples; the set's
  ``average_loss`` is the training loss (`weighted_multi_head_loss`) over the whole
  set: the loss-weighted mean of the heads' losses, heads without labels left out.

* ``top1_ci95``: a 95% bootstrap confidence interval of the per-instance top-1
  (`BOOTSTRAP_RESAMPLES` resamples of the labelled samples with replacement, seeded,
  the 2.5th and 97.5th percentiles), so a difference between two models can be read
  against the noise of a small test set.
* ``per_signer`` (when the annotation names signers): per-instance top-1 and the
  labelled count of each signer's samples.

Missing labels (``IGNORE_INDEX``) are ignored per head; a head with no label in the
set reports ``null`` metrics.

Sequence heads (`ctc`, `t5`: their outputs are `SequenceOutputs`) are scored by
`evaluation.sequence_results` instead: WER, BLEU-4, chrF over the decoded
hypotheses; their loss joins ``average_loss`` with the head's loss weight.

Frame shuffling (``--shuffle_frames``) permutes the sampled positions of every clip
with one seeded permutation ``perm`` of ``range(num_segments)``: shuffled position
``i`` shows the frame (and landmarks) sampled at position ``perm[i]``. A clip with
only ``L < num_segments`` real positions uses the permutation restricted to them
(the entries of ``perm`` below ``L``, in order), so padding stays at the end and the
mask is unchanged. How far the permutation moves frames is summarised by its
Shannon entropy (see `permutation_entropy`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from config.metric_names import HEAD_METRICS, metric_name
from datasets.sign_dataset import collate_clips
from evaluation.sequence_results import (
    SequenceHead,
    SequencePredictions,
    SequenceRes,
    sequence_head_results,
    table_line,
    weighted_loss,
)
from models.heads import IGNORE_INDEX, weighted_multi_head_loss
from models.heads.sequence import SequenceOutputs

TOP_KS = (1, 5, 10)
SETS = ("train", "val", "test")


# --- result records ------------------------------------------------------------------


@dataclass
class TopKRes:
    """Top-1/5/10 accuracies in [0, 1]; None when the head has no labelled sample."""

    top1: float | None
    top5: float | None
    top10: float | None

    def to_dict(self) -> dict[str, float | None]:
        """``{"top1": ..., "top5": ..., "top10": ...}``."""
        return {"top1": self.top1, "top5": self.top5, "top10": self.top10}


@dataclass
class HeadRes:
    """One head's metrics over a set.

    Attributes:
        top_k_per_instance_acc: top-k accuracy over the labelled samples.
        top_k_average_per_class_acc: top-k accuracy averaged over the classes
            present in the set.
        loss: mean cross-entropy over the labelled samples (None without labels).
        labelled: how many samples have this head's label.
    """

    top_k_per_instance_acc: TopKRes
    top_k_average_per_class_acc: TopKRes
    loss: float | None
    labelled: int
    top1_ci95: tuple[float, float] | None = None
    per_signer: dict[str, dict] | None = None

    def to_dict(self) -> dict:
        """The head's entry of the results JSON."""
        result = {
            "top_k_per_instance_acc": self.top_k_per_instance_acc.to_dict(),
            "top_k_average_per_class_acc": self.top_k_average_per_class_acc.to_dict(),
            "top1_ci95": list(self.top1_ci95) if self.top1_ci95 else None,
            "loss": self.loss,
        }
        if self.per_signer is not None:
            result["per_signer"] = self.per_signer
        return result


@dataclass
class HeadPredictions:
    """Every logit and label of one head over a set (rows in sample order)."""

    logits: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def labelled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and labels of the samples that have this head's label."""
        keep = self.labels != IGNORE_INDEX
        return self.logits[keep], self.labels[keep]


@dataclass
class EvalRes:
    """The evaluation of one checkpoint on one set.

    Attributes:
        set: train, val or test.
        samples: number of samples evaluated (the set's size).
        checkpoint: the checkpoint's path.
        heads: head name -> metrics, in head order (`SequenceRes` for a
            sequence head).
        average_loss: the weighted multi-head loss over the whole set.
        perm: the frame permutation, when frames were shuffled.
        shannon_entropy: the permutation's displacement entropy in bits, when
            frames were shuffled.
        predictions: head -> logits and labels (for plots; not in the JSON), or
            a sequence head's hypotheses and references.
        averaged: with an ensemble or mirroring, `{"checkpoints": [...], "mirror":
            bool}`: the predictions are their averaged class probabilities.
    """

    set: str
    samples: int
    checkpoint: str
    heads: dict[str, HeadRes | SequenceRes]
    average_loss: float | None
    perm: list[int] | None = None
    shannon_entropy: float | None = None
    predictions: dict[str, HeadPredictions | SequencePredictions] = field(
        default_factory=dict, repr=False
    )
    averaged: dict | None = None

    def to_dict(self) -> dict:
        """The results JSON: one entry per head, then the set-wide values."""
        result: dict = {head: res.to_dict() for head, res in self.heads.items()}
        result["average_loss"] = self.average_loss
        result["set"] = self.set
        result["samples"] = self.samples
        result["checkpoint"] = self.checkpoint
        if self.averaged is not None:
            result["averaged"] = self.averaged
        if self.perm is not None:
            result["perm"] = list(self.perm)
            result["shannon_entropy"] = self.shannon_entropy
        return result


@dataclass
class CompRes:
    """`test.py full`: test, val and shuffled-test results with the training record.

    Attributes:
        checkpoint: the checkpoint's path.
        test_set: the set evaluated as "test": test, or val when the data has no
            test split.
        test: results on `test_set`.
        val: results on the validation set.
        test_shuffled: results on `test_set` with shuffled frames.
        best_val_loss: the best validation loss seen in training (the
            ModelCheckpoint's `best_model_score`, else `metrics.json`'s `val_loss`).
        best_val_acc: head -> validation top-1 of the best checkpoint, from the
            run's `metrics.json` (None when it is missing).
        best_val_mean_top1: classification mode -> mean validation top-1 of its
            heads, from `metrics.json` (None when it is missing).
        notes: remarks such as a missing test split.
    """

    checkpoint: str
    test_set: str
    test: EvalRes
    val: EvalRes
    test_shuffled: EvalRes
    best_val_loss: float | None = None
    best_val_acc: dict[str, float | None] | None = None
    best_val_mean_top1: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The bundle JSON."""
        return {
            "checkpoint": self.checkpoint,
            "best_val_loss": self.best_val_loss,
            "best_val_acc": self.best_val_acc,
            "best_val_mean_top1": self.best_val_mean_top1,
            "test_set": self.test_set,
            "test": self.test.to_dict(),
            "val": self.val.to_dict(),
            "test_shuffled": self.test_shuffled.to_dict(),
            "notes": list(self.notes),
        }


# --- metrics ------------------------------------------------------------------------


def top_k_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Whether each label is among the `k` highest logits (k capped at the classes).

    Args:
        logits: `(N, C)` scores.
        labels: `(N,)` class indices (no missing labels).
        k: how many top classes count as a hit.

    Returns:
        `(N,)` bool.
    """
    k = max(1, min(k, logits.shape[1]))
    top = logits.topk(k, dim=1).indices
    return (top == labels[:, None]).any(dim=1)


def per_instance_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, ks: Iterable[int] = TOP_KS
) -> dict[int, float | None]:
    """Top-k accuracy over the samples (None when there is none)."""
    if labels.numel() == 0:
        return {k: None for k in ks}
    return {k: top_k_hits(logits, labels, k).double().mean().item() for k in ks}


def per_class_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, ks: Iterable[int] = TOP_KS
) -> dict[int, float | None]:
    """Top-k accuracy per class present in `labels`, averaged over those classes."""
    if labels.numel() == 0:
        return {k: None for k in ks}
    classes = labels.unique()
    result = {}
    for k in ks:
        hits = top_k_hits(logits, labels, k).double()
        means = torch.stack([hits[labels == c].mean() for c in classes])
        result[k] = means.mean().item()
    return result


def class_accuracies(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int, k: int = 1
) -> list[float | None]:
    """Top-k accuracy of every class (None for classes absent from `labels`)."""
    hits = top_k_hits(logits, labels, k).float() if labels.numel() else labels.float()
    return [
        hits[labels == c].mean().item() if bool((labels == c).any()) else None
        for c in range(num_classes)
    ]


def confusion_matrix(
    labels: torch.Tensor, predictions: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """`(num_classes, num_classes)` counts: row = true class, column = predicted."""
    index = labels.long() * num_classes + predictions.long()
    counts = torch.bincount(index, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def precision_recall_f1(confusion: torch.Tensor) -> torch.Tensor:
    """Per-class precision, recall and F1 from a confusion matrix.

    Returns:
        `(C, 3)` float: precision, recall, F1 per class; 0 where undefined
        (no prediction of, or no sample of, the class).
    """
    confusion = confusion.double()
    true_positive = confusion.diagonal()
    predicted = confusion.sum(dim=0)
    actual = confusion.sum(dim=1)
    precision = torch.where(predicted > 0, true_positive / predicted.clamp(min=1), 0)
    recall = torch.where(actual > 0, true_positive / actual.clamp(min=1), 0)
    denominator = precision + recall
    f1 = torch.where(
        denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-12), 0
    )
    return torch.stack([precision, recall, f1], dim=1).float()


BOOTSTRAP_RESAMPLES = 2000


def bootstrap_ci95(
    hits: torch.Tensor, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """The 95% percentile-bootstrap interval of the mean of `hits` `(N,)` bool, or
    None when N is 0."""
    if hits.numel() == 0:
        return None
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randint(hits.numel(), (resamples, hits.numel()), generator=generator)
    means = hits.float()[rows].mean(dim=1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975])).tolist()
    return low, high


def signer_accuracies(
    predictions: HeadPredictions, signers: list[str | None]
) -> dict[str, dict] | None:
    """`{signer: {"top1": ..., "samples": ...}}` over the labelled samples, sorted by
    signer; None when no sample names a signer."""
    if not any(signer is not None for signer in signers):
        return None
    hits = top_k_hits(predictions.logits, predictions.labels.clamp(min=0), 1)
    groups: dict[str, list[bool]] = {}
    for signer, hit, label in zip(signers, hits.tolist(), predictions.labels.tolist()):
        if label != IGNORE_INDEX:
            groups.setdefault("none" if signer is None else str(signer), []).append(hit)
    return {
        signer: {"top1": sum(values) / len(values), "samples": len(values)}
        for signer, values in sorted(groups.items())
    }


def head_results(
    predictions: HeadPredictions, signers: list[str | None] | None = None
) -> HeadRes:
    """Top-k accuracies (per instance and per class), the top-1 interval, the loss
    and, given each sample's signer, the per-signer top-1 of one head."""
    logits, labels = predictions.labelled()
    instance = per_instance_accuracy(logits, labels)
    per_class = per_class_accuracy(logits, labels)
    loss = None
    if labels.numel():
        loss = torch.nn.functional.cross_entropy(logits.float(), labels).item()
    return HeadRes(
        top_k_per_instance_acc=TopKRes(*(instance[k] for k in TOP_KS)),
        top_k_average_per_class_acc=TopKRes(*(per_class[k] for k in TOP_KS)),
        loss=loss,
        labelled=int(labels.numel()),
        top1_ci95=bootstrap_ci95(top_k_hits(logits, labels, 1)),
        per_signer=signer_accuracies(predictions, signers) if signers else None,
    )


def average_loss(
    predictions: dict[str, HeadPredictions], loss_weights: dict[str, float]
) -> float | None:
    """The training loss over the whole set (None when no head has a label)."""
    if not any(bool((p.labels != IGNORE_INDEX).any()) for p in predictions.values()):
        return None
    total, _ = weighted_multi_head_loss(
        {head: p.logits for head, p in predictions.items()},
        {head: p.labels for head, p in predictions.items()},
        loss_weights,
    )
    return total.item()


# --- frame shuffling ------------------------------------------------------------------


def make_permutation(length: int, seed: int) -> list[int]:
    """A seeded permutation of `range(length)`, not the identity when length > 1."""
    generator = torch.Generator().manual_seed(seed)
    identity = list(range(length))
    perm = identity
    while length > 1 and perm == identity:
        perm = torch.randperm(length, generator=generator).tolist()
    return perm


def permutation_entropy(perm: list[int]) -> float:
    """The Shannon entropy, in bits, of a permutation's displacements.

    Position i of the shuffled clip shows the frame sampled at ``perm[i]``, displaced
    by ``d_i = perm[i] - i`` (signed: forward and backward moves differ). With
    ``p(d)`` the share of positions displaced by d, the entropy is
    ``H = -sum_d p(d) * log2 p(d)``. The identity scores 0 (every frame stays, one
    displacement value); a permutation that moves frames by many different offsets
    scores high, at most ``log2(len(perm))`` (every displacement distinct). A
    rotation of the clip (every frame moved by the same offset, with wrap-around)
    scores low: it keeps most of the local order.
    """
    if not perm:
        return 0.0
    counts = Counter(target - position for position, target in enumerate(perm))
    total = len(perm)
    entropy = -sum(c / total * math.log2(c / total) for c in counts.values())
    return entropy + 0.0  # no -0.0


def restricted_permutation(perm: list[int], length: int) -> list[int]:
    """`perm` restricted to the first `length` positions: its entries below `length`,
    in order (a permutation of `range(length)`)."""
    return [index for index in perm if index < length]


def shuffle_batch(batch: dict, perm: list[int]) -> dict:
    """Permute every clip of a collated batch in time (see the module docstring).

    Frames, landmarks, landmark masks and precomputed feature rows move together;
    padded positions (mask False, always at the end) stay where they are, so
    `mask` does not change.

    Args:
        batch: a batch from `collate_clips`.
        perm: a permutation of `range(n)` with n >= the batch's clip length.

    Returns:
        The same batch with its time-indexed tensors replaced by shuffled copies.
    """
    keys = [
        k for k in ("frames", "landmarks", "landmark_mask", "features") if k in batch
    ]
    lengths = batch["mask"].sum(dim=1).tolist()
    time_steps = batch["mask"].shape[1]
    if time_steps > len(perm):
        raise ValueError(
            f"the permutation covers {len(perm)} positions, the batch has {time_steps}"
        )
    for key in keys:
        shuffled = batch[key].clone()
        for row, length in enumerate(lengths):
            order = torch.tensor(restricted_permutation(perm, int(length)))
            if len(order):
                shuffled[row, : len(order)] = batch[key][row, order]
        batch[key] = shuffled
    return batch


class ShuffledCollate:
    """`collate_clips`, then `shuffle_batch` with a fixed permutation (picklable, so
    it works in DataLoader workers)."""

    def __init__(self, perm: list[int]) -> None:
        self.perm = list(perm)

    def __call__(self, items: list[dict]) -> dict:
        return shuffle_batch(collate_clips(items), self.perm)


# --- running a model over a set ------------------------------------------------------


def move_batch(batch: dict, device: torch.device) -> dict:
    """The batch with every tensor (labels included) on `device` (a text head's
    sentences, `texts`, stay as they are)."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            moved[key] = value.to(device)
        elif isinstance(value, dict):
            moved[key] = {
                k: v.to(device) if isinstance(v, torch.Tensor) else v
                for k, v in value.items()
            }
        else:
            moved[key] = value
    return moved


def collect_predictions(
    model: Callable[[dict], dict],
    batches: Iterable[dict],
    device: torch.device,
    expected: int,
    sequences: dict[str, SequenceHead] | None = None,
) -> dict[str, HeadPredictions | SequencePredictions]:
    """Run `model` over every batch and keep every head's logits and labels (CPU);
    a sequence head's decoded hypotheses, references and loss instead.

    Args:
        model: batch -> `{"logits": {head: (B, C)}, ...}`, in eval mode.
        batches: a non-shuffled loader without `drop_last` (each sample once).
        device: where the model runs.
        expected: the set's size; any other sample count is an error.
        sequences: the sequence heads (those whose outputs are `SequenceOutputs`).

    Raises:
        RuntimeError: the batches held a different number of samples, or a head
            not in `sequences` gave `SequenceOutputs`.
    """
    logits: dict[str, list[torch.Tensor]] = {}
    labels: dict[str, list[torch.Tensor]] = {}
    decoded: dict[str, SequencePredictions] = {}
    order: list[str] = []
    seen = 0
    with torch.inference_mode():
        for batch in batches:
            seen += batch["mask"].shape[0]
            outputs = model(move_batch(batch, device))
            for head, head_logits in outputs["logits"].items():
                if head not in order:
                    order.append(head)
                if isinstance(head_logits, SequenceOutputs):
                    if head not in (sequences or {}):
                        raise RuntimeError(f"head {head}: unexpected sequence outputs")
                    decoded.setdefault(
                        head, SequencePredictions((sequences or {})[head])
                    ).add(head_logits, batch["labels"][head].to(head_logits.lengths))
                    continue
                logits.setdefault(head, []).append(head_logits.float().cpu())
                labels.setdefault(head, []).append(batch["labels"][head].cpu())
    if seen != expected:
        raise RuntimeError(
            f"evaluated {seen} samples, but the set has {expected}; every sample "
            "must be counted exactly once"
        )
    return {
        head: (
            decoded[head]
            if head in decoded
            else HeadPredictions(torch.cat(logits[head]), torch.cat(labels[head]))
        )
        for head in order
    }


def check_label_range(
    predictions: dict[str, HeadPredictions], num_classes: dict[str, int]
) -> str | None:
    """A message naming the first head with a label outside its classes, or None
    (sequence heads are checked when the data is read)."""
    for head, prediction in predictions.items():
        if not isinstance(prediction, HeadPredictions):
            continue
        labels = prediction.labels[prediction.labels != IGNORE_INDEX]
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes[head]):
            return (
                f"head {head}: the data has label {int(labels.max())}, but the "
                f"checkpoint's head has {num_classes[head]} classes"
            )
    return None


def evaluate_predictions(  # pylint: disable=too-many-arguments
    predictions: dict[str, HeadPredictions | SequencePredictions],
    loss_weights: dict[str, float],
    *,
    set_name: str,
    checkpoint: str,
    perm: list[int] | None = None,
    signers: list[str | None] | None = None,
    label_names: dict[str, list[str]] | None = None,
) -> EvalRes:
    """Every metric of a set from its collected predictions (`signers`: each
    sample's signer, in sample order, for the per-signer breakdown; `label_names`:
    each head's class names, for a gloss-sequence head's BLEU over names)."""
    samples = len(next(iter(predictions.values()))) if predictions else 0
    heads: dict[str, HeadRes | SequenceRes] = {
        head: (
            head_results(p, signers)
            if isinstance(p, HeadPredictions)
            else sequence_head_results(p, (label_names or {}).get(head, []))
        )
        for head, p in predictions.items()
    }
    classes = {
        head: p for head, p in predictions.items() if isinstance(p, HeadPredictions)
    }
    if len(classes) == len(predictions):
        loss = average_loss(classes, loss_weights)
    else:
        loss = weighted_loss(
            {head: res.loss for head, res in heads.items()}, loss_weights
        )
    return EvalRes(
        set=set_name,
        samples=samples,
        checkpoint=checkpoint,
        heads=heads,
        average_loss=loss,
        perm=list(perm) if perm is not None else None,
        shannon_entropy=permutation_entropy(perm) if perm is not None else None,
        predictions=predictions,
    )


def format_table(result: EvalRes) -> str:
    """A short per-head table of a result, for the terminal."""

    def cell(value: float | None, width: int = 7, digits: int = 3) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    title = f"{result.set}: {result.samples} samples, checkpoint {result.checkpoint}"
    if result.perm is not None:
        title += (
            f"\nframes shuffled with perm {result.perm} "
            f"(Shannon entropy {result.shannon_entropy:.3f} bits)"
        )
    classes = {
        head: res for head, res in result.heads.items() if isinstance(res, HeadRes)
    }
    width = max([len("head"), *(len(head) for head in classes)])
    header = (
        f"{'head':<{width}}  {'top1':>7}{'top5':>7}{'top10':>7}"
        f"  {'cls1':>7}{'cls5':>7}{'cls10':>7}  {'loss':>8}  {'n':>6}"
    )
    lines = [title, header] if classes else [title]
    for head, res in classes.items():
        instance = res.top_k_per_instance_acc
        per_class = res.top_k_average_per_class_acc
        lines.append(
            f"{head:<{width}}  "
            + "".join(cell(v) for v in (instance.top1, instance.top5, instance.top10))
            + "  "
            + "".join(
                cell(v) for v in (per_class.top1, per_class.top5, per_class.top10)
            )
            + f"  {cell(res.loss, 8, 4)}  {res.labelled:>6}"
        )
    for head, res in result.heads.items():
        if isinstance(res, SequenceRes):
            lines.append(table_line(head, res))
    lines.append(
        "top1/5/10: per-instance accuracy; cls1/5/10: average per-class accuracy; "
        f"n: labelled samples. average loss: {cell(result.average_loss, 0, 4)}"
    )
    if len(classes) < len(result.heads):
        lines.append(
            "wer: word error rate (a fraction); bleu4, chrf: corpus BLEU-4 and chrF "
            "(0-100; a gloss sequence's BLEU over its gloss names)"
        )
    for head, res in classes.items():
        if res.top1_ci95 is not None:
            low, high = res.top1_ci95
            lines.append(f"{head}: top1 95% bootstrap interval [{low:.3f}, {high:.3f}]")
        for signer, entry in (res.per_signer or {}).items():
            lines.append(
                f"{head}: signer {signer}: top1 {entry['top1']:.3f} "
                f"({entry['samples']} samples)"
            )
    return "\n".join(lines)


def final_metrics(
    callback_metrics: dict,
    heads: dict[str, str],
    names: dict[str, tuple[str, ...]] | None = None,
) -> dict:
    """metrics.json's numbers from logged validation metrics (`val/loss`,
    `val/<head>/top1`, ...): val loss, each head's metrics (`names`: head -> what
    its kind logs, `models.heads.sequence.head_metric_names`; default top-1/top-5/
    loss), mean top-1 per group (`heads`: head -> its classification mode) over
    the heads that log top-1."""

    def value(key: str) -> float | None:
        metric = callback_metrics.get(key)
        return None if metric is None else float(metric)

    per_head = {
        head: {
            k: value(metric_name("val", head, k))
            for k in (names or {}).get(head, HEAD_METRICS)
        }
        for head in heads
    }
    groups: dict[str, list[float]] = {}
    for head, group in heads.items():
        if per_head[head].get("top1") is not None:
            groups.setdefault(group, []).append(per_head[head]["top1"])
    return {
        "val_loss": value(metric_name("val", None, "loss")),
        "heads": per_head,
        "mean_top1": {group: sum(v) / len(v) for group, v in groups.items()},
    }
