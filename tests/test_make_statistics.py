"""utils.make_statistics: one chart per label column, summary tables, clear errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from config.hamnosys_heads import HEAD_ORDER, head_class_names
from utils.annotation_table import compute_statistics
from utils.make_statistics import TOP_N, chart_bars, main

ROOT = Path(__file__).resolve().parents[1]
HEARAI_HEADER = (
    'name start end "Symmetry operator" "Dom hand - Handshape - base form" '
    '"Dom hand - Handhape - Thumb position" "Dom hand - Handshape - Bending" '
    '"Dom hand - Handposition - Ext finger direction" '
    '"Dom hand - Handposition - Palm orientation" '
    '"Dom hand - Handlocation - Frontal plane l/r" '
    '"Dom hand - Handlocation - Frontal plane t/b"'
)
HEARAI_ROWS = [
    "10 7 17 0 5 1 0 0 6 0 4",
    "11 0 23 7 5 0 2 11 4 -1 14",
    "12 3 30 -1 3 1 0 4 6 2 14",
    "13 0 12 0 0 nan 3 4 6 0 14",
    "14 5 19 8 5 1 0 17 -1 -1 9",
    "15 2 40 0 11 0 -1 0 0 4 36",
]


def write_text(path: Path, *lines: str) -> Path:
    """Write lines to a file and return its path."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_summary(directory: Path) -> dict[str, dict[str, str]]:
    """summary.csv as {column: row}."""
    with (directory / "summary.csv").open(encoding="utf-8", newline="") as file:
        return {row["column"]: row for row in csv.DictReader(file)}


def expected_summary(rows: list[list[str]]) -> list[tuple[int, int, int, str, int]]:
    """Count each label column here, independently of the tool.

    Returns:
        Per column: (labelled, missing, distinct, most common token, its count).
    """
    result = []
    for index in range(3, len(rows[0])):
        values = [row[index] for row in rows]
        present = [value for value in values if value not in ("-1", "nan", "")]
        counts = Counter(present)
        top = max(sorted(counts, key=int), key=counts.__getitem__)
        result.append(
            (len(present), len(values) - len(present), len(counts), top, counts[top])
        )
    return result


def assert_png(path: Path) -> None:
    """A non-empty, valid PNG image."""
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 100 and image.height > 100
        image.verify()


def run(*args: str | Path) -> int:
    """Run the command line in-process."""
    return main([str(arg) for arg in args])


def test_hearai_file_charts_and_summary(tmp_path: Path, capsys) -> None:
    path = write_text(tmp_path / "test_hamnosys.txt", HEARAI_HEADER, *HEARAI_ROWS)
    out = tmp_path / "stats"
    assert run("--file_path", path, "--output_directory", out) == 0
    assert str(out) in capsys.readouterr().out
    summary = read_summary(out)
    assert list(summary) == HEAD_ORDER
    names = head_class_names()
    rows = [row.split() for row in HEARAI_ROWS]
    for head, expected in zip(HEAD_ORDER, expected_summary(rows)):
        assert_png(out / f"{head}.png")
        labelled, missing, distinct, top, top_count = expected
        row = summary[head]
        assert row["samples"] == str(len(rows))
        assert (row["labelled"], row["missing"]) == (str(labelled), str(missing))
        assert row["distinct_classes"] == str(distinct)
        assert row["most_common_class"] == f"{top} {names[head][int(top)]}"
        assert row["most_common_count"] == str(top_count)
        assert row["kind"] == "hamnosys"
    assert summary["hand_shape_base_form"]["most_common_class"] == "5 hamfinger2345"
    assert summary["symmetry_operator"]["missing"] == "1"
    assert summary["hand_location_x"]["missing"] == "2"
    markdown = (out / "summary.md").read_text(encoding="utf-8")
    assert "| hand_location_y |" in markdown and "14 hamchest" in markdown


