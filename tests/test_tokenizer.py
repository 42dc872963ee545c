"""Word tokenizers: built offline in T5's convention, loaded from a local folder,
refused with the config key when unusable; the command line over a file's column."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_preprocessing.tokenizer import column_words, main
from utils.errors import ConfigError, DataError
from utils.tokenizer import build_word_tokenizer, load_tokenizer, word_vocabulary

KEY = "heads.gloss.text.tokenizer_path"


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory) -> Path:
    """A word tokenizer of five glosses (one of two words)."""
    folder = tmp_path_factory.mktemp("tokenizer") / "tok"
    build_word_tokenizer(["Book", "drink", "CHAIR", "drink", "thank you"], folder)
    return folder


def test_vocabulary_is_special_tokens_then_sorted_lower_case_words() -> None:
    assert word_vocabulary(["Drink", "book", "thank you", "BOOK"]) == {
        "<pad>": 0,
        "</s>": 1,
        "<unk>": 2,
        "book": 3,
        "drink": 4,
        "thank": 5,
        "you": 6,
    }


def test_round_trip_appends_end_of_sentence(tokenizer_folder: Path) -> None:
    tokenizer = load_tokenizer(tokenizer_folder, KEY)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1)
    assert tokenizer.unk_token_id == 2
    assert len(tokenizer) == 3 + 5  # book chair drink thank you
    ids = tokenizer("Book drink")["input_ids"]
    assert ids == [3, 5, 1]  # book, drink, </s>
    assert tokenizer.decode(ids, skip_special_tokens=True) == "book drink"
    assert tokenizer("book  sofa")["input_ids"] == [3, 2, 1]  # an unknown word
    batch = tokenizer(["book", "thank you chair"], padding=True)["input_ids"]
    assert batch == [[3, 1, 0, 0], [6, 7, 4, 1]]
    assert tokenizer.convert_ids_to_tokens(list(range(3))) == ["<pad>", "</s>", "<unk>"]


def test_missing_folder_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_tokenizer(tmp_path / "absent", KEY)
    message = str(error.value)
    assert message.startswith(f"{KEY}: tokenizer folder {tmp_path / 'absent'}")
    assert "not found" in message and "data_preprocessing.tokenizer" in message


def test_folder_without_tokenizer_json_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=f"^{KEY}: .*holds no tokenizer.json"):
        load_tokenizer(tmp_path / "empty", KEY)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        load_tokenizer(tmp_path / "file", KEY)


def test_unreadable_tokenizer_json_names_the_key(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(ConfigError, match=f"^{KEY}: cannot read the tokenizer in"):
        load_tokenizer(folder, KEY)


def test_other_pad_and_eos_ids_are_refused(
    tokenizer_folder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "swapped"
    folder.mkdir()
    data = json.loads((tokenizer_folder / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    vocab["<pad>"], vocab["book"] = vocab["book"], vocab["<pad>"]
    for token in data["added_tokens"]:
        token["id"] = vocab[token["content"]]
    (folder / "tokenizer.json").write_text(json.dumps(data))
    config = (tokenizer_folder / "tokenizer_config.json").read_text()
    (folder / "tokenizer_config.json").write_text(config)
    with pytest.raises(ConfigError) as error:
        load_tokenizer(folder, KEY)
    assert str(error.value).startswith(f"{KEY}: the tokenizer in {folder} has pad id 3")
    assert "expected <pad> = 0 and </s> = 1" in str(error.value)


def test_command_line_builds_from_a_tsv_column(tmp_path: Path, capsys) -> None:
    table = tmp_path / "sentences.tsv"
    table.write_text(
        "name\tstart\tend\tglosses\ttext\tsplit\n"
        "# a comment\n"
        "S1\t0\t9\t0+1\tbook drink\ttrain\n"
        "S2\t0\t9\t1+2\tdrink Chair\tval\n",
        encoding="utf-8",
    )
    output = tmp_path / "tok"
    assert main([str(table), "--column", "text", "--output", str(output)]) == 0
    assert "2 rows, 3 distinct words (+ 3 special tokens)" in capsys.readouterr().out
    tokenizer = load_tokenizer(output, "--output")
    assert tokenizer("chair book")["input_ids"] == [4, 3, 1]


def test_command_line_reads_quoted_csv_cells(tmp_path: Path) -> None:
    table = tmp_path / "manifest.csv"
    table.write_text('path,text\na.mp4,"go, store"\nb.mp4,mother go\n')
    output = tmp_path / "tok"
    assert main([str(table), "--column", "text", "--output", str(output)]) == 0
    vocabulary = json.loads((output / "tokenizer.json").read_text())["model"]["vocab"]
    assert sorted(vocabulary, key=vocabulary.get)[3:] == [
        "go",
        "go,",
        "mother",
        "store",
    ]


def test_command_line_errors_are_one_line(tmp_path: Path, capsys) -> None:
    table = tmp_path / "labels.txt"
    table.write_text("name start end gloss\nA 0 9 book\n")
    code = main([str(table), "--column", "text", "--output", str(tmp_path / "o")])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith(f"error: {table}: no column 'text' in the header")
    assert "'name', 'start', 'end', 'gloss'" in error
    assert not (tmp_path / "o").exists()
    code = main([str(tmp_path / "no.tsv"), "--column", "text", "--output", "o"])
    assert code == 2 and "annotation file not found" in capsys.readouterr().err


def test_a_short_row_names_its_line(tmp_path: Path) -> None:
    table = tmp_path / "s.tsv"
    table.write_text("name\ttext\nA\tbook\nB\n")
    with pytest.raises(DataError, match=r"s.tsv:3: 1 columns; column 'text'"):
        column_words(table, "text")
