"""Sequence and sentence labels: their cells in annotation files and manifests, the
class counts and names of their heads, their batches, and the split without a class
head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from config.schema import SignpipeConfig
from datasets.index import Sample, label_names, resolve_num_classes
from datasets.sign_data import root_statistics, split_samples
from datasets.sign_dataset import collate_clips
from datasets.targets import TextTarget, item_labels, pad_ids
from utils.annotations import check_label_ranges, read_annotation_file, read_manifest
from utils.constants import IGNORE_INDEX
from utils.errors import ConfigError, DataError
from utils.labels import missing_label, parse_sequence, parse_text
from utils.tokenizer import build_word_tokenizer, load_tokenizer

KINDS = {"glosses": "sequence", "text": "text", "gloss": "class"}


def write(path: Path, text: str) -> Path:
    """Write `text` to `path` and return it."""
    path.write_text(text, encoding="utf-8")
    return path


def test_sequence_cells() -> None:
    assert parse_sequence("27+82+5", "g", "f:1") == (27, 82, 5)
    assert parse_sequence(" 3 4 ", "g", "f:1") == (3, 4)
    assert not parse_sequence("", "g", "f:1")
    assert not parse_sequence("-1", "g", "f:1")
    with pytest.raises(DataError, match=r"f:1: head g: label 'x' is not a number"):
        parse_sequence("1+x", "g", "f:1")
    with pytest.raises(DataError, match="every item is a class index"):
        parse_sequence("1+-1", "g", "f:1")


def test_text_cells_only_empty_is_missing() -> None:
    assert parse_text("  none ") == "none"
    assert parse_text("book  read\tyou") == "book read you"
    assert parse_text("") == ""
    assert missing_label("text") == "" and missing_label("sequence") == ()
    assert missing_label("class") == IGNORE_INDEX


def test_an_annotation_file_with_sequences_and_sentences(tmp_path: Path) -> None:
    path = write(
        tmp_path / "sentences.tsv",
        "name\tstart\tend\tglosses\ttext\tgloss\tsplit\n"
        "a\t0\t9\t27+82+5\tbook read you\t3\ttrain\n"
        "b\t0\t4\t\tnone\t-1\tval\n"
        "c\t0\t4\t1\t\t2\tval\n",
    )
    rows = read_annotation_file(path, ["glosses", "text", "gloss"], "\t", KINDS)
    assert [row.labels for row in rows] == [
        {"glosses": (27, 82, 5), "text": "book read you", "gloss": 3},
        {"glosses": (), "text": "none", "gloss": IGNORE_INDEX},
        {"glosses": (1,), "text": "", "gloss": 2},
    ]
    assert [row.split for row in rows] == ["train", "val", "val"]
    # The header matches heads by name, in any order.
    rows = read_annotation_file(path, ["text", "glosses"], "\t", KINDS)
    assert rows[0].labels == {"text": "book read you", "glosses": (27, 82, 5)}


def test_a_bad_id_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "s.tsv",
        "name\tstart\tend\tglosses\na\t0\t9\t1+2\nb\t0\t9\t1+two\n",
    )
    with pytest.raises(DataError, match=rf"{path}:3: head glosses: label 'two'"):
        read_annotation_file(path, ["glosses"], "\t", KINDS)


def test_sentences_need_a_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "s.txt", "a 0 9 book read\n")
    with pytest.raises(DataError) as error:
        read_annotation_file(path, ["text"], None, KINDS)
    assert str(path) in str(error.value)
    assert "head text holds sentences: write the file with tabs" in str(error.value)
    assert "annotation_separator" in str(error.value)


def test_a_manifest_with_sequences_and_sentences(tmp_path: Path) -> None:
    path = write(
        tmp_path / "videos.csv",
        'path,glosses,text,split\na.mp4,1+2,"book, read",train\nb.mp4,,,val\n',
    )
    rows = read_manifest(path, ["glosses", "text"], KINDS)
    assert rows[0].labels == {"glosses": (1, 2), "text": "book, read"}
    assert rows[1].labels == {"glosses": (), "text": ""}


def test_label_ranges_check_every_id_of_a_sequence(tmp_path: Path) -> None:
    path = write(tmp_path / "s.tsv", "name\tstart\tend\tglosses\na\t0\t1\t1+7\n")
    rows = read_annotation_file(path, ["glosses"], "\t", KINDS)
    check_label_ranges(rows, {"glosses": 8})
    with pytest.raises(DataError, match=rf"{path}:2: head glosses: label 7 is outside"):
        check_label_ranges(rows, {"glosses": 5})


def _config(tmp_path: Path, heads: dict) -> SignpipeConfig:
    return SignpipeConfig.model_validate(
        {
            "general_parameters": {"data_path": str(tmp_path)},
            "train_parameters": {"classification_mode": "gloss"},
            "heads": {"gloss": heads},
        }
    )


def test_class_counts_and_names_of_sequence_and_text_heads(tmp_path: Path) -> None:
    tokenizer_path = build_word_tokenizer(["book read"], tmp_path / "tokenizer")
    tokenizer = load_tokenizer(tokenizer_path, "key")
    path = write(
        tmp_path / "s.tsv",
        "name\tstart\tend\tglosses\ttext\na\t0\t1\t1+4\tbook\nb\t0\t1\t2\tread\n",
    )
    rows = read_annotation_file(path, ["glosses", "text"], "\t", KINDS)
    write(tmp_path / "glosses.txt", "0 A\n1 B\n4 E\n")
    heads = {
        "glosses": {"kind": "ctc"},
        "text": {"kind": "t5", "tokenizer_path": str(tokenizer_path)},
    }
    config = _config(tmp_path, heads)
    assert config.head_labels() == {"glosses": "sequence", "text": "text"}
    counts = resolve_num_classes(config, rows, {"text": len(tokenizer)})
    assert counts == {"glosses": 5, "text": 5}  # 1 + the largest id; the vocabulary
    tokens = {"text": tokenizer.convert_ids_to_tokens(list(range(5)))}
    names = label_names(config, counts, tokens)
    assert names["glosses"] == ["A", "B", "2", "3", "E"]
    assert names["text"] == ["<pad>", "</s>", "<unk>", "book", "read"]
    heads["text"]["num_class"] = 7
    with pytest.raises(ConfigError, match=r"heads\.gloss\.text\.num_class: 7, but"):
        resolve_num_classes(_config(tmp_path, heads), rows, {"text": 5})


def test_items_and_batches_of_sequences_and_sentences(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(
        build_word_tokenizer(["book read you"], tmp_path / "tok"), "key"
    )
    targets = {"text": TextTarget(tokenizer, max_length=3)}
    labels, texts = item_labels(
        {"gloss": 2, "glosses": (4, 5), "text": "book read you book"}, targets
    )
    assert labels["gloss"] == 2 and labels["glosses"] == [4, 5]
    assert len(labels["text"]) == 3 and labels["text"][-1] == 1  # cut, then </s>
    assert texts == {"text": "book read you book"}
    missing, missing_texts = item_labels(
        {"gloss": IGNORE_INDEX, "glosses": (), "text": ""}, targets
    )
    assert missing == {"gloss": IGNORE_INDEX, "glosses": [], "text": []}
    items = [
        {
            "labels": labels,
            "texts": texts,
            "name": "a",
            "landmarks": torch.zeros(3, 2, 3),
            "landmark_mask": torch.ones(3, 2, dtype=torch.bool),
        },
        {
            "labels": missing,
            "texts": missing_texts,
            "name": "b",
            "landmarks": torch.zeros(2, 2, 3),
            "landmark_mask": torch.ones(2, 2, dtype=torch.bool),
        },
    ]
    batch = collate_clips(items)
    assert list(batch["labels"]) == ["gloss", "glosses", "text"]
    assert batch["labels"]["gloss"].tolist() == [2, IGNORE_INDEX]
    assert batch["labels"]["glosses"].tolist() == [[4, 5], [IGNORE_INDEX] * 2]
    assert batch["labels"]["text"].shape == (2, 3)
    assert (batch["labels"]["text"][1] == IGNORE_INDEX).all()
    assert batch["texts"] == {"text": ["book read you book", ""]}
    assert pad_ids([[], []]).tolist() == [[IGNORE_INDEX], [IGNORE_INDEX]]


def test_the_split_without_a_class_head_keeps_validation_samples() -> None:
    samples = [Sample(f"s{i}", 0, 5, {"glosses": (i, i + 1)}, []) for i in range(10)]
    splits = split_samples(samples, 0.8, 0, None)
    assert len(splits["train"]) == 8 and len(splits["val"]) == 2
    assert splits == split_samples(samples, 0.8, 0, None)  # seeded
    line = root_statistics("r", samples, {"glosses": "sequence"})
    assert "glosses 10 sequences (2.0 ids avg)" in line
