"""Sequence heads through train.py: a CTC head, a T5 head and a classification head
beside them, trained on a tiny synthetic corpus of signed sentences."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from sentence_data import GLOSSES, make_sentence_root, sentence_config
import train
from config.loader import load_config
from datasets.sign_data import SignData
from datasets.sign_dataset import collate_clips
from evaluation.checkpoints import load_checkpoint
from evaluation.metrics import move_batch
from models.heads.sequence import SequenceOutputs
from sweeps.spec import logged_metrics


def test_ctc_t5_and_classification_heads_train_together(
    shipped_config: dict, tmp_path: Path, capsys
) -> None:
    root = make_sentence_root(tmp_path / "sentences")
    run = tmp_path / "run"
    config_path = tmp_path / "config.yml"
    raw = sentence_config(shipped_config, root, run)
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert train.main(["--model_config_path", str(config_path)]) == 0
    summary = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("validation: ")
    ]
    assert len(summary) == 1  # the sequence heads' measures beside the top-1
    for name in ('"gloss": ', '"glosses/wer": ', '"text/bleu4": ', '"text/chrf": '):
        assert name in summary[0], summary

    logged = (run / "logs" / "version_0" / "metrics.csv").read_text(encoding="utf-8")
    columns = logged.splitlines()[0].split(",")
    for name in (
        "val/glosses/wer",
        "val/text/bleu4",
        "val/text/chrf",
        "val/first/top1",
    ):
        assert name in columns, columns
    assert "train/glosses/loss_epoch" in columns and "train/text/loss_epoch" in columns
    assert not [c for c in columns if c.startswith("train/") and "wer" in c]
    assert not [c for c in columns if c.startswith("train/") and "bleu4" in c]

    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["heads"]["glosses"]) == {"wer", "loss"}
    assert set(metrics["heads"]["text"]) == {"bleu4", "chrf", "loss"}
    assert set(metrics["heads"]["first"]) == {"top1", "top5", "loss"}
    assert 0.0 <= metrics["heads"]["text"]["bleu4"] <= 100.0
    assert metrics["heads"]["glosses"]["wer"] >= 0.0
    assert metrics["mean_top1"] == {"gloss": metrics["heads"]["first"]["top1"]}

    config = load_config(config_path)
    names = logged_metrics(config)
    assert "val/glosses/wer" in names and "val/text/bleu4" in names
    assert "val/glosses/top1" not in names

    # The checkpoint rebuilds (num_classes and label_names as for any head) and
    # decodes a batch in eval mode.
    loaded = load_checkpoint(run / "checkpoints" / "best.ckpt", torch.device("cpu"))
    assert loaded.label_names["text"][:3] == ["<pad>", "</s>", "<unk>"]
    assert loaded.label_names["glosses"] == [word.upper() for word in GLOSSES]
    data = SignData(config)
    dataset = data.dataset(data.val_samples, train=False)
    batch = move_batch(collate_clips([dataset[0], dataset[1]]), torch.device("cpu"))
    assert batch["labels"]["glosses"].dim() == 2 and len(batch["texts"]["text"]) == 2
    with torch.no_grad():
        outputs = loaded.model(batch)["logits"]
    assert isinstance(outputs["glosses"], SequenceOutputs)
    assert len(outputs["text"].hypotheses) == 2
    assert outputs["first"].shape == (2, len(GLOSSES))
    predictions = loaded.model.predict({"logits": outputs})
    assert all(isinstance(h, str) for h in predictions["glosses"] + predictions["text"])
