"""test.py on a checkpoint with sequence heads (a CTC head, a T5 head and a
classification head, trained for 2 epochs on the synthetic sentence corpus); the
tools that handle classification heads only refuse it with one error line."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
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


def test_export_demo_and_predict_refuse_sequence_heads(trained, capsys):
    checkpoint = str(trained["checkpoint"])
    output = trained["base"] / "model.onnx"
    assert export.main([checkpoint, "--output", str(output)]) == 2
    assert "head glosses is a ctc head: only classification heads export" in (
        _one_error(capsys)
    )
    assert not output.exists()
    assert demo.main([checkpoint, "--port", "0"]) == 2
    assert "only classification heads run in the demo" in _one_error(capsys)
    predictions = trained["base"] / "predictions"
    assert predict.main([checkpoint, str(trained["root"]), str(predictions)]) == 2
    error = _one_error(capsys)
    assert "only classification heads predict; test.py evaluates" in error


def test_gloss_names_map_ids_and_keep_unknown_ones():
    assert gloss_names("2 0 9", ["A", "B", "C"]) == "C A 9"
    assert gloss_names("", ["A"]) == ""
