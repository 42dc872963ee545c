"""Per-gloss attributes from a lexicon table -> phonology head labels of a root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SHARED_DATA

from data_preprocessing import attributes
from datasets.index import read_gloss_names, value_names_file
from utils.annotations import read_annotation_file

PHONOLOGY = SHARED_DATA / "wlasl_hands" / "wlasl_phonology.csv"


def make_root(root: Path) -> Path:
    """4 clips of 3 glosses (book, drink, zebra), as the WLASL importer writes them."""
    root.mkdir()
    (root / "test_gloss.txt").write_text(
        "name start end gloss split\n"
        "c1 0 9 0 train\nc2 0 9 0 val\nc3 0 7 1 train\nc4 0 5 2 train\n",
        encoding="utf-8",
    )
    (root / "glosses.txt").write_text(
        "id gloss\n0 book\n1 drink\n2 zebra\n", encoding="utf-8"
    )
    return root


def write_table(path: Path) -> Path:
    """A lexicon: book and drink (drink's location not coded), no zebra."""
    path.write_text(
        "gloss,handshape,location\nBook,open_b,neutral\ndrink,c,\ncat,f,head\n",
        encoding="utf-8",
    )
    return path


def test_attributes_become_head_labels_with_names(tmp_path: Path, capsys) -> None:
    root = make_root(tmp_path / "root")
    table = write_table(tmp_path / "lexicon.csv")
    assert attributes.main(["--table", str(table), "--root", str(root)]) == 0
    assert "2 of 3 glosses (3 of 4 clips) have a row" in capsys.readouterr().out
    rows = read_annotation_file(root / "test_hamnosys.txt", ["handshape", "location"])
    labels = {row.name: row.labels for row in rows}
    # Values numbered in sorted order; a missing row or an empty cell is -1.
    assert labels == {
        "c1": {"handshape": 1, "location": 0},
        "c2": {"handshape": 1, "location": 0},
        "c3": {"handshape": 0, "location": -100},
        "c4": {"handshape": -100, "location": -100},
    }
    names = read_gloss_names([str(root)], value_names_file("handshape"))
    assert names == {0: "c", 1: "open_b"}
    summary = json.loads((root / "attributes.json").read_text(encoding="utf-8"))
    assert summary["num_class"] == {"handshape": 2, "location": 2}
    assert summary["glosses_with_a_row"] == 2


def test_rare_values_fold_into_other() -> None:
    assert attributes.value_ids(["a", "b", "a", "c"], min_count=2) == {
        "a": 0,
        "b": 1,
        "c": 1,
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--key", "word"], "no column 'word' to match glosses by"),
        (["--columns", "handshape,movement"], "--columns: movement not in"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, capsys, extra, message) -> None:
    root = make_root(tmp_path / "root")
    table = write_table(tmp_path / "lexicon.csv")
    code = attributes.main(["--table", str(table), "--root", str(root), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_a_gloss_twice_in_the_table_is_an_error(tmp_path: Path, capsys) -> None:
    root = make_root(tmp_path / "root")
    table = tmp_path / "twice.csv"
    table.write_text("gloss,handshape\nbook,b\nBOOK,c\n", encoding="utf-8")
    assert attributes.main(["--table", str(table), "--root", str(root)]) == 2
    assert "twice.csv:3: gloss 'BOOK' is also on line 2" in capsys.readouterr().err


@pytest.mark.skipif(not PHONOLOGY.is_file(), reason=f"{PHONOLOGY} is absent")
def test_asl_lex_phonology_covers_wlasl100(tmp_path: Path) -> None:
    """The real table: 98 of WLASL100's 100 glosses have ASL-LEX 2.0 phonology."""
    root = tmp_path / "root"
    root.mkdir()
    lines = [f"clip{i} 0 9 {i} train" for i in range(100)]
    (root / "test_gloss.txt").write_text(
        "name start end gloss split\n" + "\n".join(lines) + "\n", encoding="utf-8"
    )
    classes = (SHARED_DATA / "wlasl_hands" / "wlasl_class_list.txt").read_text()
    glosses = [line.split("\t") for line in classes.splitlines()[:100]]
    (root / "glosses.txt").write_text(
        "id gloss\n" + "".join(f"{i} {g}\n" for i, g in glosses), encoding="utf-8"
    )
    summary = attributes.attach_attributes(
        PHONOLOGY, root, columns=["handshape", "major_location"]
    )
    assert summary["glosses_with_a_row"] == 98
