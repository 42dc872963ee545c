"""Every extractor x encoder builds, runs, respects masks and passes gradients."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from config.loader import parse_config
from config.model import VIDEO_NETWORKS
from config.registry import EXTRACTOR_FACTS, FactsRegistry
from models.pipeline import build_pipeline
from models.registry import FEATURE_EXTRACTORS, TRANSFORMERS, Registry
from utils.errors import ConfigError
from utils.landmark_points import COMPONENT_SIZES

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = {"gloss": 5, "hand_location_x": 3}
#: Two clips of 3 frames, the second with 2 real frames.
MASK = torch.tensor([[True, True, True], [True, True, False]])
#: The extractors that read landmarks only, by their registered facts.
LANDMARK_ONLY_EXTRACTORS = EXTRACTOR_FACTS.reading_only("landmarks")
#: The extractors of precomputed feature rows.
FEATURE_ONLY_EXTRACTORS = EXTRACTOR_FACTS.reading_only("features")
#: The per-frame image extractors (video networks: tests/test_video_networks.py).
IMAGE_EXTRACTORS = [
    n
    for n in FEATURE_EXTRACTORS.names()
    if n not in LANDMARK_ONLY_EXTRACTORS + FEATURE_ONLY_EXTRACTORS
    and n not in VIDEO_NETWORKS
]
#: The width of the precomputed feature rows of the smoke tests.
FEATURE_DIM = 12


def tiny_pipeline(
    tiny_config: dict, extractor: str, transformer: str, landmarks: bool = False
):
    """The tiny config's pipeline with the given extractor and encoder."""
    raw = copy.deepcopy(tiny_config)
    raw["feature_extractor"]["name"] = extractor
    raw["transformer"]["name"] = transformer
    if extractor != "cnn_extractor":  # the tiny config's timm model is its setting
        raw["feature_extractor"].pop("model_path")
    if landmarks:
        raw["train_parameters"]["landmarks"] = True
        raw["landmarks_parameters"] = {"velocities": True}
    if "num_blocks" in EXTRACTOR_FACTS.known(extractor).setting_names():
        raw["feature_extractor"].update(num_blocks=1, kernel_size=3)
    if "feature_dim" in EXTRACTOR_FACTS.known(extractor).setting_names():
        raw["feature_extractor"]["feature_dim"] = FEATURE_DIM
    torch.manual_seed(0)
    return build_pipeline(parse_config(raw), NUM_CLASSES)


def test_registries_list_the_documented_names() -> None:
    assert FEATURE_EXTRACTORS.names() == sorted(
        [
            "cnn_extractor",
            "landmarks_conv",
            "landmarks_extractor",
            "landmarks_stgcn",
            "precomputed",
            "resnet50_extractor",
            *VIDEO_NETWORKS,
        ]
    )
    assert TRANSFORMERS.names() == [
        "fake_transformer",
        "hubert_transformer",
        "sign_language_transformer",
    ]


def test_registry_rejects_duplicates_and_lists_names() -> None:
    registry = Registry("thing", "section.name", FactsRegistry("thing", "section"))
    registry.register("a", reads=("landmarks",), min_frames=4)(object)
    assert registry.facts.known("a").reads == ("landmarks",)
    assert registry.facts.known("a").min_frames == 4
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(object)
    with pytest.raises(
        ConfigError, match="section.name: unknown thing 'b'; allowed: a"
    ):
        registry.get("b")


def check_outputs_and_gradients(pipeline, batch: dict) -> None:
    """The pipeline's outputs on a 2-clip, 3-frame `batch` whose second clip has 2
    real frames: documented shapes, finite, zero at the padded frame, and every part
    gets gradients."""
    out = pipeline(batch)
    width = pipeline.transformer.out_dim
    assert out["spatial"].shape == (2, 3, pipeline.feature_extractor.out_dim)
    assert out["temporal"].shape == (2, 3, width)
    assert out["cls"].shape == (2, width)
    assert {k: v.shape for k, v in out["logits"].items()} == {
        "gloss": (2, 5),
        "hand_location_x": (2, 3),
    }
    assert torch.isfinite(out["spatial"]).all() and torch.isfinite(out["cls"]).all()
    assert not out["spatial"][1, 2].any(), "padded frames get zero features"
    loss = sum(logits.sum() for logits in out["logits"].values())
    loss.backward()
    for part in ("feature_extractor", "transformer", "heads"):
        grads = [
            p.grad for p in getattr(pipeline, part).parameters() if p.grad is not None
        ]
        assert grads and any(g.abs().sum() > 0 for g in grads), part


