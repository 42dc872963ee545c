"""Sign sequences of real or synthetic clips (data_preprocessing.sentences), the
synthetic sample corpus, and `data_preprocessing.wlasl --sentences`."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import SHARED_DATA

from data_preprocessing import make_sample_sentences as sample
from data_preprocessing import sentences as sentences_cli
from data_preprocessing.sentences import HEADER, build_sentences
from data_preprocessing.wlasl import main as wlasl_main
from datasets.landmarks import landmark_file, read_landmarks
from utils.errors import DataError, UserError
from utils.tokenizer import load_tokenizer

WLASL = SHARED_DATA / "wlasl_hands"
HANDS = ["left_hand", "right_hand"]


def table(root: Path) -> list[dict[str, str]]:
    """The rows of `sentences.tsv` as {column: value}."""
    lines = (root / "sentences.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == list(HEADER)
    return [dict(zip(HEADER, line.split("\t"))) for line in lines[1:]]


def clip_table(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """name -> (start, end, gloss, split) of a clip root's `test_gloss.txt`."""
    lines = (root / "test_gloss.txt").read_text(encoding="utf-8").splitlines()[1:]
    return {
        name: (int(start), int(end), int(gloss), split)
        for name, start, end, gloss, split, *_ in (line.split() for line in lines)
    }


def points(root: Path, name: str) -> np.ndarray:
    """`(T, 42, 3)` hands of a landmark file of the root, as training reads them."""
    return read_landmarks(landmark_file(root / name, name), HANDS)[0]


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory) -> Path:
    """A synthetic clip root: 5 glosses x 6 clips, 4 train and 2 val each."""
    root = tmp_path_factory.mktemp("clips")
    sample.make_clip_root(root, glosses=5, clips_per_gloss=6, seed=3)
    return root


@pytest.fixture(scope="module")
def built(clip_root: Path, tmp_path_factory) -> tuple[Path, list]:
    """40 train and 12 val sentences of `clip_root`."""
    output = tmp_path_factory.mktemp("sentences")
    written = build_sentences(
        clip_root, output, counts={"train": 40, "val": 12}, seed=7
    )
    return output, written


def test_sentences_table_lists_every_sentence(built) -> None:
    output, written = built
    rows = table(output)
    assert [row["name"] for row in rows] == [s.name for s in written]
    assert sum(row["split"] == "train" for row in rows) == 40
    assert sum(row["split"] == "val" for row in rows) == 12
    assert rows[0]["name"] == "train_00000" and rows[-1]["name"] == "val_00011"
    for row in rows:
        assert (output / row["name"] / f"{row['name']}.npz").is_file()
        assert row["start"] == "0"


def test_splits_never_mix(built, clip_root: Path) -> None:
    clips = clip_table(clip_root)
    _, written = built
    for sentence in written:
        assert {clips[name][3] for name in sentence.clips} == {sentence.split}
        assert len(set(sentence.clips)) == len(sentence.clips)  # distinct clips
    train = {name for s in written if s.split == "train" for name in s.clips}
    val = {name for s in written if s.split == "val" for name in s.clips}
    assert train and val and not train & val


def test_sentence_lengths_are_two_to_six(built) -> None:
    _, written = built
    lengths = [len(sentence.glosses) for sentence in written]
    assert min(lengths) >= 2 and max(lengths) <= 6
    assert len(set(lengths)) >= 3  # drawn, not fixed


def test_rows_are_the_clips_rows_joined_by_nan_gaps(built, clip_root: Path) -> None:
    output, written = built
    clips = clip_table(clip_root)
    rows = {row["name"]: row for row in table(output)}
    for sentence in written[:15]:
        array = points(output, sentence.name)
        assert int(rows[sentence.name]["end"]) == len(array) - 1 == sentence.rows - 1
        empty = np.isnan(array).all(axis=(1, 2))
        # The synthetic clips always show the right hand: the empty rows are gaps.
        parts, gaps, position = [], [], 0
        for number, name in enumerate(sentence.clips):
            if number:
                gap = 0
                while empty[position]:
                    gap, position = gap + 1, position + 1
                gaps.append(gap)
            start, end, _, _ = clips[name]
            expected = points(clip_root, name)[start : end + 1]
            parts.append(len(expected))
            np.testing.assert_array_equal(
                array[position : position + len(expected)], expected
            )
            position += len(expected)
        assert position == len(array)
        assert all(3 <= gap <= 8 for gap in gaps)
        assert len(array) == sum(parts) + sum(gaps)
        assert empty.sum() == sum(gaps)


