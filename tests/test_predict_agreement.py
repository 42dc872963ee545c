"""predict.py and test.py agree clip by clip on a dataset root (issue 18).

The annotations of a copy of the sample data use frame ranges narrower than the
frame folders, so a predict.py that read the folders' frames (the old behaviour)
would give other clips, other probabilities and other top-1 classes than test.py.
"""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import load_test_cli, merge, tiny_overrides

import predict
import train
from datasets.index import list_frames
from datasets.sampling import SamplingOptions
from evaluation.evaluator import Evaluator

NUM_SEGMENTS = 4
#: Frames cut from each end of every annotated range.
CUT = 2


def narrow_annotations(root: Path) -> dict[str, tuple[int, int]]:
    """Narrow every `test_*.txt` range of `root` by `CUT` frames at each end.

    Returns:
        sample name -> the new `(start, end)`.
    """
    ranges = {}
    for path in sorted(root.glob("test_*.txt")):
        lines = path.read_text(encoding="utf-8").splitlines()
        out = [lines[0]]
        for line in lines[1:]:
            name, start, end, *labels = line.split()
            start, end = int(start) + CUT, int(end) - CUT
            assert end - start + 1 > NUM_SEGMENTS, line
            ranges[name] = (start, end)
            out.append(" ".join([name, str(start), str(end), *labels]))
        path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return ranges


@pytest.fixture(scope="module")
def narrowed(shipped_config, sample_root, tmp_path_factory):
    """A copy of the sample root with narrowed ranges; a checkpoint trained on it."""
    base = tmp_path_factory.mktemp("agreement")
    root = base / "data"
    shutil.copytree(sample_root, root)
    ranges = narrow_annotations(root)
    some = next(iter(ranges))
    assert max(list_frames(root / some, some)) > ranges[some][1]  # frames beyond end
    config = merge(
        copy.deepcopy(shipped_config),
        tiny_overrides({"train_parameters": {"num_segments": NUM_SEGMENTS}}),
    )
    config["general_parameters"]["data_path"] = str(root)
    config["general_parameters"]["path_to_save"] = str(base / "run")
    path = base / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    assert train.main(["--model_config_path", str(path)]) == 0
    return root, ranges, base / "run" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def predicted(narrowed, tmp_path_factory):
    """predict.py's probabilities over the dataset root: rows of the two CSV files."""
    root, _, checkpoint = narrowed
    output = tmp_path_factory.mktemp("agreement_out") / "out"
    args = [str(checkpoint), str(root), str(output), "--embedding_kind"]
    assert predict.main([*args, "probabilities"]) == 0
    tables = {}
    for name in ("predictions.csv", "frames.csv"):
        with (output / name).open(encoding="utf-8", newline="") as file:
            tables[name] = list(csv.DictReader(file))
    return output, tables


def test_predict_uses_the_annotated_range(narrowed, predicted):
    _, ranges, _ = narrowed
    _, tables = predicted
    assert {row["input"] for row in tables["frames.csv"]} == set(ranges)
    step = SamplingOptions(NUM_SEGMENTS)
    for row in tables["frames.csv"]:
        start, end = ranges[row["input"]]
        assert int(row["num_frames"]) == end - start + 1
        used = [int(index) for index in row["used_frames"].split()]
        wanted = step.evaluation_positions(end - start + 1, None, row["input"])
        assert used == [start + position for position in wanted]


def test_predict_notes_the_annotation_files(narrowed, tmp_path, capsys):
    root, ranges, checkpoint = narrowed
    args = [str(checkpoint), str(root), str(tmp_path / "out"), "--embedding_kind"]
    capsys.readouterr()
    assert predict.main([*args, "CLS"]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "test_gloss.txt" in err and "test_hamnosys.txt" in err
    assert sorted(path.stem for path in (tmp_path / "out").glob("*.npy")) == sorted(
        ranges
    )


@pytest.mark.parametrize("set_name", ["train", "val"])
def test_predict_and_test_agree_per_clip(narrowed, predicted, set_name):
    root, _, checkpoint = narrowed
    output, tables = predicted
    evaluator = Evaluator(checkpoint, data_path=[str(root)])
    result = evaluator.evaluate(set_name)
    names = [sample.name for sample in evaluator.samples(set_name)]
    top1 = {
        (row["input"], row["head"]): row["top1"] for row in tables["predictions.csv"]
    }
    for head, head_predictions in result.predictions.items():
        classes = evaluator.label_names[head]
        expected = torch.softmax(head_predictions.logits.float(), dim=-1).numpy()
        for name, probabilities in zip(names, expected):
            assert top1[name, head] == classes[int(np.argmax(probabilities))], name
            written = np.load(output / f"{name}.npz")[head]
            np.testing.assert_allclose(written, probabilities, rtol=0, atol=2e-5)


def test_test_py_accuracy_matches_predict(narrowed, predicted, capsys):
    """test.py partial's top-1 accuracy equals the one of predict.py's top-1."""
    root, _, checkpoint = narrowed
    _, tables = predicted
    capsys.readouterr()
    assert load_test_cli().main(["partial", str(checkpoint), "val"]) == 0
    results = json.loads(capsys.readouterr().out)
    evaluator = Evaluator(checkpoint, data_path=[str(root)])
    samples = evaluator.samples("val")
    top1 = {
        row["input"]: row["top1"]
        for row in tables["predictions.csv"]
        if row["head"] == "gloss"
    }
    names = evaluator.label_names["gloss"]
    right = [top1[s.name] == names[s.labels["gloss"]] for s in samples]
    accuracy = results["gloss"]["top_k_per_instance_acc"]["top1"]
    assert accuracy == pytest.approx(sum(right) / len(right))
