"""torchvision's video networks as feature extractors: every one builds, runs forward
and backward at its smallest valid input and trains a step through train.py; the
config checks, local weights, freezing and predict.py's embedding export."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import torchvision
import yaml

from helpers import SHARED_DATA, merge, tiny_overrides

import predict
import train
from benchmarks.video_networks import markdown_rows, measure_video_networks
from config.loader import parse_config
from config.model import VIDEO_NETWORKS
from models.freeze_scheduler import FreezeScheduler
from models.pipeline import FEATURE_EXTRACTORS, build_pipeline
from models.registry import ClipFeatureExtractor
from utils.errors import ConfigError

REPRESENTATION = 12
#: The fixed-input networks (MViT): 16 frames of 224x224 make each of their steps
#: half a minute or more on a busy CPU (marked slow; still part of `make test`).
FIXED_INPUT = [name for name, spec in VIDEO_NETWORKS.items() if spec.exact_frames]
#: train.py at test scale: two clips per batch, 32x32 frames (the networks' sizes
#: otherwise as the shipped config has them).
TEST_SCALE = [
    "train_parameters.batch_size=2",
    "augmentations_parameters.resize_size=32",
    "augmentations_parameters.center_crop_size=32",
]


def _marked(names, mark) -> list:
    """`names` as pytest params, the fixed-input networks with `mark`."""
    return [
        pytest.param(name, marks=mark) if name in FIXED_INPUT else name
        for name in names
    ]


def smallest_input(name: str, batch: int = 2) -> dict:
    """The smallest clips `name` runs on, the last clip shorter (padded, masked)."""
    spec = VIDEO_NETWORKS[name]
    frames = spec.exact_frames or 3
    side = spec.exact_size or spec.min_size
    generator = torch.Generator().manual_seed(0)
    clips = torch.randint(
        0, 256, (batch, frames, 3, side, side), dtype=torch.uint8, generator=generator
    )
    mask = torch.ones(batch, frames, dtype=torch.bool)
    mask[-1, frames - 2 :] = False
    return {"frames": clips, "mask": mask}


def test_every_torchvision_video_network_is_registered():
    assert set(VIDEO_NETWORKS) == {
        "s3d",
        "r3d_18",
        "r2plus1d_18",
        "mc3_18",
        "swin3d_t",
        "swin3d_s",
        "swin3d_b",
        "mvit_v1_b",
        "mvit_v2_s",
    }
    assert set(VIDEO_NETWORKS) <= set(FEATURE_EXTRACTORS.names())
    assert set(VIDEO_NETWORKS) <= set(torchvision.models.list_models(module=None))


@pytest.mark.parametrize("name", _marked(VIDEO_NETWORKS, pytest.mark.slow))
def test_forward_and_backward_at_the_smallest_input(name):
    spec = VIDEO_NETWORKS[name]
    extractor = FEATURE_EXTRACTORS.get(name)(representation_size=REPRESENTATION)
    assert isinstance(extractor, ClipFeatureExtractor)
    assert all(module.training for module in extractor.modules())
    batch = smallest_input(name, batch=1 if spec.exact_frames else 2)
    num_frames = batch["mask"].shape[1]
    tokens = extractor(batch)
    expected_tokens = extractor.input_frames(num_frames) // spec.frame_stride
    assert tokens.shape == (batch["mask"].shape[0], expected_tokens, REPRESENTATION)
    assert torch.isfinite(tokens).all()
    positions = extractor.token_positions(num_frames, tokens.shape[1])
    assert positions.shape == (num_frames,)
    assert positions.min() == 0 and positions.max() < tokens.shape[1]
    tokens.square().mean().backward()
    first = next(extractor.backbone.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0
    assert extractor.projection.weight.grad.abs().sum() > 0
    assert extractor.spec.width == extractor.projection.in_features


def test_clips_are_padded_to_what_the_network_takes():
    r3d = FEATURE_EXTRACTORS.get("r3d_18")(representation_size=4)
    assert [r3d.input_frames(count) for count in (1, 8, 9)] == [8, 8, 16]
    assert r3d.token_positions(9, 2).tolist() == [0] * 8 + [1]
    swin = FEATURE_EXTRACTORS.get("swin3d_t")(representation_size=4)
    assert [swin.input_frames(count) for count in (1, 3, 4)] == [2, 4, 4]


def _config(name: str, transformer: str = "fake_transformer", **extra):
    """The tiny test config with the video network `name`."""
    raw = tiny_overrides({"transformer": {"name": transformer}, **extra})
    # In place of the tiny timm model, which is cnn_extractor's own setting.
    raw["feature_extractor"] = {"name": name, "representation_size": REPRESENTATION}
    return parse_config(raw)


def _pipeline(name: str, transformer: str = "fake_transformer"):
    return build_pipeline(_config(name, transformer), {"gloss": 3})


def test_padded_tokens_do_not_reach_the_clip_embedding():
    """A clip of 8 real frames padded to 16 in its batch: its second token holds
    padded frames only, so the encoder sees its first token alone."""
    pipeline = _pipeline("r3d_18", "sign_language_transformer").eval()
    clips = torch.randint(0, 256, (2, 16, 3, 16, 16), dtype=torch.uint8)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, 8:] = False
    with torch.no_grad():
        together = pipeline({"frames": clips, "mask": mask})
        tokens = pipeline.feature_extractor({"frames": clips, "mask": mask})
        alone, _ = pipeline.transformer(tokens[1:, :1], mask[1:, :1])
    torch.testing.assert_close(together["cls"][1], alone[0])
    torch.testing.assert_close(together["spatial"][1, :8], tokens[1, :1].expand(8, -1))
    assert not together["spatial"][1, 8:].any()  # zero at padded frames
    assert together["spatial"].shape == (2, 16, REPRESENTATION)
    # Every frame carries the token of its window: frames 0-7 token 0, 8-15 token 1.
    assert torch.equal(together["spatial"][0, 0], together["spatial"][0, 7])
    assert not torch.equal(together["spatial"][0, 7], together["spatial"][0, 8])


@pytest.mark.parametrize(
    "transformer", ["sign_language_transformer", "fake_transformer"]
)
def test_any_temporal_encoder_follows(transformer):
    pipeline = _pipeline("mc3_18", transformer)
    outputs = pipeline(smallest_input("mc3_18"))
    assert outputs["logits"]["gloss"].shape == (2, 3)
    assert outputs["temporal"].shape[:2] == (2, 3)


def _run_train(config: dict, tmp_path: Path, *overrides: str) -> int:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    sets = [item for override in overrides for item in ("--set", override)]
    return train.main(["--model_config_path", str(path), *sets])


def _network_overrides(name: str) -> list[str]:
    """The overrides `name` needs on top of the shipped config at test scale."""
    spec = VIDEO_NETWORKS[name]
    if not spec.exact_frames:
        return TEST_SCALE
    return [
        f"train_parameters.num_segments={spec.exact_frames}",
        f"augmentations_parameters.resize_size={spec.exact_size}",
        f"augmentations_parameters.center_crop_size={spec.exact_size}",
        "train_parameters.batch_size=1",
    ]


@pytest.mark.parametrize("name", _marked(VIDEO_NETWORKS, pytest.mark.slow))
def test_one_fast_dev_run_step_with_the_shipped_config(
    name, shipped_config, sample_root, tmp_path
):
    config = copy.deepcopy(shipped_config)
    assert config["trainer"].get("channels_last", True)  # on, as users run it
    code = _run_train(
        config,
        tmp_path,
        f"general_parameters.data_path={sample_root}",
        f"general_parameters.path_to_save={tmp_path / 'run'}",
        "general_parameters.workers=0",
        "train_parameters.fast_dev_run=true",
        f"feature_extractor.name={name}",
        *_network_overrides(name),
    )
    assert code == 0


@pytest.mark.parametrize(
    "update, keys",
    [
        (
            {"train_parameters": {"num_segments": 8}},
            ["train_parameters.num_segments: 16", "(is 8)", "224x224"],
        ),
        (
            {"augmentations_parameters": {"center_crop_size": 112}},
            ["augmentations_parameters.center_crop_size: 224", "(is 112)"],
        ),
        (
            {"augmentations_parameters": {"apply_center_crop": False}},
            ["augmentations_parameters.apply_center_crop: true", "no centre crop"],
        ),
        ({"train_parameters": {"landmarks": True}}, ["train_parameters.landmarks"]),
        (
            {"train_parameters": {"pre_training": True}},
            ["train_parameters.pre_training"],
        ),
    ],
)
def test_mvit_input_is_checked_with_the_config(update, keys):
    valid = {
        "feature_extractor": {"name": "mvit_v2_s"},
        "train_parameters": {"num_segments": 16},
        "augmentations_parameters": {"resize_size": 224, "center_crop_size": 224},
    }
    parse_config(copy.deepcopy(valid))  # the valid config passes
    with pytest.raises(ConfigError) as error:
        parse_config(merge(valid, update))
    message = str(error.value)
    assert "feature_extractor.name" in message or "train_parameters" in message
    for key in keys:
        assert key in message


def test_s3d_frame_size_is_checked_with_the_config():
    raw = {
        "feature_extractor": {"name": "s3d"},
        "augmentations_parameters": {"resize_size": 16, "center_crop_size": 16},
    }
    with pytest.raises(ConfigError, match=r"center_crop_size to at least 17 \(is 16\)"):
        parse_config(raw)
    raw["augmentations_parameters"]["apply_center_crop"] = False
    with pytest.raises(ConfigError, match=r"resize_size to at least 17"):
        parse_config(raw)
    raw["augmentations_parameters"]["resize_size"] = 17
    assert parse_config(raw).feature_extractor.name == "s3d"


def test_a_frame_size_the_config_cannot_know_is_checked_at_run_time():
    extractor = FEATURE_EXTRACTORS.get("s3d")(representation_size=4)
    batch = {
        "frames": torch.zeros(1, 2, 3, 16, 20, dtype=torch.uint8),
        "mask": torch.ones(1, 2, dtype=torch.bool),
    }
    with pytest.raises(ConfigError, match="at least 17x17, got 16x20"):
        extractor(batch)


def _saved_weights(tmp_path: Path, name: str) -> tuple[Path, dict]:
    torch.manual_seed(3)
    state = torchvision.models.get_model(name, weights=None).state_dict()
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("layout", ["state_dict", "under_state_dict", "safetensors"])
def test_weights_come_from_a_local_torchvision_file(tmp_path, layout):
    path, state = _saved_weights(tmp_path, "mc3_18")
    if layout == "under_state_dict":
        torch.save({"state_dict": state}, path)
    elif layout == "safetensors":
        path = path.with_suffix(".safetensors")
        safetensors.torch.save_file(state, path)
    extractor = FEATURE_EXTRACTORS.get("mc3_18")(
        representation_size=4, pretrained_path=str(path)
    )
    assert extractor.pretrained
    loaded = extractor.backbone.state_dict()
    assert not any(key.startswith("fc.") for key in loaded)  # classifier dropped
    for key, value in loaded.items():
        assert torch.equal(value, state[key]), key
    fresh = FEATURE_EXTRACTORS.get("mc3_18")(representation_size=4)
    assert not torch.equal(
        fresh.backbone.stem[0].weight, extractor.backbone.stem[0].weight
    )


def test_normalisation_is_that_of_the_torchvision_weights():
    for name in ("r3d_18", "swin3d_t"):
        preset = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        extractor = FEATURE_EXTRACTORS.get(name)(representation_size=4)
        expected = torch.tensor(preset.mean) * 255.0
        torch.testing.assert_close(extractor.mean.flatten(), expected)
    assert (
        preset.mean
        != torchvision.models.get_model_weights("r3d_18").DEFAULT.transforms().mean
    )  # Kinetics statistics differ per network


@pytest.mark.parametrize("damage", ["missing", "reshaped", "not_a_state_dict"])
def test_a_file_without_the_networks_tensors_is_refused(tmp_path, damage):
    path, state = _saved_weights(tmp_path, "mc3_18")
    if damage == "missing":
        del state["layer2.0.conv1.0.weight"]
    elif damage == "reshaped":
        state["stem.0.weight"] = torch.zeros(3)
    else:
        state = [1, 2, 3]
    torch.save(state, path)
    with pytest.raises(ConfigError) as error:
        FEATURE_EXTRACTORS.get("mc3_18")(
            representation_size=4, pretrained_path=str(path)
        )
    message = str(error.value)
    assert "feature_extractor.pretrained_path" in message
    assert str(path) in message and "mc3_18" in message


def test_another_networks_weights_are_refused(tmp_path):
    path, _ = _saved_weights(tmp_path, "r3d_18")
    with pytest.raises(ConfigError, match="does not hold mc3_18 weights"):
        FEATURE_EXTRACTORS.get("mc3_18")(
            representation_size=4, pretrained_path=str(path)
        )


def test_a_missing_weights_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is not an existing file"):
        FEATURE_EXTRACTORS.get("r3d_18")(
            representation_size=4, pretrained_path=str(tmp_path / "absent.pth")
        )


def test_the_backbone_freezes_by_name_and_by_schedule():
    config = _config(
        "mc3_18",
        freeze_scheduler={
            "model_params": {"feature_extractor.backbone": [True, False]},
            "freeze_pattern_repeats": [1, 1],
        },
    )
    pipeline = build_pipeline(config, {"gloss": 3})
    scheduler = FreezeScheduler(pipeline, config.freeze_scheduler, printer=lambda _: 0)
    pipeline.train()
    scheduler.apply(0)
    backbone = pipeline.feature_extractor.backbone
    assert not any(p.requires_grad for p in backbone.parameters())
    assert not backbone.training  # BatchNorm statistics stay put
    pipeline(smallest_input("mc3_18"))["logits"]["gloss"].sum().backward()
    assert all(p.grad is None for p in backbone.parameters())
    assert pipeline.feature_extractor.projection.weight.grad is not None
    scheduler.apply(2)
    assert all(p.requires_grad for p in backbone.parameters())
    assert backbone.training


def test_channels_last_3d_for_the_convolutional_networks():
    extractor = FEATURE_EXTRACTORS.get("r3d_18")(representation_size=4)
    extractor.prepare_for_training(channels_last=True, compile_model=False)
    weight = extractor.backbone.stem[0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.isfinite(extractor(smallest_input("r3d_18"))).all()
    swin = FEATURE_EXTRACTORS.get("swin3d_t")(representation_size=4)
    swin.prepare_for_training(channels_last=True, compile_model=False)
    assert swin.backbone.patch_embed.proj.weight.is_contiguous()


def test_bf16_autocast_runs():
    extractor = FEATURE_EXTRACTORS.get("mc3_18")(representation_size=4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens = extractor(smallest_input("mc3_18"))
    assert tokens.dtype == torch.bfloat16 and torch.isfinite(tokens.float()).all()


@pytest.fixture(scope="module")
def video_checkpoint(shipped_config, sample_root, tmp_path_factory) -> Path:
    """A checkpoint of a video network after one epoch of train.py (tiny sizes)."""
    base = tmp_path_factory.mktemp("video_run")
    config = merge(
        copy.deepcopy(shipped_config),
        tiny_overrides(
            {
                "feature_extractor": {"name": "mc3_18", "representation_size": 24},
                "transformer": {"output_size": 16},
            }
        ),
    )
    del config["feature_extractor"]["model_path"]  # cnn_extractor's own setting
    config["general_parameters"]["data_path"] = str(sample_root)
    config["general_parameters"]["path_to_save"] = str(base / "run")
    assert _run_train(config, base) == 0
    return base / "run" / "checkpoints" / "best.ckpt"


def test_transfer_loads_the_network_and_freezes_its_backbone(
    video_checkpoint, sample_root, shipped_config, tmp_path, capsys
):
    """A new run starts from a video-network run's weights with the network frozen:
    every backbone tensor is loaded, and training does not move them."""
    config = merge(
        copy.deepcopy(shipped_config),
        tiny_overrides(
            {
                "feature_extractor": {"name": "mc3_18", "representation_size": 24},
                "transformer": {"output_size": 16},
                "train_parameters": {"epochs": 1},
            }
        ),
    )
    del config["feature_extractor"]["model_path"]  # cnn_extractor's own setting
    config["general_parameters"]["data_path"] = str(sample_root)
    config["general_parameters"]["path_to_save"] = str(tmp_path / "transfer")
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    arguments = ["--model_config_path", str(path), "--checkpoint"]
    arguments += [str(video_checkpoint), "--freeze_parts", "feature_extractor.backbone"]
    assert train.main(arguments) == 0
    assert "loaded" in capsys.readouterr().out

    def backbone(path: Path) -> dict:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        prefix = "model.feature_extractor.backbone."
        return {k: v for k, v in state.items() if k.startswith(prefix)}

    before = backbone(video_checkpoint)
    after = backbone(tmp_path / "transfer" / "checkpoints" / "last.ckpt")
    assert before and before.keys() == after.keys()
    assert all(torch.equal(before[key], after[key]) for key in before)


@pytest.mark.parametrize("kind", ["spatial", "temporal", "CLS"])
def test_predict_exports_the_embeddings(video_checkpoint, sample_root, tmp_path, kind):
    sample = next(path for path in sorted(sample_root.iterdir()) if path.is_dir())
    output = tmp_path / "out"
    code = predict.main(
        [str(video_checkpoint), str(sample), str(output), "--embedding_kind", kind]
    )
    assert code == 0
    array = np.load(output / f"{sample.name}.npy")
    num_segments = tiny_overrides()["train_parameters"]["num_segments"]
    # One row per sampled frame, carrying the token of the window that holds it.
    expected = {"spatial": (num_segments, 24), "temporal": (num_segments, 16)}
    assert array.shape == expected.get(kind, (16,))
    assert np.isfinite(array).all()
    assert (output / "predictions.csv").is_file()


def test_the_benchmark_times_a_training_step():
    results = measure_video_networks(
        ["mc3_18"], batch_size=1, frames=2, size=16, steps=1, warmup=0
    )
    row = results["networks"]["mc3_18"]
    assert row["step_seconds"] > 0 and row["tokens"] == 2 and row["width"] == 512
    rows = markdown_rows(results)
    assert len(rows) == 3 and rows[2].startswith("| `mc3_18` | 1 x 2 x 16 x 16 | 2 |")


WLASL_VIDEOS = SHARED_DATA / "video" / "wlasl_sample"


@pytest.mark.skipif(
    not WLASL_VIDEOS.is_dir(), reason="../shared/data/video/wlasl_sample is absent"
)
def test_predict_runs_on_the_real_wlasl_videos(video_checkpoint, tmp_path):
    videos = sorted(WLASL_VIDEOS.glob("*.mp4"))
    assert videos
    output = tmp_path / "out"
    code = predict.main(
        [
            str(video_checkpoint),
            str(WLASL_VIDEOS),
            str(output),
            "--embedding_kind",
            "CLS",
        ]
    )
    assert code == 0
    for video in videos:
        embedding = np.load(output / f"{video.stem}.npy")
        assert embedding.shape == (16,) and np.isfinite(embedding).all()