@pytest.mark.parametrize("extractor", IMAGE_EXTRACTORS)
@pytest.mark.parametrize("transformer", TRANSFORMERS.names())
def test_pipeline_shapes_finite_and_gradients(tiny_config, extractor, transformer):
    pipeline = tiny_pipeline(tiny_config, extractor, transformer)
    frames = torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8)
    check_outputs_and_gradients(pipeline, {"frames": frames, "mask": MASK})


@pytest.mark.parametrize("extractor", LANDMARK_ONLY_EXTRACTORS)
@pytest.mark.parametrize("transformer", TRANSFORMERS.names())
def test_landmark_pipeline_shapes_finite_and_gradients(
    tiny_config, extractor, transformer
):
    pipeline = tiny_pipeline(tiny_config, extractor, transformer, landmarks=True)
    points = sum(COMPONENT_SIZES[c] for c in ("pose", "left_hand", "right_hand"))
    batch = {
        "landmarks": torch.randn(2, 3, points, 3),
        "landmark_mask": torch.rand(2, 3, points) > 0.2,
        "mask": MASK,
    }
    check_outputs_and_gradients(pipeline, batch)


@pytest.mark.parametrize("extractor", FEATURE_ONLY_EXTRACTORS)
@pytest.mark.parametrize("transformer", TRANSFORMERS.names())
def test_feature_pipeline_shapes_finite_and_gradients(
    tiny_config, extractor, transformer
):
    pipeline = tiny_pipeline(tiny_config, extractor, transformer)
    # Padded rows hold large values: the extractor zeroes them, not the data.
    features = torch.randn(2, 3, FEATURE_DIM)
    features[1, 2] = 1e4
    check_outputs_and_gradients(pipeline, {"features": features, "mask": MASK})


@pytest.mark.parametrize("transformer", TRANSFORMERS.names())
def test_padding_does_not_change_the_clip_embedding(tiny_config, transformer) -> None:
    pipeline = tiny_pipeline(tiny_config, "cnn_extractor", transformer).eval()
    features = torch.randn(1, 3, pipeline.feature_extractor.out_dim)
    padded = torch.cat([features, torch.randn(1, 2, features.shape[-1]) * 50], dim=1)
    with torch.no_grad():
        short, _ = pipeline.transformer(features, torch.ones(1, 3, dtype=torch.bool))
        long, _ = pipeline.transformer(
            padded, torch.tensor([[True, True, True, False, False]])
        )
    if transformer == "hubert_transformer":
        # HuBERT's convolutional positions see the zeroed padding at the clip's end.
        assert torch.allclose(short, long, atol=0.5)
    else:
        assert torch.allclose(short, long, atol=1e-5)


def test_extractor_normalises_with_timm_mean_std(tiny_config) -> None:
    pipeline = tiny_pipeline(tiny_config, "cnn_extractor", "fake_transformer")
    extractor = pipeline.feature_extractor
    expected = torch.tensor(extractor.backbone.pretrained_cfg["mean"]) * 255
    assert torch.allclose(extractor.mean.flatten(), expected)


def test_missing_pretrained_weights_file(tiny_config, tmp_path) -> None:
    raw = copy.deepcopy(tiny_config)
    raw["feature_extractor"]["pretrained_path"] = str(tmp_path / "w.pth")
    with pytest.raises(ConfigError, match="feature_extractor.pretrained_path"):
        build_pipeline(parse_config(raw), NUM_CLASSES)


