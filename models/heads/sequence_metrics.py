"""The metrics of sequence heads as torchmetrics objects, on the scales the field
reports (see `utils.text_metrics`): corpus BLEU-4 and chrF from 0 to 100
(sacrebleu's), WER as a fraction (jiwer's).

Each keeps sums, not lists of strings: BLEU and chrF their matching and total n-gram
counts (sacrebleu's sufficient statistics), so a score accumulated over batches and
processes is the corpus score, and `reset` between epochs starts from zero.
"""

from __future__ import annotations

import torch
from sacrebleu.metrics.chrf import CHRF
from torchmetrics import Metric
from torchmetrics.text import WordErrorRate

from utils.text_metrics import BLEU_STATISTICS, bleu_from_statistics, bleu_statistics

__all__ = ["CorpusBleu", "Chrf", "WordErrorRate"]


class CorpusBleu(Metric):  # pylint: disable=abstract-method
    """sacrebleu's corpus BLEU-4 (0-100): `update(hypotheses, references)` with one
    reference string per hypothesis."""

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state(
            "statistics",
            default=torch.zeros(len(BLEU_STATISTICS), dtype=torch.float64),
            dist_reduce_fx="sum",
        )

    def update(  # pylint: disable=arguments-differ
        self, hypotheses: list[str], references: list[str]
    ) -> None:
        """Add a batch's n-gram counts."""
        counts = bleu_statistics(list(hypotheses), list(references))
        self.statistics += torch.tensor(
            counts, dtype=torch.float64, device=self.statistics.device
        )

    def compute(self) -> torch.Tensor:
        """The corpus score of everything added since the last reset."""
        return torch.tensor(bleu_from_statistics(self.statistics.tolist()))


class Chrf(Metric):  # pylint: disable=abstract-method
    """sacrebleu's corpus chrF2 (0-100): character 6-grams, no word n-grams, beta 2;
    `update(hypotheses, references)` with one reference string per hypothesis."""

    full_state_update = False
    higher_is_better = True

    def __init__(self) -> None:
        super().__init__()
        self._chrf = CHRF()
        size = 3 * (self._chrf.char_order + self._chrf.word_order)
        self.add_state(
            "statistics",
            default=torch.zeros(size, dtype=torch.float64),
            dist_reduce_fx="sum",
        )

    def update(  # pylint: disable=arguments-differ
        self, hypotheses: list[str], references: list[str]
    ) -> None:
        """Add a batch's character n-gram counts."""
        if not hypotheses:
            return
        # sacrebleu's per-sentence statistics (as for BLEU in utils.text_metrics):
        # summed, they give the corpus score exactly.
        # pylint: disable-next=protected-access
        sentences = self._chrf._extract_corpus_statistics(
            list(hypotheses), [list(references)]
        )
        self.statistics += torch.tensor(
            [sum(column) for column in zip(*sentences)],
            dtype=torch.float64,
            device=self.statistics.device,
        )

    def compute(self) -> torch.Tensor:
        """The corpus chrF2 of everything added since the last reset, 0-100."""
        values = [int(value) for value in self.statistics.tolist()]
        # pylint: disable-next=protected-access
        return torch.tensor(float(self._chrf._compute_score_from_stats(values).score))
