"""test.py as users run it: metrics checked against an independent computation,
shuffled frames, plots, the `full` bundle and user errors."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch.nn import functional as F

from helpers import load_test_cli, merge, tiny_overrides

import train
from data_preprocessing.make_sample_dataset import make_sample_dataset
from datasets.sign_dataset import collate_clips
from evaluation.metrics import (
    IGNORE_INDEX,
    HeadPredictions,
    bootstrap_ci95,
    confusion_matrix,
    make_permutation,
    per_class_accuracy,
    permutation_entropy,
    precision_recall_f1,
    head_results,
    shuffle_batch,
)
from evaluation.plots import MAX_CLASSES, save_head_plots, select_classes
from training.datamodule import SignDataModule
from training.recognition import SignRecognitionModule

KS = (1, 5, 10)
PLOTS = ("confusion_matrix", "heatmap", "bar_graph")
NOT_HEADS = {"average_loss", "samples", "set", "checkpoint", "perm", "shannon_entropy"}
# The tiny test config, seeded.
TINY = tiny_overrides({"general_parameters": {"seed": 7}})


CLI = load_test_cli()


def split_of(name: str) -> str:
    """Clips 0-1 train, 2 val, 3 val for HOUSE (uneven classes) else train, 4 test."""
    clip = int(name.rsplit("_", 1)[1])
    if clip == 3:
        return "val" if name.startswith("HOUSE") else "train"
    return {0: "train", 1: "train", 2: "val", 4: "test"}[clip]


def add_split_column(root: Path) -> None:
    """Append a `split` column to both generated annotation files."""
    for filename in ("test_gloss.txt", "test_hamnosys.txt"):
        path = root / filename
        header, *rows = path.read_text(encoding="utf-8").splitlines()
        lines = [f"{header} split"] + [f"{r} {split_of(r.split()[0])}" for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shipped_config: dict) -> dict:
    """One tiny training run on generated data with a split column."""
    base = tmp_path_factory.mktemp("evaluate")
    data = base / "data"
    make_sample_dataset(data, glosses=3, clips_per_gloss=5, seed=3, size=40)
    add_split_column(data)
    config = merge(copy.deepcopy(shipped_config), copy.deepcopy(TINY))
    config["general_parameters"]["data_path"] = str(data)
    config["general_parameters"]["path_to_save"] = str(base / "run")
    config_path = base / "config.yml"
    config_path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    assert train.main(["--model_config_path", str(config_path)]) == 0
    run = base / "run"
    return {
        "run": run,
        "checkpoint": run / "checkpoints" / "best.ckpt",
        "data": data,
        "config": config,
    }


def run_cli(*argv: str) -> int:
    """test.py's main."""
    return CLI.main([str(arg) for arg in argv])


def read_json(path: Path) -> dict:
    """A JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def assert_png(path: Path) -> None:
    """A valid, non-empty PNG."""
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        assert image.width > 50 and image.height > 50


def independent_results(checkpoint: Path, set_name: str, perm=None) -> dict:
    """Every metric computed directly: evaluation dataset, one batch, plain torch."""
    module = SignRecognitionModule.load_from_checkpoint(checkpoint, map_location="cpu")
    module.eval()
    config = module.config
    datamodule = SignDataModule(config)
    samples = getattr(datamodule.data, f"{set_name}_samples")
    dataset = datamodule.dataset(samples, train=False)
    items = [dataset[i] for i in range(len(dataset))]
    if perm is not None:
        for item in items:
            length = item["frames"].shape[0]
            item["frames"] = item["frames"][[p for p in perm if p < length]]
    batch = collate_clips(items)
    with torch.no_grad():
        logits = module.model(batch)["logits"]
    weights = {h: head.loss_weight for h, head in config.active_heads().items()}
    results, weighted, weight_sum = {}, 0.0, 0.0
    for head, head_logits in logits.items():
        labels = batch["labels"][head]
        keep = labels != -100
        scores, target = head_logits[keep], labels[keep]
        count = scores.shape[1]
        order = torch.argsort(scores, dim=1, descending=True)
        instance, per_class = {}, {}
        for k in KS:
            hit = (order[:, : min(k, count)] == target[:, None]).any(dim=1).double()
            instance[f"top{k}"] = hit.mean().item()
            classes = sorted(set(target.tolist()))
            per_class[f"top{k}"] = sum(
                hit[target == c].mean().item() for c in classes
            ) / len(classes)
        loss = F.cross_entropy(scores, target).item()
        weighted += weights[head] * loss
        weight_sum += weights[head]
        results[head] = {
            "top_k_per_instance_acc": instance,
            "top_k_average_per_class_acc": per_class,
            "loss": loss,
        }
    results["average_loss"] = weighted / weight_sum
    results["samples"] = len(samples)
    return results


def assert_matches(result: dict, expected: dict) -> None:
    """Every head's metric and the losses agree."""
    heads = [key for key in expected if key not in NOT_HEADS]
    assert set(heads) <= set(result)
    for head in heads:
        for kind in ("top_k_per_instance_acc", "top_k_average_per_class_acc"):
            for key in ("top1", "top5", "top10"):
                assert result[head][kind][key] == pytest.approx(
                    expected[head][kind][key], abs=1e-9
                ), (head, kind, key)
        assert result[head]["loss"] == pytest.approx(expected[head]["loss"], abs=1e-4)
    assert result["average_loss"] == pytest.approx(expected["average_loss"], abs=1e-4)
    assert result["samples"] == expected["samples"]


