"""The `t5` head kind: a tiny random T5 from a local word tokenizer, teacher-forced
logits, generation in eval mode, its loss and metrics, and its settings' errors."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from config.registry import HEAD_KIND_FACTS, settings_problems
from config.schema import SignpipeConfig, model_problems
from datasets.targets import TextTarget, pad_ids
from models.heads import head_kind
from models.heads.sequence import HeadInput, head_metric_names
from models.heads.sequence_metrics import Chrf, CorpusBleu
from models.heads.t5 import T5Settings
from utils.errors import ConfigError
from utils.text_metrics import corpus_bleu, corpus_chrf
from utils.tokenizer import build_word_tokenizer, load_tokenizer

SENTENCES = ["book go", "mother drink chair"]
TINY = {
    "model_dim": 16,
    "num_layers": 1,
    "num_decoder_layers": 1,
    "num_heads": 2,
    "feedforward_size": 32,
    "t5_dropout": 0.0,
    "max_target_length": 6,
}


@pytest.fixture
def tokenizer_path(tmp_path: Path) -> Path:
    """A word tokenizer of five words (eight tokens with the special ones)."""
    return build_word_tokenizer(["book drink chair mother go"], tmp_path / "tok")


def _layer(tokenizer_path: Path, **settings):
    tokenizer = load_tokenizer(tokenizer_path, "key")
    layer = head_kind("t5").layer(
        input_dim=8,
        num_classes=len(tokenizer),
        additional_layers=0,
        dropout=0.0,
        settings=T5Settings(tokenizer_path=str(tokenizer_path), **{**TINY, **settings}),
    )
    return layer, tokenizer


def _inputs(tokenizer, with_target: bool = True) -> HeadInput:
    torch.manual_seed(0)
    frames = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1, 3:] = False
    target = pad_ids([TextTarget(tokenizer).encode(s) for s in SENTENCES])
    return HeadInput(
        frames[:, 0],
        frames,
        mask,
        target if with_target else None,
        list(SENTENCES) if with_target else None,
    )


def test_teacher_forced_logits_and_generation(tokenizer_path: Path) -> None:
    kind = head_kind("t5")
    assert head_metric_names(kind) == ("bleu4", "chrf", "loss")
    assert HEAD_KIND_FACTS.known("t5").label == "text"
    layer, tokenizer = _layer(tokenizer_path)
    inputs = _inputs(tokenizer)
    outputs = layer(inputs)
    assert outputs.logits.shape == (2, inputs.target.shape[1], len(tokenizer))
    assert outputs.lengths.tolist() == [3, 4]  # the words and </s>
    assert outputs.hypotheses is None  # training: no generation
    layer.eval()
    outputs = layer(_inputs(tokenizer, with_target=False))
    assert outputs.logits is None
    assert len(outputs.hypotheses) == 2
    assert all(isinstance(h, str) for h in outputs.hypotheses)
    assert all(len(h.split()) <= TINY["max_target_length"] for h in outputs.hypotheses)


def test_the_loss_falls_and_the_sentences_come_out(tokenizer_path: Path) -> None:
    kind = head_kind("t5")
    layer, tokenizer = _layer(tokenizer_path)
    inputs = _inputs(tokenizer)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        summed, count = kind.loss(layer(inputs), inputs.target, 0.0)
        assert int(count) == 2
        optimizer.zero_grad()
        (summed / count).backward()
        optimizer.step()
        losses.append(float(summed.detach() / count))
    assert losses[-1] < 0.5 * losses[0]
    layer.eval()
    outputs = layer(inputs)
    hypotheses, references = kind.metric_inputs(outputs, inputs.target)
    assert references == SENTENCES
    assert hypotheses == SENTENCES  # two sentences are learnt by heart
    assert kind.predict(outputs) == SENTENCES


def test_label_smoothing_and_unlabelled_samples(tokenizer_path: Path) -> None:
    kind = head_kind("t5")
    layer, tokenizer = _layer(tokenizer_path)
    inputs = _inputs(tokenizer)
    inputs.target[1] = -100  # the second sample has no sentence
    outputs = layer(inputs)
    plain, count = kind.loss(outputs, inputs.target, 0.0)
    smoothed, _ = kind.loss(outputs, inputs.target, 0.2)
    assert int(count) == 1 and float(plain.detach()) != float(smoothed.detach())


def test_metrics_are_the_corpus_scores() -> None:
    hypotheses = ["the quick brown fox jumps", "a b c"]
    references = ["the quick red fox jumps", "a c b"]
    bleu, chrf = CorpusBleu(), Chrf()
    for index in range(2):  # one sentence per batch: the corpus score all the same
        bleu.update(hypotheses[index : index + 1], references[index : index + 1])
        chrf.update(hypotheses[index : index + 1], references[index : index + 1])
    assert float(bleu.compute()) == pytest.approx(corpus_bleu(hypotheses, references))
    assert float(chrf.compute()) == pytest.approx(corpus_chrf(hypotheses, references))
    bleu.reset()
    bleu.update(["book read you mother go store"], ["book you read mother go"])
    assert float(bleu.compute()) == pytest.approx(20.41, abs=0.01)


def _config(tmp_path: Path, heads: dict) -> dict:
    return {
        "general_parameters": {"data_path": str(tmp_path)},
        "train_parameters": {"classification_mode": "gloss"},
        "heads": {"gloss": heads},
    }


def test_settings_problems_name_the_head_key(tmp_path: Path) -> None:
    raw = _config(tmp_path, {"text": {"kind": "t5", "tokenzier_path": "x"}})
    with pytest.raises(ValueError) as error:
        SignpipeConfig.model_validate(raw)
    message = str(error.value)
    assert (
        "heads.gloss.text.tokenzier_path: unknown key for head kind 't5' (did you "
        "mean 'tokenizer_path'?)" in message
    )
    assert "heads.gloss.text.tokenizer_path: a t5 head needs the folder" in message
    config = SignpipeConfig.model_validate(
        _config(tmp_path, {"text": {"kind": "t5", "tokenizer_path": "x"}})
    )
    head = config.heads.gloss["text"]
    assert not settings_problems(
        head, HEAD_KIND_FACTS, name="t5", where="heads.gloss.text"
    )
    assert config.tokenizer_paths() == {"text": "x"}
    # A classification head's typo is reported the same way, by model_problems.
    raw = _config(tmp_path, {"gloss": {"loss_wieght": 2}})
    with pytest.raises(ValueError, match=r"heads\.gloss\.gloss\.loss_wieght: unknown"):
        SignpipeConfig.model_validate(raw)
    # A crop cuts signs a sequence still names.
    raw = _config(tmp_path, {"glosses": {"kind": "ctc"}})
    raw["landmarks_parameters"] = {"apply_crop": True}
    with pytest.raises(ValueError, match="landmarks_parameters.apply_crop: a crop"):
        SignpipeConfig.model_validate(raw)
    del raw["landmarks_parameters"]
    assert not model_problems(SignpipeConfig.model_validate(raw))


def test_num_class_must_be_the_vocabulary(tokenizer_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"num_class \(a t5 head\): 9, but the tokenizer"
    ):
        head_kind("t5").layer(
            input_dim=8,
            num_classes=9,
            additional_layers=0,
            dropout=0.0,
            settings=T5Settings(tokenizer_path=str(tokenizer_path), **TINY),
        )


def test_a_missing_tokenizer_folder_is_a_config_error(tmp_path: Path) -> None:
    settings = T5Settings(tokenizer_path=str(tmp_path / "nowhere"), **TINY)
    with pytest.raises(ConfigError, match=r"tokenizer_path \(a t5 head\): tokeni"):
        head_kind("t5").layer(
            input_dim=8,
            num_classes=8,
            additional_layers=0,
            dropout=0.0,
            settings=settings,
        )


def test_a_pretrained_model_with_another_vocabulary(
    tokenizer_path: Path, tmp_path: Path
) -> None:
    # pylint: disable-next=import-outside-toplevel
    from transformers import T5Config, T5ForConditionalGeneration

    saved = tmp_path / "t5"
    T5ForConditionalGeneration(
        T5Config(  # pylint: disable=unexpected-keyword-arg
            vocab_size=12,
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_heads=2,
            decoder_start_token_id=0,
        )
    ).save_pretrained(str(saved))
    with pytest.raises(ConfigError, match="has 12 tokens, the tokenizer 8"):
        _layer(tokenizer_path, pretrained_path=str(saved))
