"""Corpus metrics of sentences and gloss sequences: BLEU, chrF (sacrebleu) and WER
(torchmetrics, the same number as jiwer).

Scales as the field reports them: BLEU and chrF from 0 to 100 (sacrebleu's), WER as a
fraction (jiwer's: word edits over reference words, so it can exceed 1).

BLEU is sacrebleu's corpus BLEU-4 with its defaults: the `13a` tokenisation (that of
WMT's `mteval-v13a.pl`), case-sensitive, `exp` smoothing (the NIST smoothing of an
n-gram order without a match); chrF is sacrebleu's chrF2 (character 6-grams, no word
n-grams, beta 2). A corpus score is not a mean of sentence scores: BLEU sums matching
n-gram counts over the corpus first. `bleu_statistics` gives those sums (sacrebleu's
sufficient statistics), so that a metric accumulated over batches or processes adds
them up and computes the score once with `bleu_from_statistics`.

`references` is one reference per hypothesis (a list of strings), or sacrebleu's
layout of several reference streams (a list of such lists, each as long as the
hypotheses).
"""

from __future__ import annotations

from typing import Sequence

import sacrebleu
from sacrebleu.metrics.bleu import BLEU, MAX_NGRAM_ORDER
from torchmetrics.functional.text import word_error_rate

#: The n-gram orders of BLEU-4.
BLEU_ORDER = MAX_NGRAM_ORDER
#: `bleu_statistics`' layout (sacrebleu's): hypothesis length, reference length, the
#: matching n-grams of orders 1..4, then the hypothesis n-grams of orders 1..4.
BLEU_STATISTICS = ("sys_len", "ref_len") + tuple(
    f"{kind}_{order}"
    for kind in ("correct", "total")
    for order in range(1, BLEU_ORDER + 1)
)

References = Sequence[str] | Sequence[Sequence[str]]


def _streams(hypotheses: Sequence[str], references: References) -> list[list[str]]:
    """`references` as sacrebleu's list of reference streams, each checked to hold
    one string per hypothesis."""
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError("hypotheses and references are lists of strings, not a string")
    references = list(references)
    if references and all(isinstance(item, str) for item in references):
        streams = [references]
    else:
        streams = [list(stream) for stream in references]
    for number, stream in enumerate(streams, 1):
        if len(stream) != len(hypotheses) or not all(
            isinstance(item, str) for item in stream
        ):
            raise ValueError(
                f"reference stream {number} holds {len(stream)} items for "
                f"{len(hypotheses)} hypotheses; expected one string per hypothesis"
            )
    if not all(isinstance(item, str) for item in hypotheses):
        raise TypeError("every hypothesis must be a string")
    return streams


def bleu_statistics(hypotheses: Sequence[str], references: References) -> list[int]:
    """sacrebleu's sufficient statistics of corpus BLEU, in `BLEU_STATISTICS`'
    order; summing the lists of two parts of a corpus gives the whole corpus's.

    An empty corpus gives zeros (a BLEU of 0).
    """
    streams = _streams(hypotheses, references)
    total = [0] * len(BLEU_STATISTICS)
    if not hypotheses:
        return total
    # sacrebleu has no public door to the per-sentence statistics; this is the one
    # its own corpus_score and significance tests use.
    # pylint: disable-next=protected-access
    for sentence in BLEU()._extract_corpus_statistics(list(hypotheses), streams):
        total = [a + int(b) for a, b in zip(total, sentence)]
    return total


def bleu_from_statistics(statistics: Sequence[float]) -> float:
    """Corpus BLEU (0-100) from summed `bleu_statistics` (a list, or a tensor's
    values), as sacrebleu computes it: `exp` smoothing, the brevity penalty."""
    values = [int(value) for value in statistics]
    if len(values) != len(BLEU_STATISTICS):
        raise ValueError(
            f"expected {len(BLEU_STATISTICS)} BLEU statistics "
            f"({', '.join(BLEU_STATISTICS)}), got {len(values)}"
        )
    score = BLEU.compute_bleu(
        correct=values[2 : 2 + BLEU_ORDER],
        total=values[2 + BLEU_ORDER :],
        sys_len=values[0],
        ref_len=values[1],
        smooth_method="exp",
    )
    return float(score.score)


def corpus_bleu(hypotheses: Sequence[str], references: References) -> float:
    """sacrebleu's corpus BLEU-4 (0-100; 13a tokens, `exp` smoothing); 0.0 for an
    empty corpus."""
    streams = _streams(hypotheses, references)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)


def corpus_chrf(hypotheses: Sequence[str], references: References) -> float:
    """sacrebleu's corpus chrF2 (0-100); 0.0 for an empty corpus."""
    streams = _streams(hypotheses, references)
    if not hypotheses:
        return 0.0
    return float(sacrebleu.corpus_chrf(list(hypotheses), streams).score)


def corpus_wer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Word error rate over the corpus, as jiwer computes it: the word
    substitutions, deletions and insertions that turn the references into the
    hypotheses, over the reference words (a fraction; above 1 when a system inserts
    many words).

    Raises:
        ValueError: the references hold no word (the rate is undefined), or the two
            lists differ in length.
    """
    stream = list(references) if not isinstance(references, str) else None
    if stream is None or not all(isinstance(item, str) for item in stream):
        raise TypeError("references are a list of strings (one per hypothesis)")
    if len(stream) != len(hypotheses):
        raise ValueError(
            f"{len(hypotheses)} hypotheses for {len(stream)} references; expected "
            "one reference per hypothesis"
        )
    _streams(hypotheses, [stream])  # the hypotheses' checks
    words = sum(len(reference.split()) for reference in stream)
    if not words:
        raise ValueError(
            f"WER is undefined: the {len(stream)} reference(s) hold no word "
            "(errors are counted per reference word)"
        )
    return float(word_error_rate(list(hypotheses), stream))
