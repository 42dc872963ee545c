"""predict.py: embeddings and predictions of a trained checkpoint, as users run it."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import csv
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from helpers import (
    write_landmarks,
    AUTSL_FRAMES,
    AUTSL_VIDEO,
    merge,
    needs_mediapipe,
    needs_video,
    tiny_overrides,
)

import export
import predict
import train
from config.loader import parse_config
from datasets.index import Sample, list_frames
from datasets.sampling import sample_indices
from datasets.sampling import SamplingOptions
from datasets.sign_dataset import SignDataset, collate_clips
from datasets.transforms import build_clip_transform, decode_size_hint
from datasets.videos import decode_video
from evaluation.prediction import ClipOptions, clip_positions, list_inputs
from training.recognition import SignRecognitionModule
from utils.errors import DataError

KINDS = ["spatial", "temporal", "CLS", "probabilities"]
NUM_SEGMENTS = 4
# Different extractor and encoder sizes, so that a mixed-up embedding shows.
SPATIAL_SIZE, TEMPORAL_SIZE = 24, 16
TINY = tiny_overrides(
    {
        "train_parameters": {"num_segments": NUM_SEGMENTS},
        "feature_extractor": {"representation_size": SPATIAL_SIZE},
        "transformer": {"output_size": TEMPORAL_SIZE},
    }
)


@pytest.fixture(scope="module")
def checkpoint(shipped_config, sample_root, tmp_path_factory) -> Path:
    """A checkpoint of the shipped config, shrunk, after one epoch of train.py."""
    base = tmp_path_factory.mktemp("predict_run")
    config = merge(copy.deepcopy(shipped_config), copy.deepcopy(TINY))
    config["general_parameters"]["data_path"] = str(sample_root)
    config["general_parameters"]["path_to_save"] = str(base / "run")
    path = base / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    assert train.main(["--model_config_path", str(path)]) == 0
    return base / "run" / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def module(checkpoint) -> SignRecognitionModule:
    """The checkpoint loaded the Lightning way (independent of predict.py)."""
    loaded = SignRecognitionModule.load_from_checkpoint(checkpoint, map_location="cpu")
    return loaded.eval()


def _copy_frames(source: Path, target: Path, count: int | None = None) -> int:
    """Copy a sample's `<name>_<idx>.jpg` frames (the first `count`) to `target`."""
    frames = list_frames(source, source.name)
    target.mkdir(parents=True)
    for index in sorted(frames)[:count]:
        shutil.copy(frames[index], target / f"{target.name}_{index}.jpg")
    return len(frames) if count is None else count