# --- partial -----------------------------------------------------------------------


def test_partial_val_save_writes_json_and_plots(trained, capsys):
    assert run_cli("partial", trained["checkpoint"], "val", "--save") == 0
    results = trained["run"] / "results"
    result = read_json(results / "best_val-results.json")
    heads = ["gloss", *trained["config"]["heads"]["hamnosys"]]
    assert set(result) == {*heads, "average_loss", "set", "samples", "checkpoint"}
    assert result["set"] == "val" and result["samples"] == 4
    assert result["checkpoint"] == str(trained["checkpoint"])
    for head in heads:
        assert set(result[head]) == {
            "top_k_per_instance_acc",
            "top_k_average_per_class_acc",
            "top1_ci95",
            "loss",
        }
        low, high = result[head]["top1_ci95"]
        assert 0.0 <= low <= result[head]["top_k_per_instance_acc"]["top1"] <= high
        for kind in ("top_k_per_instance_acc", "top_k_average_per_class_acc"):
            values = result[head][kind]
            assert set(values) == {"top1", "top5", "top10"}
            assert 0.0 <= values["top1"] <= values["top5"] <= values["top10"] <= 1.0
        assert result[head]["loss"] > 0
        for plot in PLOTS:
            assert_png(results / f"best_val-{head}-{plot}.png")
    assert result["average_loss"] > 0
    captured = capsys.readouterr()
    assert "wrote" in captured.err and "average loss" in captured.err
    assert json.loads(captured.out) == result, "the JSON is printed as well"


def test_partial_metrics_match_an_independent_computation(trained, tmp_path, capsys):
    assert (
        run_cli("partial", trained["checkpoint"], "val", "--output_dir", tmp_path) == 0
    )
    capsys.readouterr()
    result = read_json(tmp_path / "best_val-results.json")
    expected = independent_results(trained["checkpoint"], "val")
    assert_matches(result, expected)
    # The uneven val classes make per-class and per-instance averages differ somewhere
    # or agree for the right reason: check one head by hand.
    gloss = expected["gloss"]["top_k_per_instance_acc"]["top10"]
    assert gloss == 1.0  # 3 classes: top-10 is capped at top-3


def test_without_save_prints_json_and_plots_nothing(trained, capsys):
    results = trained["run"] / "results"
    before = sorted(results.glob("*")) if results.exists() else []
    argv = ["partial", trained["checkpoint"], "train"]
    assert run_cli(*argv, "--batch_size", "3", "--heatmap") == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["set"] == "train" and result["samples"] == 8
    assert "plots are written with --save" in captured.err
    assert (sorted(results.glob("*")) if results.exists() else []) == before
    # Evaluation transforms: the train set evaluates deterministically, whatever
    # the batch size.
    assert run_cli(*argv) == 0
    assert_matches(json.loads(capsys.readouterr().out), result)


