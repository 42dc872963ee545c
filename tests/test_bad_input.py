"""A catalogue of bad input to train.py: each case exits 2 with one clear message.

Every case breaks one thing (in the config, on the command line or in a copy of the
sample data) and checks that train.py answers with status 2, an `error: ` line naming
the file/line/key, no traceback, and no damaged output. Cases that fail because of a
bug are marked `xfail(strict=True)` with the bug in the reason.
"""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import shutil
from pathlib import Path

# Imported at collection, so that Lightning's log handler writes to pytest's session
# stream and not to the capsys stream of whichever test imports it first (closed later).
import lightning.pytorch  # noqa: F401  pylint: disable=unused-import
import numpy as np
import pytest
import torch
import yaml

from helpers import run_train_process

import train

# --------------------------------------------------------------------------- helpers


def check_error(code: int, err: str, *needles: str) -> str:
    """Exit 2, an `error: ` line (notes/warnings may precede it), no traceback."""
    assert code == 2, err
    assert "Traceback" not in err, err
    assert any(line.startswith("error: ") for line in err.splitlines()), err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    return err


@pytest.fixture
def run(write_config, capsys):
    """train.main on a config dict (or an existing file); returns the stderr text
    after checking it is a clean user error mentioning every needle."""

    def call(config: dict | Path, *needles: str, args: tuple[str, ...] = ()) -> str:
        path = config if isinstance(config, Path) else write_config(config)
        capsys.readouterr()
        code = train.main(["--model_config_path", str(path), *args])
        return check_error(code, capsys.readouterr().err, *needles)

    return call


@pytest.fixture
def data_root(sample_root: Path, tmp_path: Path) -> Path:
    """A private copy of the sample dataset, free to break."""
    root = tmp_path / "data"
    shutil.copytree(sample_root, root)
    return root


@pytest.fixture
def config(tiny_config: dict, request: pytest.FixtureRequest) -> dict:
    """The tiny config; on the private data copy when the test asks for `data_root`
    (the others only read the shared sample data)."""
    config = copy.deepcopy(tiny_config)
    if "data_root" in request.fixturenames:
        root = request.getfixturevalue("data_root")
        config["general_parameters"]["data_path"] = str(root)
    return config


def run_dir(config: dict) -> Path:
    """Where the run writes its outputs."""
    return Path(config["general_parameters"]["path_to_save"])


def edit_lines(path: Path, edit) -> None:
    """Rewrite a text file through `edit(lines) -> lines`."""
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")


def first_row(root: Path, mode: str = "gloss") -> list[str]:
    """The tokens of the first sample row of `test_<mode>.txt` (after the header)."""
    return (
        (root / f"test_{mode}.txt").read_text(encoding="utf-8").splitlines()[1].split()
    )


def assert_checkpoints_sound(config: dict) -> None:
    """No checkpoint, or only checkpoints that load."""
    for checkpoint in (run_dir(config) / "checkpoints").glob("*.ckpt"):
        torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert not (run_dir(config) / "metrics.json").exists()


# ------------------------------------------------------------- the config file itself


def test_missing_config_file(run, tmp_path: Path) -> None:
    run(tmp_path / "nope.yml", "nope.yml", "config file not found")


def test_malformed_yaml_in_a_process(tmp_path: Path) -> None:
    """As a user runs it: status 2 and file:line:column, no traceback."""
    path = tmp_path / "bad.yml"
    path.write_text(
        "general_parameters:\n  seed: 1\ntrain_parameters: {epochs: 1\n",
        encoding="utf-8",
    )
    result = run_train_process(path)
    check_error(result.returncode, result.stderr, f"{path}:4:1: malformed YAML")


def test_tab_indented_yaml(run, tmp_path: Path) -> None:
    path = tmp_path / "tabs.yml"
    path.write_text("train_parameters:\n\tepochs: 1\n", encoding="utf-8")
    run(path, f"{path}:2:1", "malformed YAML")


