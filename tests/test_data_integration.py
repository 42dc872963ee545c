"""Data features end to end, the way users run them: several dataset roots, `signer`
and `split` columns, per-root annotation files, separators, time sampling with the
FPS of `<name>_properties.json`, and class counts checked against every root."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import pytest
import torch

from helpers import HEARAI_TITLES

import train
from config.hamnosys_heads import HEAD_ORDER as HAMNOSYS_HEADS
from config.loader import parse_config
from data_preprocessing.make_sample_dataset import make_sample_dataset
from datasets.index import Sample
from datasets.sign_dataset import decode_image
from training.datamodule import SignDataModule
from utils.errors import ConfigError, DataError

# HAMNOSYS_HEADS: the eight heads in column order (test_hamnosys pins HEAD_ORDER).
HEADS = ["gloss", *HAMNOSYS_HEADS]
CLIPS_PER_GLOSS = 4
SPLIT_OF_CLIP = {0: "train", 1: "train", 2: "val", 3: "test"}


# --- helpers --------------------------------------------------------------------------


def make_root(path: Path, seed: int, glosses: int = 3) -> Path:
    """A fresh generated dataset root (3 glosses x 4 clips of 40px frames)."""
    make_sample_dataset(
        path, glosses=glosses, clips_per_gloss=CLIPS_PER_GLOSS, seed=seed, size=40
    )
    return path


def clip_index(name: str) -> int:
    """The clip number of a generated sample name (`HOUSE_003` -> 3)."""
    return int(name.rsplit("_", 1)[1])


def read_table(path: Path) -> list[list[str]]:
    """The whitespace-separated rows of an annotation file, header first."""
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def write_table(path: Path, rows: list[list[str]], separator: str = " ") -> Path:
    """Write rows (header first) joined by `separator`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(separator.join(row) for row in rows) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def add_column(path: Path, title: str, value_of: Callable[[str], str]) -> None:
    """Append a column to a whitespace-separated annotation file (value by name)."""
    header, *rows = read_table(path)
    write_table(path, [header + [title]] + [row + [value_of(row[0])] for row in rows])


def add_signers(root: Path, prefix: str) -> None:
    """A `signer` column in both annotation files: `<prefix><clip index % 3>`."""
    for filename in ("test_gloss.txt", "test_hamnosys.txt"):
        add_column(root / filename, "signer", lambda n: f"{prefix}{clip_index(n) % 3}")


def labels_of(root: Path) -> dict[str, dict[str, int]]:
    """Sample name -> every head's label, from the generated annotation files."""
    labels: dict[str, dict[str, int]] = {}
    for filename in ("test_gloss.txt", "test_hamnosys.txt"):
        header, *rows = read_table(root / filename)
        for row in rows:
            labels.setdefault(row[0], {}).update(
                {
                    title: int(value)
                    for title, value in zip(header[3:], row[3:])
                    if title in HEADS
                }
            )
    return labels


def frames_of(root: Path) -> int:
    """The number of annotated frames (start..end inclusive) of a generated root."""
    return sum(
        int(row[2]) - int(row[1]) + 1 for row in read_table(root / "test_gloss.txt")[1:]
    )


def configure(tiny_config: dict, roots: list[Path], **general) -> dict:
    """The tiny config on the given roots, with general_parameters overrides."""
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["data_path"] = [str(root) for root in roots]
    config["general_parameters"].update(general)
    return config


def run(write_config, config: dict) -> int:
    """train.py's main on a config dict, as users run it."""
    return train.main(["--model_config_path", str(write_config(config))])


def keys(samples: list[Sample]) -> set[tuple[str, str]]:
    """(root, name) of samples; names repeat across generated roots."""
    return {(sample.root, sample.name) for sample in samples}


def assert_user_error(code: int, err: str, *needles: str) -> None:
    """Exit 2 and an `error: ...` message naming every needle, no traceback
    (warnings may come first)."""
    assert code == 2, err
    assert "Traceback" not in err
    assert "\nerror: " in f"\n{err}", err
    message = f"\n{err}".split("\nerror: ", 1)[1]
    for needle in needles:
        assert needle in message, (needle, err)


