"""BLEU, chrF and WER on fixed strings, against sacrebleu 2.6.0's and jiwer 4.0.0's
published behaviour (values computed with those packages), and BLEU's statistics
summed over parts of a corpus."""

from __future__ import annotations

import pytest

from utils.text_metrics import (
    BLEU_STATISTICS,
    bleu_from_statistics,
    bleu_statistics,
    corpus_bleu,
    corpus_chrf,
    corpus_wer,
)

# sacrebleu's README example.
SYSTEM = [
    "The dog bit the man.",
    "It wasn't surprising.",
    "The man had just bitten him.",
]
REFS1 = ["The dog bit the man.", "It was not unexpected.", "The man bit him first."]
REFS2 = [
    "The dog had bit the man.",
    "No one was surprised.",
    "The man had bitten the dog.",
]


@pytest.mark.parametrize(
    "hypotheses, references, bleu",
    [
        (SYSTEM, [REFS1, REFS2], 48.53),
        (SYSTEM, REFS1, 45.07),
        (SYSTEM, [REFS1], 45.07),
        # No 3-gram matches: exp smoothing keeps the score above 0 (torchmetrics'
        # sacre_bleu_score, without smoothing, gives 0.0).
        (["the quick brown fox jumps"], ["the quick red fox jumps"], 30.21),
        (["book read you mother go store"], ["book you read mother go"], 20.41),
        (["a b c", "d e"], ["a c b", "d f"], 0.0),
        # 13a splits punctuation off words, but not "It's" or "3.5".
        (["Hello, world! It's 3.5 km."], ["Hello world, it is 3.5 km."], 24.45),
    ],
)
def test_corpus_bleu_matches_sacrebleu(hypotheses, references, bleu) -> None:
    assert corpus_bleu(hypotheses, references) == pytest.approx(bleu, abs=0.005)


@pytest.mark.parametrize(
    "hypotheses, references, statistics",
    [
        (SYSTEM, [REFS1, REFS2], (17, 18, [14, 7, 5, 3], [17, 14, 11, 8])),
        (["the quick brown fox jumps"], ["the quick red fox jumps"], None),
        (["a b c", "d e"], ["a c b", "d f"], (5, 5, [4, 0, 0, 0], [5, 3, 1, 0])),
        (
            ["Hello, world! It's 3.5 km."],
            ["Hello world, it is 3.5 km."],
            (8, 8, [6, 2, 1, 0], [8, 7, 6, 5]),
        ),
    ],
)
def test_bleu_statistics_are_sacrebleus_counts(
    hypotheses, references, statistics
) -> None:
    values = dict(zip(BLEU_STATISTICS, bleu_statistics(hypotheses, references)))
    counts = [values[f"correct_{n}"] for n in range(1, 5)]
    totals = [values[f"total_{n}"] for n in range(1, 5)]
    if statistics is None:
        assert counts == [4, 2, 0, 0] and totals == [5, 4, 3, 2]
        return
    sys_len, ref_len, correct, total = statistics
    assert (values["sys_len"], values["ref_len"]) == (sys_len, ref_len)
    assert (counts, totals) == (correct, total)


def test_readme_example_counts_precisions_and_brevity_penalty() -> None:
    values = bleu_statistics(SYSTEM, [REFS1, REFS2])
    named = dict(zip(BLEU_STATISTICS, values))
    precisions = [
        100 * named[f"correct_{n}"] / named[f"total_{n}"] for n in range(1, 5)
    ]
    assert precisions == pytest.approx([82.4, 50.0, 45.5, 37.5], abs=0.05)
    # 17 hypothesis words against the closest reference lengths, 18: BP 0.943.
    assert (named["sys_len"], named["ref_len"]) == (17, 18)
    assert bleu_from_statistics(values) == pytest.approx(48.53, abs=0.005)


def test_statistics_of_two_halves_add_up_to_the_whole_corpus() -> None:
    hypotheses = SYSTEM + ["the quick brown fox jumps", "book read you mother go store"]
    references = REFS1 + ["the quick red fox jumps", "book you read mother go"]
    whole = corpus_bleu(hypotheses, references)
    first = bleu_statistics(hypotheses[:2], references[:2])
    second = bleu_statistics(hypotheses[2:], references[2:])
    summed = [a + b for a, b in zip(first, second)]
    assert summed == bleu_statistics(hypotheses, references)
    assert bleu_from_statistics(summed) == pytest.approx(whole, abs=1e-9)
    # A corpus score is not the mean of its parts' scores.
    halves = (bleu_from_statistics(first) + bleu_from_statistics(second)) / 2
    assert halves != pytest.approx(whole, abs=0.01)


def test_statistics_read_from_a_tensor() -> None:
    torch = pytest.importorskip("torch")
    values = bleu_statistics(SYSTEM, REFS1)
    assert bleu_from_statistics(torch.tensor(values)) == pytest.approx(45.07, abs=0.005)
    with pytest.raises(ValueError, match="expected 10 BLEU statistics"):
        bleu_from_statistics(values[:4])


@pytest.mark.parametrize(
    "hypotheses, references, chrf",
    [
        (SYSTEM, [REFS1, REFS2], 59.73),
        (SYSTEM, REFS1, 50.04),
        (["book read you mother go store"], ["book you read mother go"], 53.54),
    ],
)
def test_corpus_chrf_matches_sacrebleu(hypotheses, references, chrf) -> None:
    assert corpus_chrf(hypotheses, references) == pytest.approx(chrf, abs=0.005)


@pytest.mark.parametrize(
    "references, hypotheses, wer",
    [
        (["BOOK READ YOU", "MOTHER GO"], ["BOOK YOU", "MOTHER GO STORE"], 0.4),
        (
            ["this is the reference", "there is another one"],
            ["this is the prediction", "there is an other sample"],
            0.5,
        ),
        (["a b"], ["x y z w"], 2.0),  # 2 substitutions + 2 insertions over 2 words
        (["a b"], [""], 1.0),
    ],
)
def test_corpus_wer_matches_jiwer(references, hypotheses, wer) -> None:
    assert corpus_wer(hypotheses, references) == pytest.approx(wer)


def test_empty_inputs_have_defined_results() -> None:
    assert corpus_bleu([], []) == 0.0
    assert corpus_chrf([], []) == 0.0
    assert bleu_statistics([], []) == [0] * len(BLEU_STATISTICS)
    assert bleu_from_statistics([0] * len(BLEU_STATISTICS)) == 0.0
    assert corpus_bleu([""], ["the reference"]) == 0.0
    assert corpus_bleu(["a hypothesis"], [""]) == 0.0
    with pytest.raises(ValueError, match="WER is undefined: the 0 reference"):
        corpus_wer([], [])
    with pytest.raises(ValueError, match="reference.s. hold no word"):
        corpus_wer(["a b"], ["  "])


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="reference stream 1 holds 1 items for 2"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="reference stream 2 holds 1 items"):
        corpus_chrf(["a", "b"], [["a", "b"], ["a"]])
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        corpus_wer(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="not a string"):
        corpus_bleu("a b", "a b")