@pytest.mark.parametrize("text", ["- general_parameters\n- train_parameters\n", "hi\n"])
def test_config_that_is_not_a_mapping(run, tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yml"
    path.write_text(text, encoding="utf-8")
    run(path, str(path), "YAML mapping")


def test_empty_config_file(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the defaults must not find data/sample and train
    path = tmp_path / "blank.yml"
    path.write_text("# nothing here yet\n", encoding="utf-8")
    run(path, f"{path}: ", "empty")


def test_duplicate_key_in_yaml(run, config: dict, tmp_path: Path) -> None:
    text = yaml.safe_dump(config, sort_keys=False)
    data_line = f"  data_path: {config['general_parameters']['data_path']}\n"
    assert data_line in text
    text = text.replace(data_line, data_line + f"  data_path: {tmp_path / 'typo'}\n")
    path = tmp_path / "twice.yml"
    path.write_text(text, encoding="utf-8")
    run(path, f"{path}:", "data_path")


# ---------------------------------------------------------------- keys and sections


def test_unknown_section(run, config: dict) -> None:
    config["trainig_parameters"] = config.pop("train_parameters")
    run(config, "trainig_parameters: unknown key", "'train_parameters'")


def test_misspelled_key(run, config: dict) -> None:
    config["general_parameters"]["data_paht"] = "x"
    run(config, "general_parameters.data_paht: unknown key", "'data_path'")


def test_misspelled_head_field(run, config: dict) -> None:
    config["heads"]["gloss"]["gloss"]["num_classes"] = 3
    run(config, "heads.gloss.gloss.num_classes: unknown key", "'num_class'")


def test_legacy_and_current_key_disagree(run, config: dict) -> None:
    config["general_parameters"]["data_paths"] = "/elsewhere"
    run(config, "general_parameters.data_paths", "general_parameters.data_path")


def test_legacy_landmarks_key_disagrees(run, config: dict) -> None:
    config["train_parameters"]["use_landmarks"] = True
    run(
        config, "train_parameters.use_landmarks", "keep only train_parameters.landmarks"
    )


def test_section_that_is_not_a_mapping(run, config: dict) -> None:
    config["train_parameters"] = 5
    run(config, "train_parameters:", "got 5")


# --------------------------------------------------------------- types and values


def test_wrong_type(run, config: dict) -> None:
    config["train_parameters"]["epochs"] = "ten"
    run(config, "train_parameters.epochs", "'ten'")


def test_boolean_for_a_count(run, config: dict) -> None:
    config["train_parameters"]["epochs"] = True
    config["general_parameters"]["path_to_save"] = "/dev/null/run"  # stop if accepted
    run(config, "train_parameters.epochs")


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("train_parameters", "batch_size", 0),
        ("train_parameters", "num_segments", 0),
        ("train_parameters", "epochs", -1),
        ("augmentations_parameters", "resize_size", -8),
        ("feature_extractor", "representation_size", 0),
        ("general_parameters", "workers", -1),
    ],
)
def test_negative_or_zero_size(run, config: dict, section, key, value) -> None:
    config[section][key] = value
    run(config, f"{section}.{key}", repr(value))


def test_ratio_out_of_range(run, config: dict) -> None:
    config["general_parameters"]["ratio_train_test"] = 1.5
    run(config, "general_parameters.ratio_train_test", "1.5")


def test_num_class_below_two(run, config: dict) -> None:
    config["heads"]["gloss"]["gloss"]["num_class"] = 1
    run(config, "heads.gloss.gloss", "num_class must be at least 2")


def test_heads_do_not_divide_width(run, config: dict) -> None:
    config["transformer"]["num_attention_heads"] = 3
    run(config, "transformer", "divisible by num_attention_heads")


def test_unknown_classification_mode(run, config: dict) -> None:
    config["train_parameters"]["classification_mode"] = "glos"
    run(config, "train_parameters.classification_mode", "'glos'")


def test_empty_classification_mode(run, config: dict) -> None:
    config["train_parameters"]["classification_mode"] = []
    run(config, "train_parameters.classification_mode")


def test_negative_gpu_index(run, config: dict) -> None:
    config["general_parameters"]["gpu"] = -2
    run(config, "general_parameters.gpu", "-2")


def test_gpu_index_without_cuda(run, config: dict) -> None:
    config["general_parameters"]["gpu"] = torch.cuda.device_count()
    run(config, "general_parameters.gpu", "not available")
    assert not run_dir(config).exists()


def test_unknown_precision(run, config: dict) -> None:
    config["trainer"]["precision"] = "17-mixed"
    run(config, "trainer.precision", "17-mixed")


def test_color_jitter_out_of_range(run, config: dict) -> None:
    config["augmentations_parameters"]["apply_color_jitter"] = True
    config["augmentations_parameters"]["color_jitter_hue"] = 0.9
    run(config, "augmentations_parameters.color_jitter_hue", "0.9")


# ------------------------------------------------------------------ freeze scheduler


def test_freeze_list_lengths_differ(run, config: dict) -> None:
    config["freeze_scheduler"] = {
        "model_params": {"feature_extractor": [True, False, True]},
        "freeze_pattern_repeats": [2, 3],
    }
    run(
        config,
        "freeze_scheduler: model_params.feature_extractor has 3 entries",
        "freeze_pattern_repeats has 2",
    )


