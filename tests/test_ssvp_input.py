"""Features-only input in the SSVP-SLT layout: the `precomputed` extractor trains a
T5 and a CTC head through train.py on the sample corpus's features, test.py scores
the checkpoint; the manifests' formats (header or not, a 1-D or float16 tensor),
every bad input's message, and the tools of videos and landmarks refusing such a
model."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from helpers import load_test_cli, merge, one_error, tiny_overrides, write_checkpoint
import demo
import export
import train
from config.loader import parse_config
from data_preprocessing import make_sample_sentences
from datasets.sign_data import SignData
from datasets.sign_dataset import collate_clips
from datasets.ssvp import is_ssvp_root, read_ssvp_rows
from evaluation.ensemble import AveragedModel
from evaluation.metrics import shuffle_batch
from models.pipeline import build_pipeline
from utils.errors import ConfigError, DataError, UserError
from utils.tokenizer import build_word_tokenizer

DIM = 32
WORDS = ["book", "drink", "chair", "go"]


def features_config(
    shipped_config: dict, root: Path, tokenizer: Path, run: Path, **heads
) -> dict:
    """The shipped config, shrunk: `precomputed` features of width `DIM`, the
    trivial encoder, a tiny T5 head `text` (and `heads`, e.g. a CTC head)."""
    config = merge(copy.deepcopy(shipped_config), tiny_overrides())
    merge(
        config,
        {
            "general_parameters": {
                "data_path": str(root),
                "path_to_save": str(run),
                "annotation_file": None,
            },
            "train_parameters": {
                "num_segments": 16,
                "batch_size": 4,
                "epochs": 1,
                "classification_mode": "gloss",
            },
        },
    )
    config["feature_extractor"] = {
        "name": "precomputed",
        "feature_dim": DIM,
        "representation_size": 32,
    }
    config["transformer"] = {"name": "fake_transformer", "output_size": 32}
    config["heads"]["gloss"] = {
        "text": {
            "kind": "t5",
            "tokenizer_path": str(tokenizer),
            "model_dim": 32,
            "num_layers": 1,
            "num_decoder_layers": 1,
            "num_heads": 2,
            "feedforward_size": 32,
            "max_target_length": 12,
        },
        **heads,
    }
    return config


def write_features(root: Path, name: str, tensor: torch.Tensor) -> Path:
    """Save a clip's features where the SSVP-SLT layout keeps them."""
    path = root / "features" / "0" / name[:5] / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tensor, path)
    return path


@pytest.fixture
def hand_root(tmp_path: Path) -> Path:
    """A hand-written SSVP-SLT root: a train manifest with a header (and a column
    for a head that is not trained), a val manifest without one; float32, float16
    and 1-D (one row) tensors; a word tokenizer in `tokenizer/` beside it."""
    root = tmp_path / "ssvp"
    generator = torch.Generator().manual_seed(0)
    lines = {"train": ["video_name\tlength\tlabel\tother"], "val": []}
    for index in range(8):
        split = "val" if index >= 6 else "train"
        name = f"clip{index:03d}.mp4"  # SSVP names keep the video's suffix
        rows = 1 if index == 7 else 3 + index
        tensor = torch.randn(rows, DIM, generator=generator)
        tensor = tensor[0] if rows == 1 else tensor
        write_features(root, f"clip{index:03d}", tensor.half() if index % 2 else tensor)
        words = " ".join(WORDS[(index + k) % len(WORDS)] for k in range(2))
        extra = "\t1+2" if split == "train" else ""
        lines[split].append(f"{name}\t{rows}\t{words}{extra}")
    (root / "manifests").mkdir()
    for split, text in lines.items():
        (root / "manifests" / f"{split}_features.tsv").write_text(
            "\n".join(text) + "\n", encoding="utf-8"
        )
    build_word_tokenizer(WORDS, tmp_path / "tokenizer")
    return root