def test_hamnosys_chart_lists_every_class_and_the_missing_bar(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ann.txt", HEARAI_HEADER, *HEARAI_ROWS)
    columns = {column.name: column for column in compute_statistics(path)}
    bars, note = chart_bars(columns["hand_shape_base_form"])
    names = head_class_names()["hand_shape_base_form"]
    assert [label for label, _, _ in bars] == [f"{i} {n}" for i, n in enumerate(names)]
    assert [count for _, count, _ in bars][:6] == [1, 0, 0, 1, 0, 3] and not note
    bars, _ = chart_bars(columns["hand_location_x"])
    assert bars[-1] == ("missing", 2, "missing")


def test_gloss_file_with_many_classes_shows_top_n_and_other(tmp_path: Path) -> None:
    labels = [i % (TOP_N + 25) for i in range(300)] + [0] * 50
    lines = [f"s{i} 0 9 {label}" for i, label in enumerate(labels)]
    path = write_text(tmp_path / "test_gloss.txt", "name start end gloss", *lines)
    out = tmp_path / "out"
    assert run("--file_path", path, "--output_directory", out) == 0
    assert_png(out / "gloss.png")
    row = read_summary(out)["gloss"]
    assert (row["samples"], row["missing"]) == ("350", "0")
    assert row["distinct_classes"] == str(TOP_N + 25)
    assert (row["most_common_class"], row["most_common_count"]) == ("0", "55")
    bars, note = chart_bars(compute_statistics(path)[0])
    assert len(bars) == TOP_N + 1 and "top" in note
    assert bars[0][:2] == ("0", 55)
    assert bars[-1][0] == "other (25 classes)"
    assert sum(count for _, count, _ in bars) == 350


def test_headerless_files(tmp_path: Path) -> None:
    hamnosys = write_text(
        tmp_path / "hamnosys.txt", "1 0 7 0 1 1 1 1 1 1 1", "2 3 9 0 1 2 3 4 5 6 7"
    )
    out = tmp_path / "hamnosys"
    assert run("--file_path", hamnosys, "--output_directory", out) == 0
    summary = read_summary(out)
    assert list(summary) == HEAD_ORDER
    assert summary["hand_shape_base_form"]["most_common_class"] == "1 hamflathand"
    gloss = write_text(tmp_path / "gloss.txt", "1 0 7 8", "2 0 5 8", "3 1 4 3")
    out = tmp_path / "gloss"
    assert run("--file_path", gloss, "--output_directory", out) == 0
    row = read_summary(out)["label_1"]
    assert (row["samples"], row["distinct_classes"], row["most_common_class"]) == (
        "3",
        "2",
        "8",
    )
    assert_png(out / "label_1.png")


def test_comma_separated_with_missing_and_extra_columns(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "ann.csv",
        'name,start,end,gloss,"Symmetry operator",split,signer',
        "a,0,3,4,1,train,s1",
        "b,0,3,,0,train,s2",
        "c,2,5,4,-1,val,s1",
        "d,1,6,2,nan,test,",
    )
    out = tmp_path / "out"
    assert run("--file_path", path, "--output_directory", out, "--separator", ",") == 0
    summary = read_summary(out)
    assert list(summary) == ["gloss", "symmetry_operator", "split", "signer"]
    assert (summary["gloss"]["labelled"], summary["gloss"]["missing"]) == ("3", "1")
    assert summary["symmetry_operator"]["missing"] == "2"
    assert summary["split"]["kind"] == "categorical"
    assert summary["split"]["most_common_class"] == "train"
    assert summary["signer"]["missing"] == "1"
    for name in summary:
        assert_png(out / f"{name}.png")


def test_uppercase_header(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "ann.txt",
        'NAME START END "SYMMETRY OPERATOR" GLOSS',
        "a 0 3 7 12",
        "b 0 3 7 -1",
    )
    out = tmp_path / "out"
    assert run("--file_path", path, "--output_directory", out) == 0
    summary = read_summary(out)
    assert summary["symmetry_operator"]["most_common_class"].startswith("7 hamsymmlr")
    assert summary["gloss"]["missing"] == "1"


def test_output_directory_is_created(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ann.txt", "a 0 3 1")
    out = tmp_path / "deep" / "new" / "dir"
    assert run("--file_path", path, "--output_directory", out) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "label_1.png",
        "summary.csv",
        "summary.md",
    ]


@pytest.mark.parametrize(
    "lines, line, needle",
    [
        ((), None, "is empty"),
        (("name start end gloss",), None, "no samples"),
        (("a 0 3 1 2", "b 0 3 1"), 2, "expected 5 columns"),
        (("name start end gloss", "a 0 3 1", "b 0 3 house"), 3, "not a number"),
        (("a 0 3 1", "b 0 x 1"), 2, "frame numbers"),
        (("a,0,3,1",), 1, "--separator"),
    ],
)
def test_bad_input_exits_2_naming_file_and_line(
    tmp_path: Path, capsys, lines: tuple[str, ...], line: int | None, needle: str
) -> None:
    path = tmp_path / "ann.txt"
    path.write_text("".join(f"{text}\n" for text in lines), encoding="utf-8")
    out = tmp_path / "out"
    assert run("--file_path", path, "--output_directory", out) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and len(error.strip().splitlines()) == 1
    assert (f"{path}:{line}:" if line else f"{path}:") in error
    assert needle in error
    assert not out.exists()


def test_missing_file_and_bad_separator(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.txt"
    assert run("--file_path", missing, "--output_directory", tmp_path / "o") == 2
    assert f"error: {missing}: annotation file not found" in capsys.readouterr().err
    path = write_text(tmp_path / "ann.txt", "a 0 3 1")
    args = ("--file_path", path, "--output_directory", tmp_path / "o")
    assert run(*args, "--separator", ";;") == 2
    assert "one character" in capsys.readouterr().err


def test_module_entry_point(tmp_path: Path) -> None:
    path = write_text(tmp_path / "ann.txt", "name start end gloss", "a 0 3 x1")
    result = subprocess.run(
        [sys.executable, "-m", "utils.make_statistics", "--file_path", str(path)]
        + ["--output_directory", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path}:2: head gloss")
