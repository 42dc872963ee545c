"""Transfer learning through train.py: pretraining, fine-tuning from a checkpoint,
freezing parts until the validation loss plateaus, different class counts, errors."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml

from helpers import merge, tiny_overrides

import train
from config.loader import load_config
from training.recognition import SignRecognitionModule
from training.transfer import describe_transfer, load_matching_weights
from data_preprocessing.make_sample_dataset import make_sample_dataset

# The tiny test config with a batch of 8: on the 9 training clips of the sample
# data, 2 steps per epoch, every step logged.
TINY = tiny_overrides({"train_parameters": {"batch_size": 8}})
EXTRACTOR = "model.feature_extractor."
ENCODER = "model.transformer."
THAW_LINE = re.compile(r"transfer: .*thawed feature_extractor.*\(epoch (\d+)\)")


def make_config(shipped: dict, data: Path, save: Path, **train_parameters) -> dict:
    """The shipped config, shrunk, on `data`, saving to `save`."""
    config = merge(copy.deepcopy(shipped), copy.deepcopy(TINY))
    config["general_parameters"]["data_path"] = str(data)
    config["general_parameters"]["path_to_save"] = str(save)
    config["train_parameters"].update(train_parameters)
    return config


def run_train(config: dict, *extra: str) -> int:
    """train.py's main on a config dict (written beside the run directory)."""
    save = Path(config["general_parameters"]["path_to_save"])
    save.parent.mkdir(parents=True, exist_ok=True)
    path = save.parent / f"{save.name}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return train.main(["--model_config_path", str(path), *extra])


def run_captured(config: dict, *extra: str) -> dict:
    """`run_train` with stdout and stderr captured (for module-scoped fixtures, where
    `capsys` is not available)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_train(config, *extra)
    return {
        "rc": code,
        "out": out.getvalue(),
        "err": err.getvalue(),
        "run": Path(config["general_parameters"]["path_to_save"]),
    }


def read_metrics(run: Path) -> list[dict[str, str]]:
    """The rows of the run's (only) CSV log."""
    files = sorted((run / "logs").glob("version_*/metrics.csv"))
    assert len(files) == 1, files
    with files[0].open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def per_epoch(rows: list[dict[str, str]], column: str) -> dict[int, float]:
    """An epoch-level metric by epoch."""
    return {
        int(row["epoch"]): float(row[column])
        for row in rows
        if row.get(column) and row.get("epoch")
    }


def per_step(rows: list[dict[str, str]], column: str) -> dict[int, float]:
    """A step-level metric (such as `lr-AdamW`) by step."""
    return {int(row["step"]): float(row[column]) for row in rows if row.get(column)}


