"""test.py on a checkpoint with sequence heads (a CTC head, a T5 head and a
classification head, trained for 2 epochs on the synthetic sentence corpus),
predict.py's decoded outputs and SSVP-SLT manifests; the tools that handle
classification heads only refuse it with one error line."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import load_test_cli
from sentence_data import GLOSSES, make_sentence_root, sentence_config
import demo
import export
import predict
import train
from evaluation.sequence_results import gloss_names


@pytest.fixture(scope="module")
def trained(shipped_config: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The corpus and a checkpoint trained on it (shared by the module)."""
    base = tmp_path_factory.mktemp("sequence_evaluation")
    root = make_sentence_root(base / "sentences")
    config_path = base / "config.yml"
    raw = sentence_config(shipped_config, root, base / "run")
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert train.main(["--model_config_path", str(config_path)]) == 0
    return {
        "root": root,
        "base": base,
        "checkpoint": base / "run" / "checkpoints" / "best.ckpt",
    }


def _val_names(root: Path) -> list[str]:
    with (root / "sentences.tsv").open(encoding="utf-8") as file:
        return [
            row["name"]
            for row in csv.DictReader(file, delimiter="\t")
            if row["split"] == "val"
        ]


def test_partial_scores_sequence_heads_and_writes_hypotheses(trained, capsys):
    output = trained["base"] / "results"
    checkpoint = str(trained["checkpoint"])
    assert (
        load_test_cli().main(
            ["partial", checkpoint, "val", "--output_dir", str(output)]
        )
        == 0
    )
    captured = capsys.readouterr()
    results = json.loads(captured.out)
    names = _val_names(trained["root"])
    assert results["samples"] == len(names)
    glosses, text = results["glosses"], results["text"]
    assert set(glosses) == {"wer", "bleu4", "loss", "labelled"}
    assert set(text) == {"bleu4", "chrf", "loss", "labelled"}
    assert glosses["wer"] >= 0.0 and 0.0 <= glosses["bleu4"] <= 100.0
    assert 0.0 <= text["bleu4"] <= 100.0 and 0.0 <= text["chrf"] <= 100.0
    assert glosses["labelled"] == text["labelled"] == len(names)
    assert glosses["loss"] > 0 and text["loss"] > 0 and results["average_loss"] > 0
    assert "top_k_per_instance_acc" in results["first"]  # the class head as before

    lines = captured.err.splitlines()
    assert [line for line in lines if line.startswith("glosses (ctc): wer ")]
    assert [line for line in lines if line.startswith("text (t5): bleu4 ")]
    assert [line for line in lines if line.startswith("first ")]

    written = sorted(path.name for path in output.iterdir())
    assert "best_val-results.json" in written
    assert not [name for name in written if "glosses" in name and ".png" in name]
    assert [name for name in written if name.startswith("best_val-first-")]
    vocabulary = {word.upper() for word in GLOSSES}
    for head in ("glosses", "text"):
        path = output / f"best_val-{head}-hypotheses.tsv"
        rows = path.read_text(encoding="utf-8").splitlines()
        assert rows[0] == "name\thypothesis\treference"
        cells = [row.split("\t") for row in rows[1:]]
        assert [cell[0] for cell in cells] == names
        assert all(len(cell) == 3 and cell[2] for cell in cells)
        if head == "glosses":  # gloss names, not class ids
            assert all(set(cell[2].split()) <= vocabulary for cell in cells)
            assert all(set(cell[1].split()) <= vocabulary for cell in cells)
        else:
            assert all(set(cell[2].split()) <= set(GLOSSES) for cell in cells)