def test_cnn_extractor_loads_local_weights(tiny_config, tmp_path) -> None:
    source = tiny_pipeline(tiny_config, "cnn_extractor", "fake_transformer")
    path = tmp_path / "resnet10t.pth"
    torch.save(source.feature_extractor.backbone.state_dict(), path)
    raw = copy.deepcopy(tiny_config)
    raw["feature_extractor"]["pretrained_path"] = str(path)
    torch.manual_seed(123)
    loaded = build_pipeline(parse_config(raw), NUM_CLASSES)
    for name, tensor in source.feature_extractor.backbone.state_dict().items():
        assert torch.equal(loaded.feature_extractor.backbone.state_dict()[name], tensor)


def hubert_config_on_a_saved_model(tiny_config: dict, folder: Path, **shape) -> dict:
    """The tiny config with `hubert_transformer` started from a small HuBERT saved
    in `folder` (hidden size 24, `shape` overriding the rest)."""
    from transformers import HubertConfig, HubertModel  # pylint: disable=C0415

    config = HubertConfig(  # pylint: disable=unexpected-keyword-arg
        **{
            "hidden_size": 24,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
            "num_conv_pos_embeddings": 4,
            "num_conv_pos_embedding_groups": 4,
            "do_stable_layer_norm": True,
            **shape,
        }
    )
    HubertModel(config).save_pretrained(folder)
    raw = copy.deepcopy(tiny_config)
    raw["transformer"]["name"] = "hubert_transformer"
    raw["transformer"]["pretrained_path"] = str(folder)
    return raw


def test_hubert_loads_local_pretrained_directory(tiny_config, tmp_path) -> None:
    raw = hubert_config_on_a_saved_model(tiny_config, tmp_path / "hubert")
    pipeline = build_pipeline(parse_config(raw), NUM_CLASSES)
    assert pipeline.transformer.out_dim == 24
    frames = torch.randint(0, 256, (1, 2, 3, 32, 32), dtype=torch.uint8)
    out = pipeline({"frames": frames, "mask": torch.ones(1, 2, dtype=torch.bool)})
    assert out["cls"].shape == (1, 24)


def test_hubert_checkpoint_rebuilds_without_its_pretrained_directory(
    tiny_config, tmp_path
) -> None:
    # pylint: disable=import-outside-toplevel
    import shutil

    from training.recognition import SignRecognitionModule
    from evaluation.checkpoints import load_checkpoint

    raw = hubert_config_on_a_saved_model(
        tiny_config, tmp_path / "hubert", intermediate_size=40
    )
    module = SignRecognitionModule(raw, NUM_CLASSES).eval()
    checkpoint = {"hyper_parameters": dict(module.hparams)}
    checkpoint["state_dict"] = module.state_dict()
    module.on_save_checkpoint(checkpoint)
    assert checkpoint["hubert_config"]["intermediate_size"] == 40
    torch.save(checkpoint, tmp_path / "model.ckpt")
    shutil.rmtree(tmp_path / "hubert")  # e.g. the checkpoint moved to another machine
    loaded = load_checkpoint(tmp_path / "model.ckpt", torch.device("cpu"))
    batch = {
        "frames": torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8),
        "mask": torch.tensor([[True, True, True], [True, True, False]]),
    }
    with torch.no_grad():
        expected, got = module.model(batch), loaded.model(batch)
    assert torch.allclose(expected["cls"], got["cls"], atol=1e-6)
    for head in NUM_CLASSES:
        assert torch.allclose(expected["logits"][head], got["logits"][head], atol=1e-6)


def test_local_datasets_package_does_not_break_transformers() -> None:
    """Our `datasets/` shadows Hugging Face's; HuBERT must still build from the root."""
    code = (
        "import datasets, transformers;"
        "from transformers import HubertConfig, HubertModel;"
        "HubertModel(HubertConfig(hidden_size=16, num_hidden_layers=1,"
        " num_attention_heads=2, intermediate_size=16,"
        " num_conv_pos_embedding_groups=2));"
        f"assert datasets.__file__.startswith({str(ROOT)!r}), datasets.__file__;"
        "print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