def test_shuffle_frames_reports_a_permutation_and_its_entropy(
    trained, tmp_path, capsys
):
    argv = ["partial", trained["checkpoint"], "val", "--shuffle_frames"]
    assert run_cli(*argv, "--output_dir", tmp_path, "--confusion_matrix") == 0
    capsys.readouterr()
    result = read_json(tmp_path / "best_val_shuffled-results.json")
    perm = result["perm"]
    num_segments = trained["config"]["train_parameters"]["num_segments"]
    assert sorted(perm) == list(range(num_segments))
    assert perm != list(range(num_segments))
    assert perm == make_permutation(num_segments, 7)  # seeded by the config seed
    assert result["shannon_entropy"] == pytest.approx(permutation_entropy(perm))
    assert 0.0 < result["shannon_entropy"] <= math.log2(num_segments)
    assert_matches(result, independent_results(trained["checkpoint"], "val", perm))
    # Only the asked-for plot.
    assert_png(tmp_path / "best_val_shuffled-gloss-confusion_matrix.png")
    assert not list(tmp_path.glob("*heatmap.png"))


# --- full --------------------------------------------------------------------------


def test_full_writes_the_bundle_with_the_training_record(trained, capsys):
    assert run_cli("full", trained["checkpoint"], "--save") == 0
    captured = capsys.readouterr()
    results = trained["run"] / "results"
    bundle = read_json(results / "best_full-results.json")
    assert json.loads(captured.out) == bundle, "printed and saved"
    for head in ["gloss", *trained["config"]["heads"]["hamnosys"]]:
        for plot in PLOTS:  # the three plots per head, of the test set
            assert_png(results / f"best_test-{head}-{plot}.png")
    metrics = read_json(trained["run"] / "metrics.json")
    checkpoint = torch.load(trained["checkpoint"], map_location="cpu")
    state = next(
        v for k, v in checkpoint["callbacks"].items() if "ModelCheckpoint" in k
    )
    assert bundle["best_val_loss"] == pytest.approx(float(state["best_model_score"]))
    assert bundle["best_val_loss"] == pytest.approx(metrics["val_loss"], abs=1e-5)
    assert bundle["best_val_acc"] == {h: v["top1"] for h, v in metrics["heads"].items()}
    assert bundle["best_val_mean_top1"] == metrics["mean_top1"]
    assert bundle["test_set"] == "test"
    assert bundle["test"]["set"] == "test" and bundle["test"]["samples"] == 3
    assert bundle["val"]["set"] == "val" and bundle["val"]["samples"] == 4
    shuffled = bundle["test_shuffled"]
    assert shuffled["set"] == "test" and sorted(shuffled["perm"]) == [0, 1, 2, 3]
    assert "shannon_entropy" in shuffled
    assert_matches(bundle["test"], independent_results(trained["checkpoint"], "test"))
    # The val result agrees with the val evaluation of the best checkpoint in training.
    assert bundle["val"]["average_loss"] == pytest.approx(metrics["val_loss"], abs=1e-4)


def _edited_checkpoint(source: Path, target: Path, edit) -> Path:
    """A copy of a checkpoint whose saved config `edit(config)` changed."""
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    edit(checkpoint["hyper_parameters"]["config"])
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


def test_checkpoints_carry_their_validation_record(trained, tmp_path, capsys):
    checkpoint = torch.load(trained["checkpoint"], map_location="cpu")
    metrics = read_json(trained["run"] / "metrics.json")
    saved = checkpoint["val_metrics"]
    assert saved["val/loss"] == pytest.approx(metrics["val_loss"], abs=1e-5)
    assert saved["val/gloss/top1"] == pytest.approx(metrics["heads"]["gloss"]["top1"])
    # A copy away from its run folder (no metrics.json there) keeps the record.
    copy = tmp_path / "elsewhere" / "model.ckpt"
    copy.parent.mkdir()
    copy.write_bytes(Path(trained["checkpoint"]).read_bytes())
    assert run_cli("full", copy) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert bundle["best_val_loss"] == pytest.approx(metrics["val_loss"], abs=1e-5)
    for head, values in metrics["heads"].items():
        assert bundle["best_val_acc"][head] == pytest.approx(values["top1"])
    assert bundle["best_val_mean_top1"] == pytest.approx(metrics["mean_top1"])
    assert not bundle["notes"]