def test_freeze_unknown_module(run, config: dict) -> None:
    config["freeze_scheduler"] = {
        "model_params": {"backbone": [True, False]},
        "freeze_pattern_repeats": [1, 1],
    }
    run(config, "freeze_scheduler.model_params.backbone: unknown module")
    assert not run_dir(config).exists()


def test_freeze_zero_repeats(run, config: dict) -> None:
    config["freeze_scheduler"] = {
        "model_params": {"transformer": [True]},
        "freeze_pattern_repeats": [0],
    }
    run(config, "freeze_scheduler.freeze_pattern_repeats", "positive")


# ------------------------------------------------------------------------ models


@pytest.mark.parametrize(
    "section, value, allowed",
    [
        ("feature_extractor", "vgg_extractor", "cnn_extractor"),
        ("transformer", "lstm", "sign_language_transformer"),
    ],
)
def test_unknown_model_name(run, config: dict, section, value, allowed) -> None:
    config[section]["name"] = value
    run(config, f"{section}.name", value, allowed)


def test_unknown_timm_model(run, config: dict) -> None:
    config["feature_extractor"]["model_path"] = "resnet1O"
    run(config, "feature_extractor.model_path", "'resnet1O'", "not a timm model")


def test_missing_pretrained_weights(run, config: dict, tmp_path: Path) -> None:
    config["feature_extractor"]["pretrained_path"] = str(tmp_path / "w.pth")
    run(config, "feature_extractor.pretrained_path", "w.pth")


# ----------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "override, needles",
    [
        ("train_parameters.epochs", ("--set", "expected dotted.key=value")),
        ("=3", ("--set", "expected dotted.key=value")),
        ("train_parameters.epochs.x=1", ("train_parameters.epochs is not a section",)),
        ("train_parameters.epochs=abc", ("train_parameters.epochs", "'abc'")),
        ("train_parameters.epoch=1", ("train_parameters.epoch: unknown key",)),
    ],
)
def test_bad_set_override(run, config: dict, override, needles) -> None:
    run(config, *needles, args=("--set", override))