@pytest.fixture(scope="module")
def frame_dir(sample_root, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """Two frame folders of different lengths: a sample's `<name>_<idx>.jpg` frames,
    and three images named `img_<n>.png` (taken in numeric order)."""
    base = tmp_path_factory.mktemp("frame_inputs")
    sample = next(path for path in sorted(sample_root.iterdir()) if path.is_dir())
    lengths = {"signA": _copy_frames(sample, base / "signA")}
    loose = base / "loose"
    loose.mkdir()
    frames = list_frames(sample, sample.name)
    for number, index in zip((2, 10, 1), sorted(frames)):
        shutil.copy(frames[index], loose / f"img_{number}.png")
    lengths["loose"] = 3
    assert lengths["signA"] > NUM_SEGMENTS > lengths["loose"]
    return base, lengths


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """A folder holding a copy of the real AUTSL video."""
    if not AUTSL_VIDEO.is_file():
        pytest.skip("../shared/data (the real AUTSL video) is absent")
    base = tmp_path_factory.mktemp("video_inputs")
    shutil.copy(AUTSL_VIDEO, base / AUTSL_VIDEO.name)
    return base, {AUTSL_VIDEO.stem: AUTSL_FRAMES}


def run(checkpoint: Path, inputs: Path, output: Path, kind: str, *extra: str) -> int:
    """predict.py's main."""
    args = [str(checkpoint), str(inputs), str(output), "--embedding_kind", kind]
    return predict.main([*args, *extra])


def read_csv(path: Path) -> list[dict]:
    """A CSV file's rows as dicts."""
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def check_outputs(
    output: Path, kind: str, lengths: dict[str, int], module, all_frames=False
) -> None:
    """Every input's file has the documented shape; predictions.csv is complete."""
    for name, length in lengths.items():
        used = length if all_frames else min(length, NUM_SEGMENTS)
        if kind == "probabilities":
            with np.load(output / f"{name}.npz") as data:
                arrays = {head: data[head] for head in data.files}
            assert list(arrays) == list(module.num_classes)
            for head, probabilities in arrays.items():
                assert probabilities.shape == (module.num_classes[head],)
                assert np.all(probabilities >= 0)
                assert probabilities.sum() == pytest.approx(1.0, abs=1e-5)
            continue
        array = np.load(output / f"{name}.npy")
        expected = {
            "spatial": (used, SPATIAL_SIZE),
            "temporal": (used, TEMPORAL_SIZE),
            "CLS": (TEMPORAL_SIZE,),
        }[kind]
        assert array.shape == expected and array.dtype == np.float32
        assert np.isfinite(array).all()
    rows = read_csv(output / "predictions.csv")
    assert sorted((r["input"], r["head"]) for r in rows) == sorted(
        (name, head) for name in lengths for head in module.num_classes
    )
    for row in rows:
        count = min(5, module.num_classes[row["head"]])
        names = [row[f"top{k}"] for k in range(1, 6) if row[f"top{k}"]]
        assert len(names) == count
        assert set(names) <= set(module.label_names[row["head"]])
        probabilities = [float(row[f"top{k}_probability"]) for k in range(1, count + 1)]
        assert probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-5
    frames = {row["input"]: row for row in read_csv(output / "frames.csv")}
    for name, length in lengths.items():
        assert int(frames[name]["num_frames"]) == length
        used = length if all_frames else min(length, NUM_SEGMENTS)
        assert len(frames[name]["used_frames"].split()) == used


@pytest.mark.parametrize("kind", KINDS)
def test_frame_folders_of_different_lengths(
    checkpoint, module, frame_dir, kind, tmp_path
):
    inputs, lengths = frame_dir
    assert run(checkpoint, inputs, tmp_path / "out", kind) == 0
    check_outputs(tmp_path / "out", kind, lengths, module)


@needs_video
@pytest.mark.parametrize("kind", KINDS)
def test_real_autsl_video(checkpoint, module, video_dir, kind, tmp_path):
    inputs, lengths = video_dir
    assert run(checkpoint, inputs, tmp_path / "out", kind, "--batch_size", "1") == 0
    check_outputs(tmp_path / "out", kind, lengths, module)


def test_all_frames_uses_every_frame(checkpoint, module, frame_dir, tmp_path):
    inputs, lengths = frame_dir
    assert run(checkpoint, inputs, tmp_path / "out", "temporal", "--all_frames") == 0
    check_outputs(tmp_path / "out", "temporal", lengths, module, all_frames=True)


def test_single_video_file_as_input(checkpoint, module, video_dir, tmp_path):
    inputs, lengths = video_dir
    video = inputs / AUTSL_VIDEO.name
    assert run(checkpoint, video, tmp_path / "out", "spatial", "--all_frames") == 0
    check_outputs(tmp_path / "out", "spatial", lengths, module, all_frames=True)


def test_onnx_backend_writes_torchs_predictions(
    checkpoint, module, frame_dir, tmp_path, capsys
):
    """The checkpoint exported by export.py and run with `--backend onnx` gives the
    torch run's predictions.csv (same top-1 everywhere, probabilities within 1e-5)."""
    onnx_path = tmp_path / "export" / "model.onnx"
    assert export.main([str(checkpoint), "--output", str(onnx_path)]) == 0
    inputs, lengths = frame_dir
    assert run(checkpoint, inputs, tmp_path / "torch", "probabilities") == 0
    kind = "probabilities"
    assert run(onnx_path, inputs, tmp_path / "onnx", kind, "--backend", "onnx") == 0
    check_outputs(tmp_path / "onnx", kind, lengths, module)
    expected = read_csv(tmp_path / "torch" / "predictions.csv")
    got = read_csv(tmp_path / "onnx" / "predictions.csv")
    assert len(got) == len(expected) == len(lengths) * len(module.num_classes)
    for onnx_row, torch_row in zip(got, expected):
        assert [onnx_row[key] for key in ("input", "head", "top1")] == [
            torch_row[key] for key in ("input", "head", "top1")
        ]
        assert float(onnx_row["top1_probability"]) == pytest.approx(
            float(torch_row["top1_probability"]), abs=1e-5
        )
    capsys.readouterr()
    # A file that does not suit the backend is a one-line error, nothing written.
    for model, extra in ((checkpoint, ["--backend", "onnx"]), (onnx_path, [])):
        assert run(model, inputs, tmp_path / "wrong", kind, *extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        assert "--backend onnx" in err[0]
        assert not (tmp_path / "wrong").exists()


def test_cls_matches_the_model_on_a_hand_built_batch(
    checkpoint, module, frame_dir, tmp_path
):
    """A padded batch of two lengths gives what the model gives each clip alone,
    built the way validation clips are built."""
    inputs, _ = frame_dir
    assert run(checkpoint, inputs, tmp_path / "cls", "CLS") == 0
    assert run(checkpoint, inputs, tmp_path / "p", "probabilities") == 0
    augmentations = module.config.augmentations_parameters
    folder = inputs / "signA"
    frames = list_frames(folder, folder.name)
    dataset = SignDataset(
        samples=[
            Sample("signA", 0, len(frames), {}, [frames[i] for i in sorted(frames)])
        ],
        sampling=SamplingOptions(num_segments=NUM_SEGMENTS),
        train=False,
        transform=build_clip_transform(augmentations, train=False),
        size_hint=decode_size_hint(augmentations),
    )
    with torch.inference_mode():
        outputs = module.model(collate_clips([dataset[0]]))
    saved = np.load(tmp_path / "cls" / "signA.npy")
    np.testing.assert_allclose(saved, outputs["cls"][0].numpy(), atol=1e-5)
    with np.load(tmp_path / "p" / "signA.npz") as probabilities:
        for head, logits in outputs["logits"].items():
            expected = torch.softmax(logits[0], -1).numpy()
            np.testing.assert_allclose(probabilities[head], expected, atol=1e-5)


@needs_video
def test_video_cls_matches_the_model(checkpoint, module, video_dir, tmp_path):
    inputs, _ = video_dir
    assert run(checkpoint, inputs, tmp_path / "out", "cls") == 0  # any case
    images, _ = decode_video(AUTSL_VIDEO)
    positions = sample_indices(
        len(images), NUM_SEGMENTS, train=False, rng=random.Random(0)
    )
    clip = torch.from_numpy(np.stack([images[i] for i in positions]))
    transform = build_clip_transform(
        module.config.augmentations_parameters, train=False
    )
    item = {"frames": transform(clip.permute(0, 3, 1, 2)), "labels": {}, "name": "v"}
    with torch.inference_mode():
        expected = module.model(collate_clips([item]))["cls"][0].numpy()
    saved = np.load(tmp_path / "out" / f"{AUTSL_VIDEO.stem}.npy")
    np.testing.assert_allclose(saved, expected, atol=1e-5)


def test_broken_inputs_are_listed_and_the_rest_written(
    checkpoint, frame_dir, tmp_path, capsys
):
    inputs = tmp_path / "inputs"
    shutil.copytree(frame_dir[0] / "loose", inputs / "good")
    (inputs / "broken.mp4").write_bytes(b"not a video at all")
    (inputs / "bad").mkdir()
    (inputs / "bad" / "bad_0.jpg").write_bytes(b"not an image")
    assert run(checkpoint, inputs, tmp_path / "out", "CLS") == 1
    err = capsys.readouterr().err
    assert "failed: 2 of 3 inputs" in err
    assert "broken.mp4" in err and "bad_0.jpg" in err
    assert np.load(tmp_path / "out" / "good.npy").shape == (TEMPORAL_SIZE,)
    assert not (tmp_path / "out" / "broken.npy").exists()
    assert {r["input"] for r in read_csv(tmp_path / "out" / "predictions.csv")} == {
        "good"
    }


@pytest.mark.parametrize(
    "case",
    ["missing_checkpoint", "garbage_checkpoint", "foreign_checkpoint", "no_input"]
    + ["empty_input", "unknown_kind"],
)
def test_user_errors_exit_2_with_one_line(
    checkpoint, frame_dir, tmp_path, capsys, case
):
    inputs, kind = frame_dir[0], "CLS"
    model = {
        "missing_checkpoint": tmp_path / "none.ckpt",
        "garbage_checkpoint": tmp_path / "garbage.ckpt",
        "foreign_checkpoint": tmp_path / "foreign.ckpt",
    }.get(case, checkpoint)
    (tmp_path / "garbage.ckpt").write_bytes(b"\x00garbage")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "foreign.ckpt")
    if case == "no_input":
        inputs = tmp_path / "does_not_exist"
    if case == "empty_input":
        inputs = tmp_path / "empty"
        inputs.mkdir()
    if case == "unknown_kind":
        kind = "pooled"
    assert run(model, inputs, tmp_path / "out", kind) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    assert not (tmp_path / "out").exists()


def test_a_pretraining_checkpoint_exports_embeddings_but_no_predictions(
    checkpoint, frame_dir, tmp_path, capsys
):
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    saved["hyper_parameters"]["config"]["train_parameters"]["pre_training"] = True
    pretrained = tmp_path / "pretrain.ckpt"
    torch.save(saved, pretrained)
    assert run(pretrained, frame_dir[0], tmp_path / "probs", "probabilities") == 2
    err = capsys.readouterr().err
    assert "no trained heads" in err and not (tmp_path / "probs").exists()
    assert run(pretrained, frame_dir[0], tmp_path / "cls", "CLS") == 0
    assert "predictions.csv gets no rows" in capsys.readouterr().err
    lines = (tmp_path / "cls" / "predictions.csv").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("input,head,top1"), "header only"
    written = sorted(path.stem for path in (tmp_path / "cls").glob("*.npy"))
    assert written == sorted(frame_dir[1])


def test_frame_folder_images_sort_numerically(frame_dir):
    (item,) = [item for item in list_inputs(frame_dir[0]) if item.name == "loose"]
    assert [path.name for path in item.frame_paths] == [
        "img_1.png",
        "img_2.png",
        "img_10.png",
    ]


@pytest.fixture(scope="module")
def landmark_model(
    shipped_config, tmp_path_factory
) -> tuple[Path, SignRecognitionModule]:
    """An untrained landmarks-only model, and its checkpoint in the layout train.py
    writes (hyper_parameters + state_dict): predict.py needs nothing else."""
    raw = merge(copy.deepcopy(shipped_config), copy.deepcopy(TINY))
    raw["train_parameters"].update(landmarks=True, classification_mode="gloss")
    raw["feature_extractor"] = {
        "name": "landmarks_extractor",
        "representation_size": SPATIAL_SIZE,
    }
    config = parse_config(raw)
    module = SignRecognitionModule.from_config(config, {"gloss": 6})
    path = tmp_path_factory.mktemp("landmark_model") / "model.ckpt"
    torch.save(
        {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)},
        path,
    )
    return path, module.eval()