@pytest.fixture(name="two_roots")
def fixture_two_roots(tmp_path: Path) -> list[Path]:
    """Two generated roots (different seeds, same sample names) with signers a*/b*."""
    roots = [make_root(tmp_path / "a", 1), make_root(tmp_path / "b", 2)]
    for root, prefix in zip(roots, ("a", "b")):
        add_signers(root, prefix)
    return roots


# --- 1. several roots with a signer column --------------------------------------------


def test_two_roots_with_signers_train_and_describe_each_root(
    tiny_config, write_config, two_roots, capsys
) -> None:
    config = configure(tiny_config, two_roots)
    config["train_parameters"]["fast_dev_run"] = True
    assert run(write_config, config) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("data ")]
    assert len(lines) == 2, out
    for line, root in zip(lines, two_roots):
        assert line.startswith(f"data {root}: 12 samples, {frames_of(root)} frames")
        for head in HEADS:
            assert f"{head} 12 (" in line, (head, line)
        assert "gloss 12 (3 classes)" in line
    save = Path(tiny_config["general_parameters"]["path_to_save"])
    assert (save / "metrics.json").is_file()


def test_two_roots_split_by_signer_at_the_datamodule(tiny_config, two_roots) -> None:
    module = SignDataModule(parse_config(configure(tiny_config, two_roots)))
    train_samples, val_samples = module.data.train_samples, module.data.val_samples
    assert not module.data.test_samples
    everything = keys(train_samples) | keys(val_samples)
    assert len(everything) == len(train_samples) + len(val_samples) == 24
    train_signers = {sample.signer for sample in train_samples}
    val_signers = {sample.signer for sample in val_samples}
    assert train_signers and val_signers
    assert not train_signers & val_signers, "a signer in both train and val"
    assert train_signers | val_signers == {"a0", "a1", "a2", "b0", "b1", "b2"}
    # Both roots contribute, with their own labels.
    assert {sample.root for sample in train_samples + val_samples} == {
        str(root) for root in two_roots
    }
    for root in two_roots:
        expected = labels_of(root)
        mine = [s for s in train_samples + val_samples if s.root == str(root)]
        assert len(mine) == 12
        for sample in mine:
            assert sample.labels == expected[sample.name]
            assert sample.signer == f"{root.name}{clip_index(sample.name) % 3}"
    # describe(): one line per root with its samples and per-head label counts.
    lines = module.describe().splitlines()
    data_lines = [line for line in lines if line.startswith("data ")]
    assert len(data_lines) == 2
    for line, root in zip(data_lines, two_roots):
        assert line.startswith(f"data {root}: 12 samples")
        counts = line.split("labelled: ", 1)[1]
        assert counts.startswith("gloss 12 (3 classes), symmetry_operator 12 (")
        assert [part.split()[0] for part in counts.split(", ")] == HEADS
    assert f"{len(train_samples)} train / {len(val_samples)} val" in lines[-1]


def test_signer_split_is_seeded(tiny_config, two_roots) -> None:
    config = configure(tiny_config, two_roots)
    first = SignDataModule(parse_config(config))
    again = SignDataModule(parse_config(config))
    assert keys(first.data.val_samples) == keys(again.data.val_samples)


# --- 2. a split column ----------------------------------------------------------------


def test_split_column_fixes_train_val_and_test(
    tiny_config, write_config, tmp_path, capsys
) -> None:
    root = make_root(tmp_path / "data", 3)
    for filename in ("test_gloss.txt", "test_hamnosys.txt"):
        add_column(root / filename, "split", lambda n: SPLIT_OF_CLIP[clip_index(n)])
    # A signer column too: the fixed split wins over the signer-independent one.
    add_signers(root, "s")
    config = configure(tiny_config, [root])
    module = SignDataModule(parse_config(config))
    expected = {
        split: {
            name for name in labels_of(root) if SPLIT_OF_CLIP[clip_index(name)] == split
        }
        for split in ("train", "val", "test")
    }
    assert {s.name for s in module.data.train_samples} == expected["train"]
    assert {s.name for s in module.data.val_samples} == expected["val"]
    assert {s.name for s in module.data.test_samples} == expected["test"]
    # The loaders never show a test clip.
    for loader, split in [
        (module.train_dataloader(), "train"),
        (module.val_dataloader(), "val"),
    ]:
        shown = {name for batch in loader for name in batch["name"]}
        assert shown == expected[split]
    assert "6 train / 3 val / 3 test" in module.describe()
    config["train_parameters"]["fast_dev_run"] = True
    assert run(write_config, config) == 0
    assert "6 train / 3 val / 3 test" in capsys.readouterr().out


