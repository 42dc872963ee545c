"""Every weights-file format `pretrained_path` accepts loads the saved weights, as
data only (docs/guide/pretrained-weights.md): timm (`cnn_extractor`), torchvision's
ResNet-50 (`resnet50_extractor`) and HuBERT directories (`hubert_transformer`)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
import torchvision
from transformers import HubertConfig, HubertModel

from models.feature_extractors.cnn import cnn_extractor, resnet50_extractor
from models.transformers.hubert import HubertTransformer
from utils.errors import ConfigError, UserError

# timm's smallest ResNet (0.5 M parameters); the files hold its 1000-class classifier,
# as downloaded ImageNet weights do, and the extractor (num_classes=0) drops it.
TIMM_MODEL = "test_resnet"
KEY = "feature_extractor.pretrained_path"


def random_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s state dict with every floating tensor made random (so that a file
    that was not loaded cannot pass as loaded)."""
    generator = torch.Generator().manual_seed(7)
    return {
        name: (
            torch.randn(tensor.shape, generator=generator)
            if tensor.is_floating_point()
            else tensor.clone()
        )
        for name, tensor in model.state_dict().items()
    }


def assert_backbone_holds(backbone: torch.nn.Module, weights: dict) -> None:
    """Every backbone tensor equals the saved one (the classifier is not in it)."""
    loaded = backbone.state_dict()
    assert loaded, "an empty backbone"
    for name, tensor in loaded.items():
        assert torch.equal(tensor, weights[name]), name


def hub_cache_file(root: Path, repo: str, filename: str) -> Path:
    """`filename` laid out as huggingface_hub's cache keeps it: a symbolic link in
    `snapshots/<revision>/` to the file in `blobs/`."""
    folder = root / f"models--{repo.replace('/', '--')}"
    blob = folder / "blobs" / "0123abcd"
    blob.parent.mkdir(parents=True)
    snapshot = folder / "snapshots" / "4567ef"
    snapshot.mkdir(parents=True)
    (snapshot / filename).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot / filename


@pytest.fixture(scope="module", name="timm_weights")
def fixture_timm_weights() -> dict[str, torch.Tensor]:
    """Random weights of the tiny timm model, classifier included."""
    return random_weights(timm.create_model(TIMM_MODEL, pretrained=False))


def save_as(kind: str, weights: dict, folder: Path) -> Path:
    """`weights` written in one of the accepted formats; returns the path to give."""
    if kind == "pth":
        path = folder / "weights.pth"
        torch.save(weights, path)
    elif kind == "bin":
        path = folder / "pytorch_model.bin"
        torch.save(weights, path)
    elif kind == "state_dict_key":
        path = folder / "checkpoint.pth"
        torch.save({"state_dict": weights, "epoch": 3}, path)
    elif kind == "safetensors":
        path = folder / "weights.safetensors"
        safetensors.torch.save_file(weights, path)
    elif kind == "hub_cache":
        path = hub_cache_file(folder / "hub", "timm/some_model", "model.safetensors")
        safetensors.torch.save_file(weights, path.resolve())
    else:
        raise ValueError(kind)
    return path


TIMM_FORMATS = ["pth", "bin", "state_dict_key", "safetensors", "hub_cache"]


@pytest.mark.parametrize("kind", TIMM_FORMATS + ["model_key", "ddp_prefix"])
def test_cnn_extractor_loads_each_format(kind, timm_weights, tmp_path) -> None:
    if kind == "model_key":  # timm's and torchvision's training scripts
        path = tmp_path / "checkpoint.pth.tar"
        torch.save({"model": timm_weights, "optimizer": {}}, path)
    elif kind == "ddp_prefix":  # saved from a DistributedDataParallel wrapper
        path = tmp_path / "ddp.pth"
        torch.save({f"module.{k}": v for k, v in timm_weights.items()}, path)
    else:
        path = save_as(kind, timm_weights, tmp_path)
    extractor = cnn_extractor(
        model_path=TIMM_MODEL, representation_size=8, pretrained_path=str(path)
    )
    assert extractor.pretrained
    assert_backbone_holds(extractor.backbone, timm_weights)


def test_cnn_extractor_loads_weights_saved_without_classifier(
    timm_weights, tmp_path
) -> None:
    headless = {k: v for k, v in timm_weights.items() if not k.startswith("fc.")}
    path = tmp_path / "headless.safetensors"
    safetensors.torch.save_file(headless, path)
    extractor = cnn_extractor(
        model_path=TIMM_MODEL, representation_size=8, pretrained_path=str(path)
    )
    assert_backbone_holds(extractor.backbone, timm_weights)