def test_landmark_model_reads_the_folders_landmark_file(
    landmark_model, frame_dir, tmp_path
):
    checkpoint, module = landmark_model
    inputs = tmp_path / "inputs"
    shutil.copytree(frame_dir[0] / "signA", inputs / "signA")
    length = frame_dir[1]["signA"]
    write_landmarks(inputs / "signA" / "signA.npz", length)
    assert run(checkpoint, inputs, tmp_path / "out", "CLS") == 0
    # A landmarks-only model reads no images.
    sample = Sample("signA", 0, length, {}, [], inputs / "signA" / "signA.npz")
    dataset = SignDataset(
        samples=[sample],
        sampling=SamplingOptions(num_segments=NUM_SEGMENTS),
        train=False,
        landmarks=module.config.landmarks_parameters,
    )
    with torch.inference_mode():
        expected = module.model(collate_clips([dataset[0]]))["cls"][0].numpy()
    saved = np.load(tmp_path / "out" / "signA.npy")
    np.testing.assert_allclose(saved, expected, atol=1e-5)


@needs_video
@needs_mediapipe
def test_landmark_model_extracts_landmarks_with_mediapipe(
    landmark_model, frame_dir, video_dir, tmp_path
):
    inputs = tmp_path / "inputs"
    shutil.copytree(video_dir[0], inputs)
    shutil.copytree(frame_dir[0] / "loose", inputs / "loose")
    assert run(landmark_model[0], inputs, tmp_path / "out", "spatial") == 0
    assert np.load(tmp_path / "out" / f"{AUTSL_VIDEO.stem}.npy").shape == (
        NUM_SEGMENTS,
        SPATIAL_SIZE,
    )
    loose = np.load(tmp_path / "out" / "loose.npy")
    assert loose.shape == (3, SPATIAL_SIZE) and np.isfinite(loose).all()