def test_split_column_in_one_root_and_signers_in_another(tiny_config, tmp_path) -> None:
    fixed = make_root(tmp_path / "fixed", 1)
    for filename in ("test_gloss.txt", "test_hamnosys.txt"):
        add_column(fixed / filename, "split", lambda n: SPLIT_OF_CLIP[clip_index(n)])
    signed = make_root(tmp_path / "signed", 2)
    add_signers(signed, "s")
    module = SignDataModule(parse_config(configure(tiny_config, [fixed, signed])))
    by_root = {
        split: {(s.root, clip_index(s.name)) for s in samples}
        for split, samples in [
            ("train", module.data.train_samples),
            ("val", module.data.val_samples),
            ("test", module.data.test_samples),
        ]
    }
    for split in ("train", "val", "test"):
        clips = {c for root, c in by_root[split] if root == str(fixed)}
        assert clips == {c for c, name in SPLIT_OF_CLIP.items() if name == split}
    assert all(root == str(fixed) for root, _ in by_root["test"])
    # The other root is split by signer: each signer wholly in train or in val.
    train_signers = {
        s.signer for s in module.data.train_samples if s.root == str(signed)
    }
    val_signers = {s.signer for s in module.data.val_samples if s.root == str(signed)}
    assert train_signers and val_signers and not train_signers & val_signers
    assert train_signers | val_signers == {"s0", "s1", "s2"}


def test_conflicting_split_between_joined_files_is_an_error(
    tiny_config, tmp_path
) -> None:
    root = make_root(tmp_path / "data", 3)
    add_column(root / "test_gloss.txt", "split", lambda n: SPLIT_OF_CLIP[clip_index(n)])
    # The HamNoSys file holds every clip 0 out for testing; the gloss file trains it.
    add_column(
        root / "test_hamnosys.txt",
        "split",
        lambda n: "test" if clip_index(n) == 0 else SPLIT_OF_CLIP[clip_index(n)],
    )
    with pytest.raises(DataError, match="split"):
        SignDataModule(parse_config(configure(tiny_config, [root])))


def write_split_files(root: Path, splits: dict[str, set[int]]) -> dict[str, str]:
    """The joint annotation file cut into one file per split (by clip index)."""
    write_joint_file(root, root / "all.txt")
    header, *rows = read_table(root / "all.txt")
    files = {}
    for split, clips in splits.items():
        chosen = [row for row in rows if clip_index(row[0]) in clips]
        files[split] = f"labels_{split}.txt"
        write_table(root / files[split], [header] + chosen)
    return files


def test_split_files_fix_train_val_and_test(
    tiny_config, write_config, tmp_path, capsys
) -> None:
    root = make_root(tmp_path / "data", 3)
    splits = {"train": {0, 1}, "val": {2}, "test": {3}}
    files = write_split_files(root, splits)
    config = configure(tiny_config, [root], annotation_file=files)
    module = SignDataModule(parse_config(config))
    for split, samples in [
        ("train", module.data.train_samples),
        ("val", module.data.val_samples),
        ("test", module.data.test_samples),
    ]:
        assert {clip_index(s.name) for s in samples} == splits[split]
    assert "6 train / 3 val / 3 test" in module.describe()
    assert (
        module.data.train_samples[0].labels
        == labels_of(root)[module.data.train_samples[0].name]
    )
    config["train_parameters"]["fast_dev_run"] = True
    assert run(write_config, config) == 0
    assert "6 train / 3 val / 3 test" in capsys.readouterr().out