def test_transfer_checkpoint_missing(run, config: dict, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.ckpt"
    run(
        config,
        f"--checkpoint: '{missing}'",
        "not an existing file",
        args=("--checkpoint", str(missing)),
    )
    assert not run_dir(config).exists()


def test_transfer_checkpoint_not_a_checkpoint(run, config, write_config) -> None:
    not_a_checkpoint = write_config(config, "not_a_checkpoint.yml")
    run(
        config,
        "--checkpoint: cannot read",
        "not_a_checkpoint.yml",
        args=("--checkpoint", str(not_a_checkpoint)),
    )


def test_freeze_parts_unknown_module(run, config: dict) -> None:
    err = run(config, "freeze_parts", "backbone", args=("--freeze_parts", "backbone"))
    assert "freeze_scheduler" not in err


def test_output_directory_not_writable(run, config: dict, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder", encoding="utf-8")
    config["general_parameters"]["path_to_save"] = str(blocker / "run")
    run(config, "general_parameters.path_to_save", "cannot write")


def test_resume_from_corrupt_checkpoint(run, config: dict) -> None:
    last = run_dir(config) / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"not a checkpoint")
    run(config, f"--resume: cannot read {last}", args=("--resume",))
    assert last.read_bytes() == b"not a checkpoint"


def test_refused_resume_keeps_the_run_config(run, config: dict) -> None:
    saved = run_dir(config) / "config.yml"
    (saved.parent / "checkpoints").mkdir(parents=True)
    (saved.parent / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    saved.write_text("# the config of the earlier run\n", encoding="utf-8")
    run(config, "--resume: cannot read", args=("--resume",))
    assert saved.read_text(encoding="utf-8") == "# the config of the earlier run\n"


# ---------------------------------------------------------------- data roots and files


def test_missing_data_root(run, config: dict, tmp_path: Path) -> None:
    config["general_parameters"]["data_path"] = str(tmp_path / "no_such_dir")
    run(config, "general_parameters.data_path", "no_such_dir")


def test_data_root_is_a_file(run, config: dict, sample_root: Path) -> None:
    config["general_parameters"]["data_path"] = str(sample_root / "test_gloss.txt")
    run(
        config,
        "general_parameters.data_path",
        "is not an existing directory or video manifest",
    )


def test_empty_data_root_list(run, config: dict) -> None:
    config["general_parameters"]["data_path"] = []
    run(config, "data_path", "empty")


def test_annotation_file_list_length_mismatch(run, config: dict) -> None:
    config["general_parameters"]["annotation_file"] = ["a.txt", "b.txt"]
    run(config, "general_parameters.annotation_file", "2 files for 1")


def test_missing_annotation_file(run, config: dict, data_root: Path) -> None:
    (data_root / "test_gloss.txt").unlink()
    run(config, str(data_root / "test_gloss.txt"), "annotation file not found")
    assert not run_dir(config).exists()


@pytest.mark.parametrize("content", ["", "name start end gloss\n", "\n# only\n"])
def test_empty_annotation_file(run, config: dict, data_root: Path, content) -> None:
    (data_root / "test_gloss.txt").write_text(content, encoding="utf-8")
    run(config, str(data_root / "test_gloss.txt"), "no samples")


def test_annotation_file_not_utf8(run, config: dict, data_root: Path) -> None:
    (data_root / "test_gloss.txt").write_bytes(
        b"name start end gloss\n\xff\xfe 1 2 0\n"
    )
    run(config, "test_gloss.txt", "cannot read the annotation file")


def break_row(root: Path, index: int, value: str, mode: str = "gloss") -> str:
    """Set token `index` of the first sample row to `value`; return `file:2`."""
    path = root / f"test_{mode}.txt"

    def edit(lines: list[str]) -> list[str]:
        tokens = lines[1].split()
        tokens[index : index + 1] = [value] if value else []
        lines[1] = " ".join(tokens)
        return lines

    edit_lines(path, edit)
    return f"{path}:2"


@pytest.mark.parametrize(
    "index, value, needle",
    [
        (3, "", "expected at least 4 columns"),
        (3, "three", "label 'three' is not a number"),
        (3, "2.5", "is not a class index"),
        (3, "-3", "is not a class index"),
        (1, "x", "start and end must be frame numbers"),
        (1, "1.5", "start and end must be frame numbers"),
        (1, "99", "must be >= 0 and <= end"),
    ],
)
def test_bad_annotation_row(run, config: dict, data_root, index, value, needle) -> None:
    where = break_row(data_root, index, value)
    run(config, where, needle)
    assert not run_dir(config).exists()


def test_too_few_hamnosys_columns(run, config: dict, data_root: Path) -> None:
    where = break_row(data_root, 10, "", mode="hamnosys")
    run(config, where, "expected at least 11 columns", "found 10")


def test_rows_of_two_files_disagree_on_frames(run, config, data_root: Path) -> None:
    name, start, end = first_row(data_root)[:3]
    break_row(data_root, 2, str(int(end) - 1), mode="hamnosys")
    run(config, name, f"{start}-{end}", "test_hamnosys.txt:2")


def test_duplicate_sample_name(run, config: dict, data_root: Path) -> None:
    path = data_root / "test_gloss.txt"
    edit_lines(path, lambda lines: lines + [lines[1]])
    name = first_row(data_root)[0]
    run(config, f"sample {name} is listed again", f"first at {path}:2")


def test_header_names_only_some_heads(run, config: dict, data_root: Path) -> None:
    path = data_root / "test_hamnosys.txt"

    def edit(lines: list[str]) -> list[str]:
        lines[0] = lines[0].replace("hand_location_y", "location_vertical")
        return lines

    edit_lines(path, edit)
    run(config, f"{path}:1", "hand_location_y")


def with_split_column(root: Path, split_of) -> Path:
    """Add a `split` column to test_gloss.txt: `split_of(row number)` per row."""
    path = root / "test_gloss.txt"

    def edit(lines: list[str]) -> list[str]:
        return [lines[0] + " split"] + [
            f"{line} {split_of(number)}" for number, line in enumerate(lines[1:])
        ]

    edit_lines(path, edit)
    return path


def test_split_value_not_allowed(run, config: dict, data_root: Path) -> None:
    path = with_split_column(data_root, lambda n: "dev" if n == 2 else "train")
    run(config, f"{path}:4", "split 'dev'", "train, val, test")


def test_every_row_is_test(run, config: dict, data_root: Path) -> None:
    with_split_column(data_root, lambda n: "test")
    run(config, "0 training and 0 validation samples", "split column")
    assert not run_dir(config).exists()


def test_num_class_smaller_than_labels(run, config: dict, data_root: Path) -> None:
    config["heads"]["gloss"]["gloss"]["num_class"] = 2
    err = run(config, "head gloss: label 2 is outside [0, 2)", "num_class")
    assert str(data_root / "test_gloss.txt") + ":" in err


def test_no_labels_with_auto_classes(run, config: dict, data_root: Path) -> None:
    edit_lines(
        data_root / "test_gloss.txt",
        lambda lines: lines[:1]
        + [line.rsplit(" ", 1)[0] + " -1" for line in lines[1:]],
    )
    run(config, "head gloss", "'auto' but no sample has a label")


def test_missing_frames(run, config: dict, data_root: Path) -> None:
    name, start = first_row(data_root)[:2]
    missing = int(start) + 1
    (data_root / name / f"{name}_{missing}.jpg").unlink()
    run(config, "test_gloss.txt:2", f"lacks frames {missing}", name)
    assert not run_dir(config).exists()


def test_missing_sample_folder(run, config: dict, data_root: Path) -> None:
    name = first_row(data_root)[0]
    shutil.rmtree(data_root / name)
    run(config, "test_gloss.txt:2", f"sample folder {data_root / name} not found")


def test_malformed_properties_json(run, config: dict, data_root: Path) -> None:
    name = first_row(data_root)[0]
    path = data_root / name / f"{name}_properties.json"
    path.write_text('{"FPS": ', encoding="utf-8")
    run(config, str(path), "numeric FPS")


def test_time_without_fps(run, config: dict, data_root: Path) -> None:
    for path in data_root.glob("*/*_properties.json"):
        path.unlink()
    config["train_parameters"]["time"] = 0.2
    run(config, "train_parameters.time", "default_fps")
    assert not run_dir(config).exists()


# ------------------------------------------------------------------------- landmarks


def test_landmarks_without_landmark_files(run, config: dict, sample_root) -> None:
    config["train_parameters"]["landmarks"] = True
    name = first_row(sample_root)[0]
    run(config, "no landmarks for", f"{sample_root / name / name}.npz")


def test_unreadable_landmark_file(run, config: dict, data_root: Path) -> None:
    rng = np.random.default_rng(0)
    folders = sorted(folder for folder in data_root.iterdir() if folder.is_dir())
    for folder in folders:
        frames = len(list(folder.glob("*.jpg")))
        parts = {
            part: rng.normal(size=(frames, size, 3)).astype(np.float32)
            for part, size in (("pose", 33), ("left_hand", 21), ("right_hand", 21))
        }
        np.savez(folder / f"{folder.name}.npz", **parts)
    for folder in folders:  # every file cut short: the first batch finds one
        path = folder / f"{folder.name}.npz"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    config["train_parameters"]["landmarks"] = True
    config["feature_extractor"] = {"name": "landmarks_extractor"}
    run(config, ".npz: cannot read landmarks")
    assert_checkpoints_sound(config)


# ------------------------------------------------ corrupt images (found while training)


def test_zero_byte_jpeg(run, config: dict, data_root: Path) -> None:
    name = first_row(data_root)[0]
    for frame in (data_root / name).glob("*.jpg"):
        frame.write_bytes(b"")
    run(config, f"{data_root / name / name}_", "empty (0-byte) frame files")
    run_dir = Path(config["general_parameters"]["path_to_save"])
    assert not run_dir.exists(), "found when the dataset is built, before training"


def test_truncated_jpeg_in_loader_workers(config: dict, data_root, write_config):
    """In a real process with loader workers: the worker's error, no traceback."""
    name = first_row(data_root)[0]
    for frame in (data_root / name).glob("*.jpg"):
        frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 2])
    config["general_parameters"]["workers"] = 1
    result = run_train_process(write_config(config))
    check_error(
        result.returncode,
        result.stderr,
        f"{data_root / name / name}_",
        ".jpg: cannot read image",
    )
    assert_checkpoints_sound(config)


# ----------------------------------------------- resuming a run of a different model


def test_resume_checkpoint_of_another_model(run, config: dict, write_config) -> None:
    assert train.main(["--model_config_path", str(write_config(config))]) == 0
    checkpoints = run_dir(config) / "checkpoints"
    before = {path.name: path.read_bytes() for path in checkpoints.glob("*.ckpt")}
    assert set(before) == {"best.ckpt", "last.ckpt"}
    other = copy.deepcopy(config)
    other["feature_extractor"]["representation_size"] = 24
    run(
        write_config(other, "other.yml"),
        f"--resume: {checkpoints / 'last.ckpt'}",
        "different feature_extractor",
        args=("--resume",),
    )
    after = {path.name: path.read_bytes() for path in checkpoints.glob("*.ckpt")}
    assert after == before