def test_time_sampling_steps_by_the_inputs_fps(tmp_path):
    options = ClipOptions(
        transform=torch.nn.Identity(),
        size_hint=None,
        sampling=SamplingOptions(NUM_SEGMENTS, time=0.2),
        landmarks=None,
        frames=True,
    )
    expected = sample_indices(
        43, NUM_SEGMENTS, train=False, rng=random.Random(0), step=5
    )
    assert clip_positions(43, options, 25.0, tmp_path) == expected
    with pytest.raises(DataError, match="set train_parameters.default_fps"):
        clip_positions(43, options, None, tmp_path)


def test_a_rerun_with_another_checkpoint_writes_every_input_again(
    checkpoint, frame_dir, tmp_path, capsys
) -> None:
    """Resuming skips only what this model with these settings wrote: another
    checkpoint (or another embedding kind) into the same folder is never skipped."""
    inputs, lengths = frame_dir
    other = tmp_path / "other.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["state_dict"] = {
        key: value + 0.5 if value.is_floating_point() else value
        for key, value in state["state_dict"].items()
    }
    torch.save(state, other)
    output = tmp_path / "out"
    assert run(checkpoint, inputs, output, "CLS") == 0
    first = {name: np.load(output / f"{name}.npy") for name in lengths}
    capsys.readouterr()
    assert run(other, inputs, output, "CLS") == 0
    err = capsys.readouterr().err
    assert "skipped" not in err
    assert f"{len(lengths)} of {len(lengths)} inputs were written by an earlier" in err
    for name in lengths:
        assert not np.allclose(np.load(output / f"{name}.npy"), first[name])
    # The same model and settings again: everything is skipped, nothing changes.
    assert run(other, inputs, output, "CLS") == 0
    skipped = f"{len(lengths)} of {len(lengths)} inputs were written by an earlier run"
    assert f"{skipped}: skipped" in capsys.readouterr().err
    assert run(other, inputs, output, "temporal") == 0
    assert "skipped" not in capsys.readouterr().err