def test_without_a_val_file_the_train_file_gives_val(tiny_config, tmp_path) -> None:
    root = make_root(tmp_path / "data", 3)
    files = write_split_files(root, {"train": {0, 1, 2}, "test": {3}})
    module = SignDataModule(
        parse_config(configure(tiny_config, [root], annotation_file=files))
    )
    assert {clip_index(s.name) for s in module.data.test_samples} == {3}
    carved = module.data.train_samples + module.data.val_samples
    assert {clip_index(s.name) for s in carved} == {0, 1, 2} and len(carved) == 9
    assert module.data.val_samples and module.data.train_samples


def test_split_files_must_not_share_samples_or_disagree(tiny_config, tmp_path) -> None:
    root = make_root(tmp_path / "data", 3)
    files = write_split_files(root, {"train": {0, 1, 2}, "test": {2, 3}})
    with pytest.raises(DataError, match="is also in .*labels_train.txt"):
        SignDataModule(
            parse_config(configure(tiny_config, [root], annotation_file=files))
        )
    files = write_split_files(root, {"train": {0, 1, 2}, "test": {3}})
    add_column(root / files["test"], "split", lambda name: "val")
    with pytest.raises(DataError, match="split column says 'val'.* in the test file"):
        SignDataModule(
            parse_config(configure(tiny_config, [root], annotation_file=files))
        )
    with pytest.raises(ConfigError, match="need a train file"):
        parse_config(
            configure(tiny_config, [root], annotation_file={"test": "labels_test.txt"})
        )


# --- 3. per-root annotation files -----------------------------------------------------


def write_joint_file(root: Path, path: Path) -> None:
    """One file holding the gloss and every HamNoSys column (by header name)."""
    gloss_header, *gloss_rows = read_table(root / "test_gloss.txt")
    hamnosys_header, *hamnosys_rows = read_table(root / "test_hamnosys.txt")
    assert [row[:3] for row in gloss_rows] == [row[:3] for row in hamnosys_rows]
    # Columns in another order than the documented one: matched by name.
    header = gloss_header[:3] + hamnosys_header[3:] + gloss_header[3:]
    rows = [h + g[3:] for g, h in zip(gloss_rows, hamnosys_rows)]
    write_table(path, [header] + rows)


def test_annotation_file_per_root_with_joint_columns_trains(
    tiny_config, write_config, tmp_path
) -> None:
    roots = [make_root(tmp_path / "a", 1), make_root(tmp_path / "b", 2)]
    expected = [labels_of(root) for root in roots]
    write_joint_file(roots[0], roots[0] / "labels_a.txt")
    write_joint_file(roots[1], roots[1] / "annotations" / "labels_b.txt")
    for root in roots:  # only the configured files are there to read
        (root / "test_gloss.txt").unlink()
        (root / "test_hamnosys.txt").unlink()
    config = configure(
        tiny_config,
        roots,
        annotation_file=["labels_a.txt", "annotations/labels_b.txt"],
    )
    assert config["train_parameters"]["classification_mode"] == ["gloss", "hamnosys"]
    module = SignDataModule(parse_config(config))
    samples = module.data.train_samples + module.data.val_samples
    assert len(samples) == 24
    for root, labels in zip(roots, expected):
        mine = {s.name: s.labels for s in samples if s.root == str(root)}
        assert mine == labels
    config["train_parameters"]["fast_dev_run"] = True
    assert run(write_config, config) == 0


@pytest.mark.parametrize("files", [["labels.txt"], ["a.txt", "b.txt", "c.txt"]])
def test_annotation_file_list_length_mismatch_is_a_config_error(
    tiny_config, write_config, two_roots, capsys, files
) -> None:
    config = configure(tiny_config, two_roots, annotation_file=files)
    with pytest.raises(ConfigError) as caught:
        parse_config(config)
    message = str(caught.value)
    assert "general_parameters" in message and "annotation_file" in message
    assert f"{len(files)} files for 2 data_path roots" in message
    code = run(write_config, config)
    assert_user_error(code, capsys.readouterr().err, "annotation_file")