def weights(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict."""
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def report(out: str) -> dict[str, dict[str, int]]:
    """The parts of load_matching_weights' printed report: kind ("loaded",
    "shape differs" (re-initialised), "not in checkpoint") -> part -> tensor count."""
    kinds: dict[str, dict[str, int]] = {}
    for line in out.splitlines():
        match = re.fullmatch(r"([^:]*): ((?:[\w.]+ \(\d+\)(?:, )?)+)", line.strip())
        if not match:
            continue
        label = match[1]
        if "shape differs" in label:
            kind = "shape differs"
        elif "matched by name" in label:
            kind = "rows by name"
        elif "not in" in label:
            kind = "not in checkpoint"
        elif "loaded" in label:
            kind = "loaded"
        else:
            continue
        kinds[kind] = {
            part: int(count)
            for part, count in re.findall(r"([\w.]+) \((\d+)\)", match[2])
        }
    return kinds


def tensors_under(report_parts: dict[str, int], prefix: str) -> int:
    """How many tensors the report counts under a readable part prefix."""
    return sum(n for part, n in report_parts.items() if part.startswith(prefix))


def error_lines(err: str) -> list[str]:
    """The `error:` lines of stderr."""
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def pretrained(shipped_config, sample_root, tmp_path_factory) -> dict:
    """Three epochs of masked-frame pretraining through train.py."""
    base = tmp_path_factory.mktemp("pretrain")
    config = make_config(shipped_config, sample_root, base / "run", epochs=3)
    config["train_parameters"].update(lr=3e-3, warmup_steps=2)
    config["transformer"]["dropout_rate"] = 0.0
    return run_captured(config, "--set", "train_parameters.pre_training=true")


@pytest.fixture(scope="module")
def finetuned(pretrained, shipped_config, sample_root, tmp_path_factory) -> dict:
    """Fine-tuning from the pretraining checkpoint, the extractor frozen until the
    validation loss plateaus. The LR is so tiny that nothing changes before the thaw:
    the validation loss stays put, and patience 1 thaws after the second epoch."""
    checkpoint = pretrained["run"] / "checkpoints" / "best.ckpt"
    assert checkpoint.is_file(), pretrained["err"][-2000:]
    base = tmp_path_factory.mktemp("finetune")
    config = make_config(
        shipped_config, sample_root, base / "run", epochs=3, lr=1e-12, warmup_steps=0
    )
    result = run_captured(
        config,
        "--checkpoint",
        str(checkpoint),
        "--freeze_parts",
        "feature_extractor",
        "--freeze_until_convergence",
        "--patience",
        "1",
        "--lr_after_unfreeze",
        "1e-4",
    )
    result["checkpoint"] = checkpoint
    return result


@pytest.fixture(scope="module")
def gloss_checkpoint(shipped_config, sample_root, tmp_path_factory) -> Path:
    """One epoch of recognition training on the 3-gloss sample data."""
    base = tmp_path_factory.mktemp("gloss3")
    result = run_captured(make_config(shipped_config, sample_root, base / "run"))
    assert result["rc"] == 0, result["err"][-2000:]
    return base / "run" / "checkpoints" / "best.ckpt"


def test_pretraining_lowers_the_validation_loss(pretrained):
    assert pretrained["rc"] == 0, pretrained["err"][-2000:]
    run = pretrained["run"]
    assert (run / "checkpoints" / "best.ckpt").is_file()
    rows = read_metrics(run)
    val = per_epoch(rows, "val/loss")
    train_loss = per_epoch(rows, "pretrain/loss_epoch")
    assert sorted(val) == sorted(train_loss) == [0, 1, 2]
    assert val[2] < val[0], val
    assert train_loss[2] < train_loss[0], train_loss
    assert per_epoch(rows, "val/pretrain/loss") == val
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert math.isfinite(metrics["pretrain_val_loss"])
    assert metrics["pretrain_val_loss"] == pytest.approx(min(val.values()), rel=1e-4)
    saved = weights(run / "checkpoints" / "best.ckpt")
    assert any(key.startswith(EXTRACTOR) for key in saved)
    assert any(key.startswith(ENCODER) for key in saved)


def test_finetuning_loads_the_encoder_and_reports_it(finetuned):
    assert finetuned["rc"] == 0, finetuned["err"][-2000:]
    parts = report(finetuned["out"])
    assert "shape differs" not in parts and "not in checkpoint" not in parts, parts
    source = weights(finetuned["checkpoint"])
    for prefix in ("feature_extractor", "transformer"):
        expected = sum(key.startswith(f"model.{prefix}.") for key in source)
        assert expected > 0
        assert tensors_under(parts["loaded"], prefix + ".") == expected, parts


def test_finetuning_thaws_on_a_plateau_and_sets_the_lr(finetuned):
    assert finetuned["rc"] == 0, finetuned["err"][-2000:]
    out = finetuned["out"]
    assert "transfer: feature_extractor frozen" in out
    thaws = THAW_LINE.findall(out)
    assert len(thaws) == 1, out[-3000:]
    assert "lr now 0.0001" in out
    thaw_epoch = int(thaws[0])
    assert thaw_epoch == 1  # epoch 0 sets the best loss, epoch 1 matches it

    rows = read_metrics(finetuned["run"])
    frozen = per_epoch(rows, "freeze/feature_extractor")
    assert sorted(frozen) == [0, 1, 2]
    assert all(frozen[epoch] == 1.0 for epoch in frozen if epoch < thaw_epoch)
    assert all(frozen[epoch] == 0.0 for epoch in frozen if epoch > thaw_epoch)
    val = per_epoch(rows, "val/loss")
    assert val[1] == pytest.approx(val[0], abs=1e-6)  # the plateau

    lr = per_step(rows, "lr-AdamW")
    first_after = min(
        int(row["step"]) for row in rows if row["epoch"] == str(thaw_epoch + 1)
    )
    assert first_after in lr, lr
    assert lr[first_after] == pytest.approx(1e-4, rel=1e-6)
    assert all(value < 1e-10 for step, value in lr.items() if step < first_after)
    assert all(
        value == pytest.approx(1e-4, rel=0.01)
        for step, value in lr.items()
        if step >= first_after
    )


def test_thawed_extractor_trains_in_train_mode(finetuned):
    assert finetuned["rc"] == 0, finetuned["err"][-2000:]
    before = weights(finetuned["checkpoint"])
    after = weights(finetuned["run"] / "checkpoints" / "last.ckpt")
    extractor = [key for key in before if key.startswith(EXTRACTOR)]
    weight_keys = [key for key in extractor if key.endswith(".weight")]
    changed = [k for k in weight_keys if not torch.equal(before[k], after[k])]
    assert changed, "the extractor was not thawed"
    counters = [key for key in extractor if key.endswith(".num_batches_tracked")]
    assert counters
    # One thawed epoch of training steps: BatchNorm in train mode counts them.
    stale = [k for k in counters if int(after[k]) <= int(before[k])]
    assert not stale, stale


def test_freeze_log_of_the_thaw_epoch_says_frozen(finetuned):
    # The thaw epoch trained frozen; its validation triggered the thaw.
    thaw_epoch = int(THAW_LINE.findall(finetuned["out"])[0])
    frozen = per_epoch(read_metrics(finetuned["run"]), "freeze/feature_extractor")
    assert frozen[thaw_epoch] == 1.0


def test_gloss_head_of_another_class_count_takes_the_shared_glosses_rows(
    gloss_checkpoint, shipped_config, tmp_path, capsys
):
    # The sample's 4 glosses hold the checkpoint's 3: the new head starts from their
    # rows (weight and bias), the fourth gloss's row fresh.
    data = tmp_path / "four_glosses"
    make_sample_dataset(data, glosses=4, clips_per_gloss=4, seed=3, size=40)
    config = make_config(shipped_config, data, tmp_path / "run")
    assert run_train(config, "--checkpoint", str(gloss_checkpoint)) == 0
    parts = report(capsys.readouterr().out)
    assert parts["rows by name"] == {"heads.heads.gloss": 2}, parts
    assert "shape differs" not in parts, parts
    assert "not in checkpoint" not in parts, parts
    source = weights(gloss_checkpoint)
    model_keys = [key for key in source if key.startswith("model.")]
    assert sum(parts["loaded"].values()) == len(model_keys) - 2
    loaded = parts["loaded"]
    assert tensors_under(loaded, "feature_extractor.") > 0
    assert tensors_under(loaded, "transformer.") > 0
    for head in config["heads"]["hamnosys"]:
        assert loaded[f"heads.heads.{head}"] == 2, head
    saved = torch.load(
        tmp_path / "run" / "checkpoints" / "best.ckpt",
        map_location="cpu",
        weights_only=True,
    )
    assert saved["hyper_parameters"]["num_classes"]["gloss"] == 4
    gloss = [k for k in saved["state_dict"] if k.startswith("model.heads.heads.gloss")]
    assert any(saved["state_dict"][k].shape[0] == 4 for k in gloss)
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_keep_frozen_never_changes_the_extractor(
    gloss_checkpoint, shipped_config, sample_root, tmp_path, capsys
):
    config = make_config(shipped_config, sample_root, tmp_path / "run", epochs=2)
    extra = ["--freeze_parts", "feature_extractor", "--keep_frozen"]
    assert run_train(config, "--checkpoint", str(gloss_checkpoint), *extra) == 0
    out = capsys.readouterr().out
    assert "transfer: feature_extractor frozen" in out
    assert "thawed" not in out
    frozen = per_epoch(read_metrics(tmp_path / "run"), "freeze/feature_extractor")
    assert frozen == {0: 1.0, 1: 1.0}
    before = weights(gloss_checkpoint)
    after = weights(tmp_path / "run" / "checkpoints" / "last.ckpt")
    extractor = [key for key in before if key.startswith(EXTRACTOR)]
    assert extractor
    for key in extractor:
        assert torch.equal(before[key], after[key]), key
    encoder = [key for key in before if key.startswith(ENCODER)]
    assert any(not torch.equal(before[key], after[key]) for key in encoder)


def test_checkpoint_path_is_taken_literally(tmp_path):
    # Passed through the config's YAML overrides: ' #' and ': ' must stay literal.
    folder = tmp_path / "run #2: lr 1e-3"
    folder.mkdir()
    checkpoint = folder / "best.ckpt"
    checkpoint.write_bytes(b"")
    config_path = tmp_path / "config.yml"
    config_path.write_text(yaml.safe_dump(TINY), encoding="utf-8")
    args = train.parse_args(
        ["--model_config_path", str(config_path), "--checkpoint", str(checkpoint)]
    )
    config = load_config(config_path, train.overrides_from_args(args))
    assert config.transfer.checkpoint == str(checkpoint)


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("missing_checkpoint", ["--checkpoint", "missing.ckpt", "not an existing"]),
        ("unknown_part", ["transfer.freeze_parts", "nonsense", "feature_extractor"]),
        ("no_parts", ["freeze_parts", "freeze_until_convergence"]),
        ("with_scheduler", ["freeze_scheduler", "freeze_parts"]),
    ],
)
def test_transfer_errors(tiny_config, write_config, tmp_path, capsys, case, words):
    config = copy.deepcopy(tiny_config)
    extra = {
        "missing_checkpoint": ["--checkpoint", str(tmp_path / "missing.ckpt")],
        "unknown_part": ["--freeze_parts", "nonsense"],
        "no_parts": ["--freeze_until_convergence", "--patience", "1"],
        "with_scheduler": ["--freeze_parts", "feature_extractor"],
    }[case]
    if case == "with_scheduler":
        config["freeze_scheduler"] = {
            "model_params": {"feature_extractor": [True, False]},
            "freeze_pattern_repeats": [1, 1],
        }
    path = write_config(config)
    assert train.main(["--model_config_path", str(path), *extra]) == 2
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1, err
    # The message is the `error:` line (and, for config validation, the lines under
    # it naming the key).
    message = err[err.index("error:") :]
    for word in words:
        assert word in message, message
    assert "Traceback" not in err
    assert not Path(config["general_parameters"]["path_to_save"]).exists()


def test_a_head_of_other_classes_takes_the_rows_of_the_same_names(
    tiny_config, write_config, tmp_path
):
    # A model of many glosses starts a model of a few: each shared gloss keeps its
    # row of the classifier, the others start fresh.
    tiny_config["train_parameters"]["classification_mode"] = "gloss"
    config = load_config(write_config(tiny_config))
    big = SignRecognitionModule.from_config(
        config, {"gloss": 4}, {"gloss": ["HELLO", "BOOK", "DRINK", "CANDY"]}
    )
    path = tmp_path / "big.ckpt"
    torch.save(
        {"state_dict": big.state_dict(), "hyper_parameters": dict(big.hparams)}, path
    )
    small = SignRecognitionModule.from_config(
        config, {"gloss": 3}, {"gloss": ["CANDY", "NEW", "HELLO"]}
    )
    fresh = copy.deepcopy(small.state_dict())
    report = load_matching_weights(small, path)
    classifier = [
        key
        for key, value in big.state_dict().items()
        if key.startswith("model.heads.heads.gloss.") and value.shape[0] == 4
    ]
    assert classifier and sorted(report["class rows matched by name"]) == [
        "heads.heads.gloss"
    ]
    for key in classifier:
        rows = small.state_dict()[key]
        assert torch.equal(rows[0], big.state_dict()[key][3])  # CANDY
        assert torch.equal(rows[2], big.state_dict()[key][0])  # HELLO
        assert torch.equal(rows[1], fresh[key][1])  # NEW: fresh
    assert "class rows matched by name: heads.heads.gloss (2)" in (
        describe_transfer(report)
    )