def test_ensemble_averages_the_members_probabilities(
    checkpoint, frame_dir, tmp_path, capsys
) -> None:
    """`--ensemble`: each input's probabilities are the mean of the members'; the
    predictions follow them; a resumed run with other members writes again."""
    inputs, lengths = frame_dir
    other = tmp_path / "other.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    state["state_dict"] = {  # other heads: other probabilities
        key: (
            value + torch.randn(value.shape, generator=generator)
            if ".heads." in key
            else value
        )
        for key, value in state["state_dict"].items()
    }
    torch.save(state, other)
    singles = {}
    for name, model in (("one", checkpoint), ("two", other)):
        assert run(model, inputs, tmp_path / name, "probabilities") == 0
        singles[name] = {
            item: dict(np.load(tmp_path / name / f"{item}.npz")) for item in lengths
        }
    first = next(iter(lengths))
    assert not np.allclose(
        singles["one"][first]["gloss"], singles["two"][first]["gloss"]
    )
    output = tmp_path / "both"
    extra = ("--ensemble", str(other))
    assert run(checkpoint, inputs, output, "probabilities", *extra) == 0
    assert "averaging the class probabilities of 2 checkpoints" in (
        capsys.readouterr().err
    )
    rows = read_csv(output / "predictions.csv")
    for item in lengths:
        averaged = dict(np.load(output / f"{item}.npz"))
        for head, probabilities in averaged.items():
            mean = (singles["one"][item][head] + singles["two"][item][head]) / 2
            np.testing.assert_allclose(probabilities, mean, rtol=1e-4, atol=1e-6)
            (row,) = [r for r in rows if r["input"] == item and r["head"] == head]
            assert float(row["top1_probability"]) == pytest.approx(mean.max(), rel=1e-4)
    assert run(checkpoint, inputs, output, "probabilities") == 0
    assert "skipped" not in capsys.readouterr().err, "one model is another run"


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--embedding_kind", "CLS"), "needs --embedding_kind probabilities"),
        (("--embedding_kind", "probabilities", "--backend", "onnx"), "drop --backend"),
    ],
    ids=["embeddings", "onnx"],
)
def test_ensemble_refuses_what_it_cannot_average(
    checkpoint, frame_dir, tmp_path, capsys, extra, message
) -> None:
    args = [str(checkpoint), str(frame_dir[0]), str(tmp_path / "out"), *extra]
    with pytest.raises(SystemExit) as exited:
        predict.main([*args, "--ensemble", str(checkpoint)])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ensemble_refuses_members_with_other_classes(
    checkpoint, frame_dir, tmp_path, capsys
) -> None:
    other = tmp_path / "other.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = state["hyper_parameters"]["config"]
    config["train_parameters"]["num_segments"] = NUM_SEGMENTS + 1
    torch.save(state, other)
    output = tmp_path / "out"
    code = run(
        checkpoint, frame_dir[0], output, "probabilities", "--ensemble", str(other)
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "reads other inputs" in err[0], err
    assert "num_segments" in err[0] and not output.exists()