def test_annotation_file_mismatch_names_the_dotted_key(tiny_config, two_roots) -> None:
    config = configure(tiny_config, two_roots, annotation_file=["labels.txt"])
    with pytest.raises(ConfigError, match=r"general_parameters\.annotation_file: "):
        parse_config(config)


# --- 4. a separator -------------------------------------------------------------------


def rewrite_as_csv(root: Path) -> None:
    """test_gloss.txt / test_hamnosys.txt as CSV with quoted (HearAI) header titles."""
    for filename, titles in (
        ("test_gloss.txt", ["gloss"]),
        ("test_hamnosys.txt", HEARAI_TITLES),
    ):
        _, *rows = read_table(root / filename)
        header = [f'"{title}"' for title in ["name", "start", "end", *titles]]
        write_table(root / filename, [header] + rows, separator=",")


def test_comma_separated_annotations_with_quoted_titles_train(
    tiny_config, write_config, tmp_path, capsys
) -> None:
    root = make_root(tmp_path / "data", 4)
    expected = labels_of(root)
    rewrite_as_csv(root)
    config = configure(tiny_config, [root], annotation_separator=",")
    module = SignDataModule(parse_config(config))
    samples = module.data.train_samples + module.data.val_samples
    assert {s.name: s.labels for s in samples} == expected
    config["train_parameters"]["fast_dev_run"] = True
    assert run(write_config, config) == 0
    # The same files read as whitespace-separated: a clear error, not a guess.
    del config["general_parameters"]["annotation_separator"]
    code = run(write_config, config)
    assert_user_error(code, capsys.readouterr().err, f"{root / 'test_gloss.txt'}:")


def test_blank_signer_cell_in_a_csv_is_a_missing_signer(tiny_config, tmp_path) -> None:
    root = make_root(tmp_path / "data", 4)
    add_signers(root, "s")
    for filename in ("test_gloss.txt", "test_hamnosys.txt"):
        header, *rows = read_table(root / filename)
        # Clip 3 of every gloss has no signer filled in.
        rows = [row[:-1] + [""] if clip_index(row[0]) == 3 else row for row in rows]
        write_table(root / filename, [header] + rows, separator=",")
    config = configure(tiny_config, [root], annotation_separator=",")
    with pytest.raises(DataError, match="no signer"):
        SignDataModule(parse_config(config))


# --- 5. time sampling -----------------------------------------------------------------


def shown_positions(frames: torch.Tensor, sample: Sample) -> list[int]:
    """Which positions of the clip a loaded `(T, C, H, W)` clip shows (frames are
    distinct: every generated frame has its own noise)."""
    decoded = [
        torch.from_numpy(decode_image(path, None)).permute(2, 0, 1)
        for path in sample.frame_paths
    ]
    positions = []
    for frame in frames:
        matches = [i for i, image in enumerate(decoded) if torch.equal(frame, image)]
        assert len(matches) == 1, matches
        positions.append(matches[0])
    return positions


def time_config(tiny_config: dict, root: Path, **train_parameters) -> dict:
    """The tiny config with time sampling and without any pixel-changing transform."""
    config = configure(tiny_config, [root])
    config["train_parameters"].update(train_parameters)
    config["augmentations_parameters"].update(
        apply_resize=False,
        apply_center_crop=False,
        apply_random_rotation=False,
        apply_color_jitter=False,
        apply_random_erasing=False,
    )
    return config


def assert_steps(module: SignDataModule, step: int) -> None:
    """Every clip (train and val) shows num_segments frames `step` apart."""
    for samples, is_train in [
        (module.data.train_samples, True),
        (module.data.val_samples, False),
    ]:
        dataset = module.dataset(samples, train=is_train)
        for index, sample in enumerate(samples):
            positions = shown_positions(dataset[index]["frames"], sample)
            assert len(positions) == 4
            gaps = [b - a for a, b in zip(positions, positions[1:])]
            assert gaps == [step] * 3, (sample.name, positions)