def test_older_checkpoints_fall_back_on_the_run_record(trained, capsys):
    saved = torch.load(trained["checkpoint"], map_location="cpu", weights_only=True)
    del saved["val_metrics"]  # as checkpoints written before they carried it
    older = Path(trained["checkpoint"]).with_name("older.ckpt")
    torch.save(saved, older)
    try:
        assert run_cli("full", older) == 0
    finally:
        older.unlink()
    bundle = json.loads(capsys.readouterr().out)
    metrics = read_json(trained["run"] / "metrics.json")
    state = next(v for k, v in saved["callbacks"].items() if "ModelCheckpoint" in k)
    assert bundle["best_val_loss"] == pytest.approx(float(state["best_model_score"]))
    assert bundle["best_val_acc"] == {h: v["top1"] for h, v in metrics["heads"].items()}
    assert bundle["best_val_mean_top1"] == metrics["mean_top1"]


def test_evaluation_needs_no_starting_weights_file(trained, tmp_path, capsys):
    def gone(config):
        config["feature_extractor"]["pretrained_path"] = str(tmp_path / "gone.pth")

    moved = _edited_checkpoint(trained["checkpoint"], tmp_path / "moved.ckpt", gone)
    assert run_cli("partial", moved, "val") == 0
    result = json.loads(capsys.readouterr().out)
    assert_matches(result, independent_results(trained["checkpoint"], "val"))


def test_a_pretraining_checkpoint_is_refused_with_a_reason(trained, tmp_path, capsys):
    def pretraining(config):
        config["train_parameters"]["pre_training"] = True

    checkpoint = _edited_checkpoint(
        trained["checkpoint"], tmp_path / "pretrain.ckpt", pretraining
    )
    assert run_cli("partial", checkpoint, "val") == 2
    err = capsys.readouterr().err
    assert "pretraining checkpoint has no trained heads" in err
    assert "Traceback" not in err


def test_full_without_a_test_split_evaluates_val(trained, sample_root, capsys):
    argv = ["full", trained["checkpoint"], "--data_path", sample_root]
    assert run_cli(*argv) == 0
    captured = capsys.readouterr()
    bundle = json.loads(captured.out)
    assert bundle["test_set"] == "val" and bundle["test"]["set"] == "val"
    assert bundle["test_shuffled"]["set"] == "val"
    assert "no test split" in captured.err and bundle["notes"]


# --- user errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", ["missing", "unreadable", "not_signpipe", "unknown_set", "empty_test"]
)
def test_user_errors_exit_2_with_one_line(trained, sample_root, tmp_path, capsys, case):
    checkpoint = trained["checkpoint"]
    argv = ["partial", checkpoint, "val"]
    needle = str(checkpoint)
    if case == "missing":
        argv[1] = tmp_path / "nothing.ckpt"
        needle = "does not exist or is not a file"
    elif case == "unreadable":
        argv[1] = tmp_path / "text.ckpt"
        argv[1].write_text("not a checkpoint", encoding="utf-8")
        needle = "not a readable PyTorch checkpoint"
    elif case == "not_signpipe":
        argv[1] = tmp_path / "weights.ckpt"
        torch.save({"state_dict": {"w": torch.zeros(2)}}, argv[1])
        needle = "not a signpipe checkpoint"
    elif case == "unknown_set":
        argv[2] = "dev"
        needle = "unknown set 'dev'"
    else:
        argv = ["partial", checkpoint, "test", "--data_path", sample_root]
        needle = "add a 'split' column"
    assert run_cli(*argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], err


# --- pieces ------------------------------------------------------------------------


def test_shuffle_batch_permutes_real_frames_and_keeps_padding():
    perm = [3, 1, 0, 2]
    frames = torch.arange(2 * 4, dtype=torch.float32).reshape(2, 4, 1, 1, 1)
    frames = frames.expand(2, 4, 3, 2, 2).clone()
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    frames[1, 2:] = 0  # padding
    landmarks = frames[:, :, 0, :, :1].reshape(2, 4, 2, 1).clone()
    batch = {
        "frames": frames.clone(),
        "landmarks": landmarks.clone(),
        "landmark_mask": mask[:, :, None].expand(2, 4, 2).clone(),
        "mask": mask.clone(),
        "labels": {"gloss": torch.tensor([0, 1])},
        "name": ["a", "b"],
    }
    out = shuffle_batch(batch, perm)
    assert torch.equal(out["mask"], mask)
    assert torch.equal(out["frames"][0], frames[0, perm])
    assert torch.equal(out["frames"][1, :2], frames[1, [1, 0]])  # perm restricted
    assert torch.equal(out["frames"][1, 2:], torch.zeros_like(frames[1, 2:]))
    assert torch.equal(out["landmarks"][0], landmarks[0, perm])
    assert torch.equal(out["landmarks"][1, :2], landmarks[1, [1, 0]])
    assert not out["landmark_mask"][1, 2:].any()


