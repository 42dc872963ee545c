"""Decoding CTC outputs: greedy (best path) on the device, and prefix beam search."""

from __future__ import annotations

import math
from collections import defaultdict

import torch

NEG_INF = -math.inf


def greedy_decode(
    logits: torch.Tensor, lengths: torch.Tensor, blank: int
) -> list[list[int]]:
    """Best-path decoding: the likeliest token per step, repeats collapsed, blanks
    dropped.

    Args:
        logits: `(B, T, C + 1)` scores (log-probabilities or logits).
        lengths: `(B,)` the valid steps per sample.
        blank: the blank's index.

    Returns:
        The class ids per sample (one transfer to the CPU for the whole batch).
    """
    best = logits.argmax(dim=-1)
    keep = best != blank
    keep[:, 1:] &= best[:, 1:] != best[:, :-1]
    steps = torch.arange(best.shape[1], device=best.device)
    keep &= steps[None, :] < lengths[:, None]
    rows = best.masked_fill(~keep, -1).tolist()
    return [[token for token in row if token >= 0] for row in rows]


def _add(*values: float) -> float:
    """log(sum(exp(values))), -inf for none."""
    top = max(values)
    if top == NEG_INF:
        return NEG_INF
    return top + math.log(sum(math.exp(value - top) for value in values))


def _total(scores: tuple[float, float]) -> float:
    return _add(*scores)


def prefix_beam_search(
    log_probs: torch.Tensor, blank: int, beam_size: int
) -> list[int]:
    """The likeliest label sequence of one sample by CTC prefix beam search.

    Each prefix keeps the probability of the paths ending in a blank and of those
    ending in its last token, so repeated tokens separated by a blank are counted
    apart from a token held over several steps. Per step only the `beam_size + 1`
    likeliest tokens extend a prefix.

    Args:
        log_probs: `(T, C + 1)` log-probabilities of the valid steps (CPU).
        blank: the blank's index.
        beam_size: prefixes kept per step.
    """
    steps = log_probs.double().tolist()
    width = min(len(steps[0]) if steps else 1, beam_size + 1)
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for row in steps:
        candidates = sorted(range(len(row)), key=row.__getitem__)[-width:]
        following: dict[tuple[int, ...], tuple[float, float]] = defaultdict(
            lambda: (NEG_INF, NEG_INF)
        )
        for prefix, (ends_blank, ends_token) in beams.items():
            for token in candidates:
                score = row[token]
                if token == blank:
                    old_blank, old_token = following[prefix]
                    following[prefix] = (
                        _add(old_blank, ends_blank + score, ends_token + score),
                        old_token,
                    )
                    continue
                extended = prefix + (token,)
                old_blank, old_token = following[extended]
                if prefix and token == prefix[-1]:
                    # A repeat needs a blank between; without one it stays `prefix`.
                    following[extended] = (
                        old_blank,
                        _add(old_token, ends_blank + score),
                    )
                    same_blank, same_token = following[prefix]
                    following[prefix] = (
                        same_blank,
                        _add(same_token, ends_token + score),
                    )
                else:
                    following[extended] = (
                        old_blank,
                        _add(old_token, ends_blank + score, ends_token + score),
                    )
        ranked = sorted(following.items(), key=lambda item: _total(item[1]))
        beams = dict(ranked[-beam_size:])
    best = max(beams.items(), key=lambda item: _total(item[1]))
    return list(best[0])


def beam_decode(
    logits: torch.Tensor, lengths: torch.Tensor, blank: int, beam_size: int
) -> list[list[int]]:
    """`prefix_beam_search` of every sample of a `(B, T, C + 1)` batch."""
    log_probs = logits.float().log_softmax(dim=-1).cpu()
    return [
        prefix_beam_search(log_probs[index, : int(length)], blank, beam_size)
        for index, length in enumerate(lengths.tolist())
    ]