def test_time_sampling_takes_frames_fps_times_time_apart(tiny_config, tmp_path) -> None:
    root = make_root(tmp_path / "data", 5)
    # 0.08 s at the 25 FPS of <name>_properties.json: every 2nd frame.
    module = SignDataModule(parse_config(time_config(tiny_config, root, time=0.08)))
    assert {s.fps for s in module.data.train_samples + module.data.val_samples} == {
        25.0
    }
    assert_steps(module, 2)
    # A sample's own FPS wins over default_fps (50 would give 4).
    config = time_config(tiny_config, root, time=0.08, default_fps=50.0)
    assert_steps(SignDataModule(parse_config(config)), 2)
    # Without time the longest clip is spread over evenly, wider than 3 steps of 2.
    module = SignDataModule(parse_config(time_config(tiny_config, root)))
    sample = max(
        module.data.train_samples + module.data.val_samples, key=lambda s: s.length
    )
    assert sample.length >= 12
    positions = shown_positions(
        module.dataset([sample], train=False)[0]["frames"], sample
    )
    assert positions[-1] - positions[0] > 6


def test_time_sampled_run_trains(tiny_config, write_config, tmp_path) -> None:
    root = make_root(tmp_path / "data", 5)
    config = configure(tiny_config, [root])
    config["train_parameters"].update(time=0.08, fast_dev_run=True)
    assert run(write_config, config) == 0


def test_time_without_fps_needs_default_fps(
    tiny_config, write_config, tmp_path, capsys
) -> None:
    root = make_root(tmp_path / "data", 6)
    for properties in root.glob("*/*_properties.json"):
        properties.unlink()
    config = configure(tiny_config, [root])
    config["train_parameters"].update(time=0.08, fast_dev_run=True)
    code = run(write_config, config)
    assert_user_error(
        code,
        capsys.readouterr().err,
        "train_parameters.default_fps",
        "_properties.json",
    )
    config["train_parameters"]["default_fps"] = 25.0
    assert run(write_config, config) == 0
    # default_fps 25 gives the same 2-frame step as the properties files did.
    config = time_config(tiny_config, root, time=0.08, default_fps=25.0)
    module = SignDataModule(parse_config(config))
    assert {s.fps for s in module.data.train_samples + module.data.val_samples} == {
        None
    }
    assert_steps(module, 2)


# --- 6. class counts against every root -----------------------------------------------


def lines_with_label(path: Path, column: str, label: int) -> list[int]:
    """1-based line numbers of the rows whose `column` holds `label`."""
    header, *rows = read_table(path)
    index = header.index(column)
    return [number for number, row in enumerate(rows, 2) if int(row[index]) == label]


def test_num_class_below_a_later_roots_labels_names_file_line_and_head(
    tiny_config, write_config, tmp_path, capsys
) -> None:
    # Root a has glosses 0..2; root b adds gloss 3 (EAT, finger direction 6).
    roots = [make_root(tmp_path / "a", 1), make_root(tmp_path / "b", 2, glosses=4)]
    config = configure(tiny_config, roots)
    module = SignDataModule(parse_config(config))
    assert module.data.num_classes["gloss"] == 4  # `auto` counts every root
    config["heads"]["gloss"]["gloss"]["num_class"] = 3
    config["heads"]["hamnosys"]["hand_position_finger_direction"]["num_class"] = 5
    code = run(write_config, config)
    err = capsys.readouterr().err
    gloss_file = roots[1] / "test_gloss.txt"
    hamnosys_file = roots[1] / "test_hamnosys.txt"
    gloss_lines = lines_with_label(gloss_file, "gloss", 3)
    direction_lines = lines_with_label(
        hamnosys_file, "hand_position_finger_direction", 6
    )
    assert len(gloss_lines) == len(direction_lines) == CLIPS_PER_GLOSS
    assert_user_error(
        code,
        err,
        *(
            f"{gloss_file}:{n}: head gloss: label 3 is outside [0, 3)"
            for n in gloss_lines
        ),
        *(
            f"{hamnosys_file}:{n}: head hand_position_finger_direction: label 6 is "
            "outside [0, 5)"
            for n in direction_lines
        ),
        "num_class",
    )
    assert str(roots[0]) not in err  # root a's labels all fit