def test_permutation_entropy_and_seeded_permutations():
    assert permutation_entropy([0, 1, 2, 3]) == 0.0
    assert permutation_entropy([3, 2, 1, 0]) == pytest.approx(2.0)  # 3, 1, -1, -3
    assert permutation_entropy([2, 3, 0, 1]) == pytest.approx(1.0)  # 2, 2, -2, -2
    assert make_permutation(8, 1) == make_permutation(8, 1)
    for seed in range(20):
        perm = make_permutation(3, seed)
        assert sorted(perm) == [0, 1, 2] and perm != [0, 1, 2]
    assert make_permutation(1, 0) == [0]


def test_per_class_accuracy_weighs_classes_equally():
    logits = torch.tensor([[2.0, 1.0, 0.0]] * 4)  # always predicts class 0
    labels = torch.tensor([0, 0, 0, 1])
    assert per_class_accuracy(logits, labels)[1] == pytest.approx(0.5)
    assert per_class_accuracy(logits, labels)[5] == 1.0  # capped at 3 classes
    confusion = confusion_matrix(labels, logits.argmax(dim=1), 3)
    assert confusion.tolist() == [[3, 0, 0], [1, 0, 0], [0, 0, 0]]
    scores = precision_recall_f1(confusion)
    assert scores[0].tolist() == pytest.approx([0.75, 1.0, 6 / 7])
    assert scores[1].tolist() == [0.0, 0.0, 0.0]


def test_plots_stay_readable_with_many_classes(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 200, (500,), generator=generator)
    logits = torch.randn(500, 200, generator=generator)
    logits[torch.arange(500), labels] += 2.0
    labels[:10] = -100
    names = [f"GLOSS_{i}" for i in range(200)]
    predictions = HeadPredictions(logits, labels)
    written = save_head_plots(
        predictions, names, list(PLOTS), tmp_path / "x_val-gloss", "x, val, gloss"
    )
    assert [p.name for p in written] == [f"x_val-gloss-{p}.png" for p in PLOTS]
    for path in written:
        assert_png(path)
    keep = labels != -100
    confusion = confusion_matrix(labels[keep], logits[keep].argmax(dim=1), 200).numpy()
    classes, note = select_classes(confusion)
    assert len(classes) == MAX_CLASSES and "of" in note
    off_diagonal = (
        confusion.sum(axis=1) + confusion.sum(axis=0) - 2 * confusion.diagonal()
    )
    assert min(off_diagonal[classes]) >= sorted(off_diagonal)[-MAX_CLASSES]


def test_bootstrap_interval_narrows_with_more_samples_and_brackets_the_mean() -> None:
    hits = torch.tensor([True, False] * 10)
    low, high = bootstrap_ci95(hits)
    assert low < 0.5 < high
    many_low, many_high = bootstrap_ci95(hits.repeat(50))
    assert low < many_low < 0.5 < many_high < high
    assert bootstrap_ci95(torch.tensor([], dtype=torch.bool)) is None
    assert bootstrap_ci95(torch.ones(7, dtype=torch.bool)) == (1.0, 1.0)


def test_per_signer_top1_counts_each_signers_labelled_samples() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 1, IGNORE_INDEX])
    predictions = HeadPredictions(logits, labels)
    result = head_results(predictions, ["a", "a", "b", "b"])
    assert result.per_signer == {
        "a": {"top1": 0.5, "samples": 2},
        "b": {"top1": 0.0, "samples": 1},
    }
    assert head_results(predictions, [None] * 4).per_signer is None
    assert "per_signer" not in head_results(predictions).to_dict()