def test_glosses_and_text_are_the_clips_classes_and_lower_case_names(
    built, clip_root: Path
) -> None:
    output, written = built
    clips = clip_table(clip_root)
    names = {g: sample.gloss_name(g) for g in range(5)}
    rows = {row["name"]: row for row in table(output)}
    for sentence in written:
        glosses = tuple(clips[name][2] for name in sentence.clips)
        assert sentence.glosses == glosses
        row = rows[sentence.name]
        assert row["glosses"] == "+".join(map(str, glosses))
        assert row["text"] == " ".join(names[g] for g in glosses)
        assert row["text"] == row["text"].lower()
    copied = (output / "glosses.txt").read_bytes()
    assert copied == (clip_root / "glosses.txt").read_bytes()


def test_upper_case_gloss_names_become_lower_case_text(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    sample.make_clip_root(root, glosses=3, clips_per_gloss=3, seed=0)
    (root / "glosses.txt").write_text("id gloss\n0 BOOK\n1 Thank You\n2 go\n")
    output = tmp_path / "out"
    build_sentences(root, output, counts={"train": 10}, seed=0)
    words = {word for row in table(output) for word in row["text"].split()}
    assert words <= {"book", "thank", "you", "go"} and "thank" in words
    tokenizer = load_tokenizer(output / "tokenizer", "tokenizer_path")
    assert tokenizer.convert_ids_to_tokens(list(range(3, 7))) == [
        "book",
        "go",
        "thank",
        "you",
    ]


def test_tokenizer_round_trips_every_sentence(built) -> None:
    output, _ = built
    tokenizer = load_tokenizer(output / "tokenizer", "heads.gloss.text.tokenizer_path")
    # Every gloss name of glosses.txt, the val-only ones too.
    assert len(tokenizer) == 3 + 5
    for row in table(output):
        ids = tokenizer(row["text"])["input_ids"]
        assert ids[-1] == 1 and tokenizer.unk_token_id not in ids
        assert len(ids) == len(row["text"].split()) + 1
        assert tokenizer.decode(ids, skip_special_tokens=True) == row["text"]


def test_deterministic_by_seed(clip_root: Path, built, tmp_path: Path) -> None:
    output, _ = built
    again = build_sentences(
        clip_root, tmp_path / "again", counts={"train": 40, "val": 12}, seed=7
    )
    assert table(tmp_path / "again") == table(output)
    for sentence in again[:5]:
        np.testing.assert_array_equal(
            points(tmp_path / "again", sentence.name), points(output, sentence.name)
        )
    other = build_sentences(
        clip_root, tmp_path / "other", counts={"train": 40, "val": 12}, seed=8
    )
    assert [s.clips for s in other] != [s.clips for s in again]
    # The val sentences do not move with the number of train sentences.
    fewer = build_sentences(
        clip_root, tmp_path / "fewer", counts={"train": 3, "val": 12}, seed=7
    )
    assert [s.clips for s in fewer if s.split == "val"] == [
        s.clips for s in again if s.split == "val"
    ]


def test_bad_inputs_are_user_errors(clip_root: Path, tmp_path: Path) -> None:
    counts = {"train": 2}
    with pytest.raises(UserError, match="is the clip root"):
        build_sentences(clip_root, clip_root, counts=counts)
    with pytest.raises(UserError, match="no sentences asked for"):
        build_sentences(clip_root, tmp_path / "o", counts={"train": 0, "val": 0})
    with pytest.raises(UserError, match="expected 1 <= low <= high"):
        build_sentences(clip_root, tmp_path / "o", counts=counts, lengths=(3, 2))
    with pytest.raises(UserError, match=r"10 labelled val clips, too few .* 11\+"):
        build_sentences(clip_root, tmp_path / "o", counts={"val": 1}, lengths=(11, 12))
    unsplit = tmp_path / "unsplit"
    sample.make_clip_root(unsplit, glosses=2, clips_per_gloss=2, seed=0)
    lines = (unsplit / "test_gloss.txt").read_text().splitlines()
    (unsplit / "test_gloss.txt").write_text(
        "\n".join(" ".join(line.split()[:4]) for line in lines) + "\n"
    )
    with pytest.raises(DataError, match="has no split; .* needs a split column"):
        build_sentences(unsplit, tmp_path / "o2", counts=counts)
    assert not (tmp_path / "o2").exists()


def test_command_line(clip_root: Path, tmp_path: Path, capsys) -> None:
    output = tmp_path / "out"
    args = ["--root", str(clip_root), "--output", str(output), "--sentences", "8"]
    assert sentences_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "train: 8 sentences" in out and "val: 2 sentences" in out  # 8 // 4
    assert f"wrote {output}" in out
    code = sentences_cli.main(
        ["--root", str(tmp_path / "none"), "--output", str(output), "--sentences", "2"]
    )
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and error.startswith("error: ")
    assert "test_gloss.txt" in error


def test_sample_corpus_with_ssvp_features(tmp_path: Path) -> None:
    started = time.perf_counter()
    written = sample.make_sample_sentences(
        tmp_path / "s", glosses=4, clips_per_gloss=3, sentences=6, features=16
    )
    assert time.perf_counter() - started < 10  # ~1 s alone; 2 busy cores are slow
    ssvp = tmp_path / "s" / "ssvp"
    for split, count in (("train", 6), ("val", 1)):
        lines = (ssvp / "manifests" / f"{split}_features.tsv").read_text()
        lines = lines.splitlines()
        assert lines[0] == "video_name\tlength\tlabel" and len(lines) == count + 1
        by_name = {s.name: s for s in written}
        for line in lines[1:]:
            name, length, label = line.split("\t")
            assert label == by_name[name].text and by_name[name].split == split
            tensor = torch.load(
                ssvp / "features" / "0" / name[:5] / f"{name}.pt", weights_only=True
            )
            assert tensor.shape == (int(length), 16) and tensor.dtype == torch.float32
            glosses = len(by_name[name].glosses)
            assert 3 * glosses - 1 <= int(length) <= 4 * glosses - 1
    again = sample.make_sample_sentences(
        tmp_path / "t", glosses=4, clips_per_gloss=3, sentences=6, features=16
    )
    assert again == written
    first = ssvp / "features" / "0" / "train" / "train_00000.pt"
    second = tmp_path / "t" / "ssvp" / "features" / "0" / "train" / "train_00000.pt"
    assert torch.equal(torch.load(first), torch.load(second))


def test_sample_command_line(tmp_path: Path, capsys) -> None:
    output = tmp_path / "s"
    args = [str(output), "--glosses", "3", "--clips_per_gloss", "3", "--sentences", "4"]
    assert sample.main(args) == 0
    assert "train: 4 sentences" in capsys.readouterr().out
    assert len(table(output)) == 5 and not (output / "ssvp").exists()
    assert sample.main([str(tmp_path / "x"), "--glosses", "1"]) == 2
    assert "needs 2 or more" in capsys.readouterr().err


def hands(frames: int, seed: int) -> np.ndarray:
    """`(frames, 2, 21, 3)` float16 hands as in the shared npz, one hand in every
    third frame (as tests/test_wlasl.py writes them)."""
    rng = np.random.default_rng(seed)
    out = rng.random((frames, 2, 21, 3)).astype(np.float16)
    out[::3, 1] = np.nan
    return out


def test_wlasl_sentences_option(tmp_path: Path, capsys) -> None:
    split = {f"{i:05d}": ("train" if i < 8 else "val", i % 4) for i in range(11)}
    data = {v: {"subset": s, "action": [c, 1, -1]} for v, (s, c) in split.items()}
    (tmp_path / "nslt.json").write_text(json.dumps(data))
    names = ["Book", "drink", "computer", "before"]
    (tmp_path / "classes.txt").write_text(
        "".join(f"{i}\t{name}\n" for i, name in enumerate(names))
    )
    np.savez(
        tmp_path / "hands.npz", **{v: hands(10 + i, i) for i, v in enumerate(split)}
    )
    root = tmp_path / "root"
    args = ["--split_file", str(tmp_path / "nslt.json"), "--landmarks"]
    args += [str(tmp_path / "hands.npz"), "--output", str(root)]
    args += ["--class_list", str(tmp_path / "classes.txt")]
    assert wlasl_main([*args, "--sentences", "6", "--val_sentences", "3"]) == 0
    out = capsys.readouterr().out
    assert "train: 8 clips" in out
    assert "train: 6 sentences" in out and "val: 3 sentences" in out
    assert f"wrote {root / 'sentences'}" in out
    rows = table(root / "sentences")
    clips = clip_table(root)
    for row in rows:
        glosses = [int(g) for g in row["glosses"].split("+")]
        assert row["text"] == " ".join(names[g].lower() for g in glosses)
        array = points(root / "sentences", row["name"])
        assert len(array) == int(row["end"]) + 1
        rows_of_clips = [
            end - start + 1 for start, end, _, s in clips.values() if s == row["split"]
        ]
        assert len(array) >= 2 * min(rows_of_clips) + 3
    tokenizer = load_tokenizer(root / "sentences" / "tokenizer", "tokenizer_path")
    assert len(tokenizer) == 3 + 4
    # Too few val clips for the sentences asked: the import stays, and a note says
    # how to build the sentences again.
    one_val = {v: e for v, e in data.items() if v not in ("00009", "00010")}
    (tmp_path / "one_val.json").write_text(json.dumps(one_val))
    other = tmp_path / "other"
    again = ["--split_file", str(tmp_path / "one_val.json"), *args[2:-4]]
    again += ["--output", str(other), *args[-2:], "--sentences", "4"]
    assert wlasl_main(again) == 2
    error = capsys.readouterr().err.splitlines()
    assert error[0].startswith(f"the clips are imported in {other}; build the")
    assert (
        error[1].startswith("error: ") and "1 labelled val clips, too few" in error[1]
    )
    assert len(clip_table(other)) == 9
    with pytest.raises(SystemExit) as exited:
        wlasl_main([*args, "--val_sentences", "2"])
    assert exited.value.code == 2
    assert "--val_sentences needs --sentences" in capsys.readouterr().err


needs_wlasl = pytest.mark.skipif(
    not (WLASL / "wlasl300_hands_trainval.npz").is_file(),
    reason="../shared/data/wlasl_hands (real WLASL hand landmarks) is absent",
)


@needs_wlasl
def test_real_wlasl100_sentences(tmp_path: Path, capsys) -> None:
    """20 train and 5 val sentences of WLASL100 clips (a slice of the import: 40
    train and 15 val videos of nslt_100.json with hand landmarks)."""
    split = json.loads((WLASL / "nslt_100.json").read_text(encoding="utf-8"))
    with np.load(WLASL / "wlasl300_hands_trainval.npz") as archive:
        present = [video for video in split if video in set(archive.files)]
        train = [v for v in present if split[v]["subset"] == "train"][:40]
        val = [v for v in present if split[v]["subset"] == "val"][:15]
        np.savez(tmp_path / "slice.npz", **{v: archive[v] for v in train + val})
    subset = {video: split[video] for video in train + val}
    (tmp_path / "slice.json").write_text(json.dumps(subset))
    root = tmp_path / "wlasl100"
    args = ["--split_file", str(tmp_path / "slice.json"), "--class_list"]
    args += [str(WLASL / "wlasl_class_list.txt"), "--landmarks"]
    args += [str(tmp_path / "slice.npz"), "--output", str(root)]
    assert wlasl_main([*args, "--sentences", "20", "--val_sentences", "5"]) == 0
    out = capsys.readouterr().out
    assert "train: 20 sentences" in out and "val: 5 sentences" in out
    names = dict(
        line.split("\t", 1)
        for line in (WLASL / "wlasl_class_list.txt").read_text().splitlines()
        if line.strip()
    )
    clips = clip_table(root)
    tokenizer = load_tokenizer(root / "sentences" / "tokenizer", "tokenizer_path")
    for row in table(root / "sentences"):
        glosses = [int(g) for g in row["glosses"].split("+")]
        assert 2 <= len(glosses) <= 6
        of_split = {g for _, _, g, s in clips.values() if s == row["split"]}
        assert set(glosses) <= of_split
        assert row["text"] == " ".join(names[str(g)].strip().lower() for g in glosses)
        ids = tokenizer(row["text"])["input_ids"]
        assert tokenizer.unk_token_id not in ids and ids[-1] == 1
        array = points(root / "sentences", row["name"])
        assert len(array) == int(row["end"]) + 1
        assert np.isnan(array).all(axis=(1, 2)).sum() >= 3 * (len(glosses) - 1)
        assert np.isfinite(array).any()