@pytest.fixture(scope="module")
def trained(shipped_config: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample corpus written with `--features`, its manifests given a `glosses`
    column (a header names it), and a CTC + T5 checkpoint trained on it."""
    base = tmp_path_factory.mktemp("ssvp")
    corpus = base / "corpus"
    assert (
        make_sample_sentences.main(
            [
                str(corpus),
                "--glosses",
                "4",
                "--clips_per_gloss",
                "2",
                "--sentences",
                "12",
                "--val_sentences",
                "4",
                "--features",
                str(DIM),
            ]
        )
        == 0
    )
    root = corpus / make_sample_sentences.SSVP_FOLDER
    with (corpus / "sentences.tsv").open(encoding="utf-8") as file:
        glosses = {
            row["name"]: row["glosses"] for row in csv.DictReader(file, delimiter="\t")
        }
    for manifest in (root / "manifests").glob("*_features.tsv"):
        lines = manifest.read_text(encoding="utf-8").splitlines()
        rows = [lines[0] + "\tglosses"] + [
            f"{line}\t{glosses[line.split(chr(9))[0]]}" for line in lines[1:]
        ]
        manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    raw = features_config(
        shipped_config,
        root,
        corpus / "tokenizer",
        base / "run",
        glosses={"kind": "ctc"},
    )
    raw["train_parameters"]["epochs"] = 2
    config_path = base / "config.yml"
    config_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert train.main(["--model_config_path", str(config_path)]) == 0
    return {"base": base, "root": root, "raw": raw, "run": base / "run"}


def test_precomputed_features_train_t5_and_ctc_heads_and_test_scores_them(
    trained, capsys
) -> None:
    metrics = json.loads((trained["run"] / "metrics.json").read_text("utf-8"))
    assert set(metrics["heads"]["text"]) == {"bleu4", "chrf", "loss"}
    assert set(metrics["heads"]["glosses"]) == {"wer", "loss"}
    capsys.readouterr()

    checkpoint = trained["run"] / "checkpoints" / "best.ckpt"
    status = load_test_cli().main(["partial", str(checkpoint), "val", "--save"])
    assert status == 0
    results = json.loads(capsys.readouterr().out)
    assert results["samples"] == 4
    assert 0.0 <= results["text"]["bleu4"] <= 100.0
    assert 0.0 <= results["text"]["chrf"] <= 100.0
    assert results["glosses"]["wer"] >= 0.0 and results["text"]["labelled"] == 4
    manifest = trained["root"] / "manifests" / "val_features.tsv"
    val = [line.split("\t") for line in manifest.read_text("utf-8").splitlines()[1:]]
    written = trained["run"] / "results" / "best_val-text-hypotheses.tsv"
    rows = [line.split("\t") for line in written.read_text("utf-8").splitlines()]
    assert rows[0] == ["name", "hypothesis", "reference"]
    assert [row[0] for row in rows[1:]] == [cells[0] for cells in val]
    assert [row[2] for row in rows[1:]] == [cells[2] for cells in val]


def test_shuffled_frames_move_the_feature_rows(trained) -> None:
    data = SignData(parse_config(trained["raw"]))
    dataset = data.dataset(data.val_samples, train=False)
    batch = collate_clips([dataset[0], dataset[1]])
    assert batch["features"].shape[:2] == batch["mask"].shape
    before = batch["features"].clone()
    length = int(batch["mask"][0].sum())
    perm = list(reversed(range(batch["mask"].shape[1])))
    shuffled = shuffle_batch(batch, perm)["features"]
    order = [i for i in perm if i < length]
    assert torch.equal(shuffled[0, :length], before[0, order])


def test_headerless_manifest_1d_and_float16_tensors(
    shipped_config: dict, hand_root: Path, tmp_path: Path
) -> None:
    assert is_ssvp_root(hand_root) and not is_ssvp_root(tmp_path / "tokenizer")
    raw = features_config(shipped_config, hand_root, tmp_path / "tokenizer", tmp_path)
    raw["train_parameters"]["num_segments"] = 4
    config = parse_config(raw)
    data = SignData(config)
    assert sorted(s.name for s in data.val_samples) == ["clip006", "clip007"]
    assert {s.split for s in data.train_samples} == {"train"}
    dataset = data.dataset(data.val_samples + data.train_samples, train=True)
    items = {item["name"]: item for item in (dataset[i] for i in range(8))}
    one_row, halves = items["clip007"], items["clip005"]  # (D,); float16, 8 rows
    assert one_row["features"].shape == (1, DIM)
    assert halves["features"].dtype == torch.float32
    assert halves["features"].shape == (4, DIM)  # num_segments of 8 rows
    assert one_row["texts"]["text"] == "go book"

    batch = collate_clips([one_row, halves])
    assert batch["features"].shape == (2, 4, DIM)
    assert batch["mask"].tolist() == [[True, False, False, False], [True] * 4]
    pipeline = build_pipeline(config, data.num_classes)
    out = pipeline(batch)
    assert out["spatial"].shape == (2, 4, 32)
    assert not out["spatial"][0, 1:].any(), "padded rows get zero features"
    assert set(pipeline.feature_extractor.state_dict()) == {
        "projection.weight",
        "projection.bias",
        "scale",
    }

    # A head of another column: named by the train manifest's header, missing in
    # the headerless val manifest.
    kinds = {"text": "text", "other": "sequence"}
    with pytest.raises(DataError, match="val_features.tsv: no column for head other"):
        read_ssvp_rows(hand_root, kinds)
    (hand_root / "manifests" / "val_features.tsv").unlink()
    rows = read_ssvp_rows(hand_root, kinds)
    first = next(row for row in rows if row.name == "clip000")
    assert first.labels == {"text": "book drink", "other": (1, 2)}
    assert first.end == 2 and first.split is None  # no val manifest: split later
    assert first.source.endswith("train_features.tsv:2")


def test_wrong_feature_dim_fails_before_training(
    shipped_config: dict, hand_root: Path, tmp_path: Path, write_config, capsys
) -> None:
    raw = features_config(shipped_config, hand_root, tmp_path / "tokenizer", tmp_path)
    raw["feature_extractor"]["feature_dim"] = 48
    status = train.main(["--model_config_path", str(write_config(raw))])
    error = one_error(capsys, status, "clip000.pt", "rows of 32 features")
    assert "feature_extractor.feature_dim is 48" in error
    assert not (tmp_path / "checkpoints").exists()


def test_a_missing_feature_file_names_its_manifest_line(
    shipped_config: dict, hand_root: Path, tmp_path: Path
) -> None:
    missing = hand_root / "features" / "0" / "clip0" / "clip003.pt"
    missing.unlink()
    raw = features_config(shipped_config, hand_root, tmp_path / "tokenizer", tmp_path)
    with pytest.raises(DataError) as caught:
        SignData(parse_config(raw))
    assert str(caught.value) == (
        f"{hand_root / 'manifests' / 'train_features.tsv'}:5: no features for "
        f"clip003 (expected {missing})"
    )


def test_rows_other_than_the_manifest_length(
    shipped_config: dict, hand_root: Path, tmp_path: Path
) -> None:
    path = write_features(hand_root, "clip004", torch.randn(5, DIM))
    raw = features_config(shipped_config, hand_root, tmp_path / "tokenizer", tmp_path)
    data = SignData(parse_config(raw))
    dataset = data.dataset(data.train_samples, train=False)
    index = [s.name for s in data.train_samples].index("clip004")
    with pytest.raises(DataError) as caught:
        dataset[index]  # pylint: disable=pointless-statement
    assert str(caught.value) == (
        f"{path}: 5 feature rows, but its manifest line gives the length 7"
    )


def test_bad_manifest_lines_are_reported_together(
    shipped_config: dict, hand_root: Path, tmp_path: Path
) -> None:
    manifest = hand_root / "manifests" / "val_features.tsv"
    manifest.write_text(
        "clip006.mp4\tsix\tbook go\nclip007.mp4\t1\n"
        "clip007.mp4\t1\tgo\nclip007.mp4\t1\tgo book\n",
        encoding="utf-8",
    )
    raw = features_config(shipped_config, hand_root, tmp_path / "tokenizer", tmp_path)
    with pytest.raises(DataError) as caught:
        SignData(parse_config(raw))
    assert str(caught.value).splitlines() == [
        f"{manifest}:1: length 'six' is not a row count (a whole number > 0)",
        f"{manifest}:2: 2 tab-separated cells, but the manifest has 3 columns "
        "(video_name, length, label, then the header's)",
        f"{manifest}:4: sample clip007 is listed again (first at {manifest}:3)",
    ]


def test_extractor_and_root_must_fit(
    shipped_config: dict, hand_root: Path, tmp_path: Path
) -> None:
    tokenizer = tmp_path / "tokenizer"
    landmark_root = tmp_path / "landmarks"
    landmark_root.mkdir()
    (landmark_root / "test_gloss.txt").write_text("a 0 3 0\n", encoding="utf-8")
    raw = features_config(shipped_config, landmark_root, tokenizer, tmp_path)
    with pytest.raises(ConfigError) as caught:
        SignData(parse_config(raw))
    assert str(caught.value).startswith(
        f"general_parameters.data_path: {landmark_root} has no manifests/"
        "*_features.tsv, but feature_extractor.name precomputed reads precomputed "
        "features in the SSVP-SLT layout"
    )

    raw = features_config(shipped_config, hand_root, tokenizer, tmp_path)
    raw["feature_extractor"] = {"name": "landmarks_extractor"}
    raw["train_parameters"]["landmarks"] = True
    with pytest.raises(ConfigError) as caught:
        SignData(parse_config(raw))
    assert "feature_extractor.name: landmarks_extractor reads frames or landmarks" in (
        str(caught.value)
    )
    assert "set feature_extractor.name: precomputed" in str(caught.value)


def test_config_refuses_what_features_do_not_have(
    shipped_config: dict, hand_root: Path, tmp_path: Path
) -> None:
    raw = features_config(shipped_config, hand_root, tmp_path / "tokenizer", tmp_path)
    merge(raw, {"train_parameters": {"landmarks": True, "time": 0.5}})
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    message = str(caught.value)
    assert "train_parameters.landmarks: precomputed reads precomputed feature" in (
        message
    )
    assert "train_parameters.time: precomputed reads precomputed feature" in message
    del raw["feature_extractor"]["feature_dim"]
    merge(raw, {"train_parameters": {"landmarks": False, "time": None}})
    with pytest.raises(ConfigError, match="feature_extractor.feature_dim"):
        parse_config(raw)


def test_tools_of_videos_and_landmarks_refuse_a_features_model(
    shipped_config: dict, tmp_path: Path, capsys
) -> None:
    raw = merge(copy.deepcopy(shipped_config), tiny_overrides())
    raw["feature_extractor"] = {"name": "precomputed", "feature_dim": DIM}
    raw["transformer"] = {"name": "fake_transformer", "output_size": 16}
    checkpoint = write_checkpoint(raw, tmp_path / "model.ckpt")
    needle = "its extractor precomputed reads precomputed features, not videos"
    output = tmp_path / "model.onnx"
    status = export.main([str(checkpoint), "--output", str(output)])
    one_error(capsys, status, needle, "so it does not export; test.py evaluates")
    assert not output.exists()
    status = demo.main([str(checkpoint), "--port", "0"])
    one_error(capsys, status, needle, "so it does not run in the demo")
    config = parse_config(raw)
    with pytest.raises(UserError, match="--mirror: a model reads precomputed"):
        AveragedModel([], [config], mirror=True)


def test_check_data_reads_every_feature_file(
    shipped_config: dict, hand_root: Path, tmp_path: Path, write_config, capsys
) -> None:
    raw = features_config(shipped_config, hand_root, tmp_path / "tokenizer", tmp_path)
    config_path = write_config(raw)
    assert train.main(["--model_config_path", str(config_path), "--check_data"]) == 0
    assert "all 8 files of 8 samples in 1 data root are good" in capsys.readouterr().out
    short = write_features(hand_root, "clip005", torch.randn(7, DIM))  # 8 in manifest
    wide = write_features(hand_root, "clip006", torch.randn(9, DIM + 1))
    status = train.main(["--model_config_path", str(config_path), "--check_data"])
    err = capsys.readouterr().err
    assert status == 2 and "error: --check_data: 2 problems in the data:" in err
    assert f"{short}: 7 feature rows, but its manifest line gives the length 8" in err
    assert f"{wide}: rows of 33 features, but feature_extractor.feature_dim is 32" in (
        err
    )