def test_cnn_extractor_refuses_weights_of_another_model(tmp_path) -> None:
    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file(random_weights(torch.nn.Linear(3, 4)), path)
    with pytest.raises(ConfigError, match=KEY):
        cnn_extractor(
            model_path=TIMM_MODEL, representation_size=8, pretrained_path=str(path)
        )


@pytest.fixture(scope="module", name="resnet50_weights")
def fixture_resnet50_weights() -> dict[str, torch.Tensor]:
    """Random torchvision ResNet-50 weights (~100 MB, built once for the module)."""
    return random_weights(torchvision.models.resnet50(weights=None))


@pytest.mark.parametrize("kind", TIMM_FORMATS)
def test_resnet50_extractor_loads_each_format(kind, resnet50_weights, tmp_path) -> None:
    path = save_as(kind, resnet50_weights, tmp_path)
    extractor = resnet50_extractor(representation_size=8, pretrained_path=str(path))
    assert extractor.pretrained
    assert_backbone_holds(extractor.backbone, resnet50_weights)


def test_resnet50_extractor_refuses_a_broken_safetensors_file(tmp_path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ConfigError, match=f"{KEY}: cannot read .*safetensors"):
        resnet50_extractor(representation_size=8, pretrained_path=str(path))


class Planted:  # pylint: disable=too-few-public-methods
    """Unpickling this runs code; a weights file holding it must be refused."""

    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.parametrize("build", ["cnn_extractor", "resnet50_extractor"])
def test_a_pickle_with_code_is_refused(build, tmp_path, capsys) -> None:
    path = tmp_path / "planted.pth"
    with path.open("wb") as file:
        pickle.dump({"conv1.weight": Planted()}, file, protocol=2)
    with pytest.raises((ConfigError, UserError), match=KEY):
        if build == "cnn_extractor":
            cnn_extractor(
                model_path=TIMM_MODEL, representation_size=8, pretrained_path=str(path)
            )
        else:
            resnet50_extractor(representation_size=8, pretrained_path=str(path))
    assert "code ran" not in capsys.readouterr().out


def tiny_hubert() -> HubertModel:
    """A two-layer HuBERT of width 24 with random weights."""
    config = HubertConfig(  # pylint: disable=unexpected-keyword-arg
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=True,
    )
    return HubertModel(config)


@pytest.mark.parametrize("layout", ["save_pretrained", "hub_cache"])
def test_hubert_loads_a_save_pretrained_directory(layout, tmp_path) -> None:
    source = tiny_hubert()
    folder = tmp_path / "hubert"
    source.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file()
    if layout == "hub_cache":  # the snapshot folder of a hub download
        config = hub_cache_file(tmp_path / "hub", "facebook/hubert", "config.json")
        weights = config.parent / "model.safetensors"
        weights.symlink_to(config.resolve().with_name("89ab"))
        config.resolve().write_bytes((folder / "config.json").read_bytes())
        weights.resolve().write_bytes((folder / "model.safetensors").read_bytes())
        folder = config.parent
    transformer = HubertTransformer(
        input_dim=8,
        output_size=16,
        feedforward_size=16,
        num_attention_heads=2,
        num_encoder_layers=1,
        dropout_rate=0.0,
        pretrained_path=str(folder),
    )
    assert transformer.out_dim == 24
    expected = source.encoder.state_dict()
    loaded = transformer.encoder.state_dict()
    assert loaded.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(loaded[name], tensor), name


def test_cnn_extractor_loads_a_torchvision_resnet50_file(
    resnet50_weights, tmp_path
) -> None:
    # timm's resnet50 names its tensors as torchvision's does.
    path = save_as("pth", resnet50_weights, tmp_path)
    extractor = cnn_extractor(
        model_path="resnet50", representation_size=8, pretrained_path=str(path)
    )
    assert_backbone_holds(extractor.backbone, resnet50_weights)


def test_resnet50_extractor_loads_weights_saved_without_classifier(
    resnet50_weights, tmp_path
) -> None:
    headless = {k: v for k, v in resnet50_weights.items() if not k.startswith("fc.")}
    path = tmp_path / "headless.pth"
    torch.save(headless, path)
    extractor = resnet50_extractor(representation_size=8, pretrained_path=str(path))
    assert_backbone_holds(extractor.backbone, resnet50_weights)
