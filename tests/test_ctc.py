"""The `ctc` head kind: decoding, loss, layer and metric inputs."""

from __future__ import annotations

import torch

from models.heads import head_kind
from models.heads.ctc_decode import beam_decode, greedy_decode, prefix_beam_search
from models.heads.sequence import HeadInput, SequenceOutputs, head_metric_names
from models.registry import kind_trait
from utils.constants import IGNORE_INDEX
from utils.text_metrics import corpus_wer

BLANK = 3  # three classes, the blank last


def one_hot_logits(path: list[int], classes: int = 4) -> torch.Tensor:
    """`(1, T, classes)` logits that pick `path` step by step."""
    logits = torch.full((1, len(path), classes), -10.0)
    for step, token in enumerate(path):
        logits[0, step, token] = 10.0
    return logits


def test_greedy_collapses_repeats_and_drops_blanks() -> None:
    logits = one_hot_logits([0, 0, BLANK, 0, 1, 1, BLANK, 2, 2])
    assert greedy_decode(logits, torch.tensor([9]), BLANK) == [[0, 0, 1, 2]]
    # Steps beyond a sample's length are not read.
    assert greedy_decode(logits, torch.tensor([5]), BLANK) == [[0, 0, 1]]
    assert beam_decode(logits, torch.tensor([9]), BLANK, 4) == [[0, 0, 1, 2]]


def test_beam_search_sums_the_paths_of_a_prefix() -> None:
    """Two steps of p(blank) 0.6, p(a) 0.4: the best path is blank-blank (""),
    but "a" has the paths a-blank, blank-a and a-a: 0.64 > 0.36."""
    log_probs = torch.tensor([[0.4, 0.6], [0.4, 0.6]]).log()
    assert greedy_decode(log_probs[None], torch.tensor([2]), 1) == [[]]
    assert prefix_beam_search(log_probs, blank=1, beam_size=2) == [0]


def test_layer_outputs_and_decoding_in_eval_mode() -> None:
    kind = head_kind("ctc")
    assert kind_trait(kind, "inputs") == "frames"
    assert kind_trait(kind, "metric_stages") == ("val", "test")
    assert head_metric_names(kind) == ("wer", "loss")
    layer = kind.layer(input_dim=8, num_classes=3, additional_layers=1, dropout=0.0)
    frames = torch.randn(2, 6, 8)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    outputs = layer(HeadInput(frames[:, 0], frames, mask))
    assert outputs.logits.shape == (2, 6, 4)  # the classes and the blank
    assert outputs.lengths.tolist() == [6, 4]
    assert outputs.hypotheses is None  # training mode: no decoding
    layer.eval()
    outputs = layer(HeadInput(frames[:, 0], frames, mask))
    assert len(outputs.hypotheses) == 2
    assert all(
        word in "0 1 2".split() for h in outputs.hypotheses for word in h.split()
    )


def test_loss_counts_labelled_samples_only() -> None:
    kind = head_kind("ctc")
    logits = torch.randn(3, 8, 4, requires_grad=True)
    outputs = SequenceOutputs(logits=logits, lengths=torch.tensor([8, 8, 8]))
    target = torch.tensor(
        [[0, 1, 2], [2, IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX] * 3]
    )
    summed, count = kind.loss(outputs, target, 0.0)
    assert int(count) == 2 and torch.isfinite(summed)
    summed.backward()
    assert logits.grad[2].abs().sum() == 0  # the unlabelled sample adds nothing
    # A target longer than the clip cannot be aligned: 0, not inf (zero_infinity).
    short = SequenceOutputs(logits=torch.randn(1, 2, 4), lengths=torch.tensor([2]))
    summed, count = kind.loss(short, torch.tensor([[0, 1, 2]]), 0.0)
    assert float(summed) == 0.0 and int(count) == 1


def test_loss_trains_the_layer_to_the_target() -> None:
    torch.manual_seed(0)
    kind = head_kind("ctc")
    layer = kind.layer(input_dim=4, num_classes=3, additional_layers=0, dropout=0.0)
    frames = torch.eye(4)[[0, 0, 3, 1, 1, 3, 2, 2]][None]  # a frame per "sign"
    mask = torch.ones(1, 8, dtype=torch.bool)
    target = torch.tensor([[0, 1, 2]])
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    for _ in range(60):
        summed, count = kind.loss(
            layer(HeadInput(frames[:, 0], frames, mask)), target, 0
        )
        optimizer.zero_grad()
        (summed / count).backward()
        optimizer.step()
    layer.eval()
    outputs = layer(HeadInput(frames[:, 0], frames, mask))
    assert outputs.hypotheses == ["0 1 2"]
    hypotheses, references = kind.metric_inputs(outputs, target)
    assert (hypotheses, references) == (["0 1 2"], ["0 1 2"])
    assert kind.predict(outputs) == ["0 1 2"]


def test_metric_inputs_and_wer() -> None:
    kind = head_kind("ctc")
    outputs = SequenceOutputs(
        logits=None, lengths=torch.tensor([1, 1, 1]), hypotheses=["1 2", "3", "4"]
    )
    target = torch.tensor([[1, 2, 5], [IGNORE_INDEX] * 3, [4, IGNORE_INDEX, 6]])
    hypotheses, references = kind.metric_inputs(outputs, target)
    assert hypotheses == ["1 2", "4"] and references == ["1 2 5", "4 6"]
    wer = kind.metrics(7)["wer"]
    wer.update(hypotheses, references)
    assert abs(float(wer.compute()) - corpus_wer(hypotheses, references)) < 1e-6
    assert abs(float(wer.compute()) - 0.4) < 1e-6  # 2 deletions in 5 words
