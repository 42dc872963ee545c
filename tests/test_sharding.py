"""Sharded feature extraction: predict.py --num_shards/--items_per_shard, the ssvp
layout and its manifests, resuming a killed shard, --merge_manifests."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers import merge, tiny_overrides

import predict
import train
from evaluation.writers import OutputWriter

ITEMS = 10


@pytest.fixture(scope="module")
def checkpoint(shipped_config, sample_root, tmp_path_factory) -> Path:
    """A checkpoint of the shrunk shipped config after one epoch."""
    base = tmp_path_factory.mktemp("shard_run")
    config = merge(copy.deepcopy(shipped_config), tiny_overrides())
    config["general_parameters"]["data_path"] = str(sample_root)
    config["general_parameters"]["path_to_save"] = str(base / "run")
    path = base / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    assert train.main(["--model_config_path", str(path)]) == 0
    return base / "run" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def inputs(sample_root, tmp_path_factory) -> Path:
    """Ten frame folders (no annotation file: bare inputs)."""
    base = tmp_path_factory.mktemp("ten_inputs")
    folders = sorted(p for p in sample_root.iterdir() if p.is_dir())[:ITEMS]
    for folder in folders:
        shutil.copytree(folder, base / folder.name)
    return base


def extract(checkpoint: Path, inputs: Path, output: Path, *extra: str) -> int:
    """predict.py's main with the ssvp layout of temporal embeddings."""
    return predict.main(
        [
            str(checkpoint),
            str(inputs),
            str(output),
            "--embedding_kind",
            "temporal",
            "--layout",
            "ssvp",
            *extra,
        ]
    )


def manifest_rows(path: Path) -> list[list[str]]:
    """A manifest's rows under its header."""
    with path.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file, delimiter="\t"))
    assert rows[0] == ["video_name", "length", "label"]
    return rows[1:]


def test_two_shards_and_merge_give_every_item_once(checkpoint, inputs, tmp_path):
    output = tmp_path / "features"
    for shard in (0, 1):
        assert (
            extract(
                checkpoint,
                inputs,
                output,
                "--num_shards",
                "2",
                "--shard_id",
                str(shard),
            )
            == 0
        )
    shard_rows = [
        manifest_rows(output / "manifests" / f"all_features.shard-0000{i}-of-00002.tsv")
        for i in (0, 1)
    ]
    assert [len(rows) for rows in shard_rows] == [5, 5]
    assert predict.main(["--merge_manifests", str(output)]) == 0
    rows = manifest_rows(output / "manifests" / "all_features.tsv")
    names = sorted(row[0] for row in rows)
    assert names == sorted(p.name for p in inputs.iterdir())
    for name, length, _ in rows:
        tensor = torch.load(output / "features" / "0" / name[:5] / f"{name}.pt")
        assert tensor.shape[0] == int(length) > 0
    merged = list(csv.reader((output / "frames.csv").open(encoding="utf-8")))
    assert sorted(row[0] for row in merged[1:]) == names


def test_merge_refuses_a_missing_shard(checkpoint, inputs, tmp_path, capsys):
    output = tmp_path / "features"
    assert (
        extract(checkpoint, inputs, output, "--items_per_shard", "4", "--shard_id", "0")
        == 0
    )
    assert predict.main(["--merge_manifests", str(output)]) == 2
    assert "shards 1, 2 of 3 have not run" in capsys.readouterr().err


def test_items_per_shard_reads_the_slurm_array_index(
    checkpoint, inputs, tmp_path, monkeypatch
):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    output = tmp_path / "features"
    assert extract(checkpoint, inputs, output, "--items_per_shard", "4") == 0
    record = json.loads((output / "shards" / "shard-00002-of-00003.json").read_text())
    assert record["items"] == sorted(p.name for p in inputs.iterdir())[8:]


def test_a_killed_shard_resumes_without_writing_twice(
    checkpoint, inputs, tmp_path, monkeypatch
):
    output = tmp_path / "features"
    original = OutputWriter.add
    written: list[str] = []

    def killed_after_three(self, meta, *args):
        if len(written) == 3:
            raise KeyboardInterrupt  # the shard dies while writing its fourth input
        original(self, meta, *args)
        written.append(meta["name"])

    monkeypatch.setattr(OutputWriter, "add", killed_after_three)
    shard = ("--num_shards", "1", "--shard_id", "0", "--batch_size", "1")
    with pytest.raises(KeyboardInterrupt):
        extract(checkpoint, inputs, output, *shard)
    first = {
        name: (output / "features" / "0" / name[:5] / f"{name}.pt").stat()
        for name in written
    }
    # A kill can leave half a line in the progress record: it must be ignored.
    progress = output / "progress.shard-00000-of-00001.jsonl"
    with progress.open("a", encoding="utf-8") as file:
        file.write('{"name": "half')

    def counted(self, meta, *args):
        original(self, meta, *args)
        written.append(meta["name"])

    monkeypatch.setattr(OutputWriter, "add", counted)
    assert extract(checkpoint, inputs, output, *shard) == 0
    assert sorted(written) == sorted(p.name for p in inputs.iterdir())  # each once
    for name, stat in first.items():
        again = (output / "features" / "0" / name[:5] / f"{name}.pt").stat()
        assert (again.st_ino, again.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    rows = manifest_rows(output / "manifests" / "all_features.shard-00000-of-00001.tsv")
    assert sorted(row[0] for row in rows) == sorted(written)


def test_shard_options_are_checked(checkpoint, inputs, tmp_path, capsys):
    assert (
        extract(checkpoint, inputs, tmp_path, "--num_shards", "2", "--shard_id", "2")
        == 2
    )
    assert "--shard_id 2: 10 inputs make 2 shards (0..1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict.main(["--merge_manifests", str(tmp_path), str(checkpoint)])
    assert (
        predict.main(
            [
                str(checkpoint),
                str(inputs),
                str(tmp_path),
                "--embedding_kind",
                "probabilities",
                "--layout",
                "ssvp",
            ]
        )
        == 2
    )
    assert "--layout ssvp writes embeddings" in capsys.readouterr().err