def test_shuffled_frames_score_sequence_heads(trained, capsys):
    checkpoint = str(trained["checkpoint"])
    assert load_test_cli().main(["partial", checkpoint, "val", "--shuffle_frames"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["perm"] and results["glosses"]["wer"] >= 0.0
    assert 0.0 <= results["text"]["chrf"] <= 100.0


def _one_error(capsys) -> str:
    errors = [
        line
        for line in capsys.readouterr().err.splitlines()
        if line.startswith("error:")
    ]
    assert len(errors) == 1, errors
    return errors[0]


def test_averaging_refuses_sequence_heads(trained, capsys):
    checkpoint = str(trained["checkpoint"])
    for extra in (["--mirror"], ["--ensemble", checkpoint]):
        assert load_test_cli().main(["partial", checkpoint, "val", *extra]) == 2
        error = _one_error(capsys)
        assert "head glosses is a ctc head: only classification heads average" in error


def test_export_and_demo_refuse_sequence_heads(trained, capsys):
    checkpoint = str(trained["checkpoint"])
    output = trained["base"] / "model.onnx"
    assert export.main([checkpoint, "--output", str(output)]) == 2
    assert "head glosses is a ctc head: only classification heads export" in (
        _one_error(capsys)
    )
    assert not output.exists()
    assert demo.main([checkpoint, "--port", "0"]) == 2
    assert "only classification heads run in the demo" in _one_error(capsys)


def test_predict_writes_hypotheses_and_sentence_manifests(trained, capsys):
    checkpoint = str(trained["checkpoint"])
    root = trained["root"]
    output = trained["base"] / "predictions"
    assert (
        predict.main(
            [checkpoint, str(root), str(output), "--embedding_kind", "probabilities"]
        )
        == 0
    )
    with (output / "predictions.csv").open(encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    names = {row["input"] for row in rows}
    assert len(names) == len(list(root.glob("S0*")))
    vocabulary = {word.upper() for word in GLOSSES}
    by_head: dict[str, list[dict]] = {}
    for row in rows:
        by_head.setdefault(row["head"], []).append(row)
    assert set(by_head) == {"glosses", "text", "first"}
    for row in by_head["glosses"]:  # gloss names, not class ids; no probability
        assert set(row["top1"].split()) <= vocabulary and not row["top1_probability"]
    for row in by_head["text"]:
        assert set(row["top1"].split()) <= set(GLOSSES) | {""}
    assert all(float(row["top1_probability"]) > 0 for row in by_head["first"])
    name = sorted(names)[0]
    with np.load(output / f"{name}.npz") as arrays:  # class heads only
        assert list(arrays) == ["first"]

    # SSVP-SLT's layout: the manifests' label is the sample's sentence.
    ssvp = trained["base"] / "ssvp"
    command = [checkpoint, str(root), str(ssvp), "--layout", "ssvp"]
    assert predict.main([*command, "--embedding_kind", "temporal"]) == 0
    capsys.readouterr()
    with (root / "sentences.tsv").open(encoding="utf-8") as file:
        sentences = {
            row["name"]: (row["text"], row["split"])
            for row in csv.DictReader(file, delimiter="\t")
        }
    for split in ("train", "val"):
        lines = (ssvp / "manifests" / f"{split}_features.tsv").read_text(
            encoding="utf-8"
        )
        rows = [line.split("\t") for line in lines.splitlines()[1:]]
        assert rows and all(sentences[row[0]] == (row[2], split) for row in rows)
        assert all(int(row[1]) > 1 for row in rows)


def test_predict_refuses_probabilities_without_a_class_head(
    shipped_config: dict, tmp_path: Path, capsys
):
    root = make_sentence_root(tmp_path / "sentences")
    raw = sentence_config(shipped_config, root, tmp_path / "run")
    del raw["heads"]["gloss"]["first"]
    raw["train_parameters"]["epochs"] = 1
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert train.main(["--model_config_path", str(config_path)]) == 0
    capsys.readouterr()
    checkpoint = str(tmp_path / "run" / "checkpoints" / "best.ckpt")
    output = tmp_path / "predictions"
    command = [checkpoint, str(root), str(output), "--embedding_kind", "probabilities"]
    assert predict.main(command) == 2
    error = _one_error(capsys)
    assert "every head is a sequence head (glosses, text)" in error
    assert "choose --embedding_kind spatial, temporal or CLS" in error


def test_gloss_names_map_ids_and_keep_unknown_ones():
    assert gloss_names("2 0 9", ["A", "B", "C"]) == "C A 9"
    assert gloss_names("", ["A"]) == ""


def test_predicted_ssvp_features_train_a_translator(trained, capsys):
    """The round trip of SSVP-SLT's workflow: a landmark model's per-frame outputs
    written by predict.py --layout ssvp train a `precomputed` model with a t5 head,
    which test.py scores; predict.py refuses that model (it reads no videos)."""
    features = trained["base"] / "features_root"
    checkpoint = str(trained["checkpoint"])
    command = [checkpoint, str(trained["root"]), str(features), "--layout", "ssvp"]
    assert predict.main([*command, "--embedding_kind", "temporal"]) == 0
    width = torch.load(
        next((features / "features" / "0").rglob("*.pt")), weights_only=True
    ).shape[-1]
    run = trained["base"] / "features_run"
    raw = yaml.safe_load((trained["base"] / "config.yml").read_text(encoding="utf-8"))
    raw["general_parameters"].update(
        data_path=str(features), path_to_save=str(run), annotation_file=None
    )
    raw["train_parameters"]["landmarks"] = False
    raw["feature_extractor"] = {
        "name": "precomputed",
        "feature_dim": int(width),
        "representation_size": 16,
    }
    raw["transformer"] = {"name": "fake_transformer", "output_size": 16}
    raw["heads"]["gloss"] = {"text": raw["heads"]["gloss"]["text"]}
    config_path = trained["base"] / "features.yml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert train.main(["--model_config_path", str(config_path)]) == 0
    capsys.readouterr()
    features_checkpoint = str(run / "checkpoints" / "best.ckpt")
    assert load_test_cli().main(["partial", features_checkpoint, "val"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["samples"] == len(_val_names(trained["root"]))
    assert 0.0 <= results["text"]["bleu4"] <= 100.0
    output = trained["base"] / "features_predictions"
    assert predict.main([features_checkpoint, str(features), str(output)]) == 2
    assert "reads precomputed features, not videos" in _one_error(capsys)
