"""Every module trains in train mode (dropout on, BatchNorm statistics updated) unless
the user froze it: every registered extractor x encoder, a HuBERT encoder started
from a pretrained directory, and a part frozen by `transfer.freeze_parts`."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

import train
from config.model import VIDEO_NETWORKS
from config.registry import EXTRACTOR_FACTS
from models.registry import FEATURE_EXTRACTORS, TRANSFORMERS
from models.transformers.hubert import save_encoder_shape
import training.run

LANDMARK_ONLY_EXTRACTORS = EXTRACTOR_FACTS.reading_only("landmarks")
FEATURE_ONLY_EXTRACTORS = EXTRACTOR_FACTS.reading_only("features")


class EvalModules(L.Callback):
    """The names of the LightningModule's submodules in eval mode at every training
    batch's start (after the freeze callbacks and schedules have run)."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []
        self.names: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.names = [name for name, _ in pl_module.named_modules()]
        self.seen.append(
            [name for name, module in pl_module.named_modules() if not module.training]
        )


@pytest.fixture
def eval_modules(monkeypatch: pytest.MonkeyPatch) -> EvalModules:
    """A recorder added to the callbacks `training.run` gives its Trainer."""
    recorder = EvalModules()
    build = training.run._callbacks  # pylint: disable=protected-access

    def with_recorder(config, save_dir):
        callbacks, best, last = build(config, save_dir)
        return [*callbacks, recorder], best, last

    monkeypatch.setattr(training.run, "_callbacks", with_recorder)
    return recorder


@pytest.fixture(scope="module")
def landmark_root(tmp_path_factory: pytest.TempPathFactory, sample_root: Path) -> Path:
    """The sample dataset with a random landmark file beside every clip's frames."""
    root = tmp_path_factory.mktemp("train_mode") / "with_landmarks"
    shutil.copytree(sample_root, root)
    rng = np.random.default_rng(0)
    for folder in sorted(root.iterdir()):
        if folder.is_dir():
            frames = len(list(folder.glob("*.jpg")))
            parts = {"pose": 33, "left_hand": 21, "right_hand": 21}
            np.savez(
                folder / f"{folder.name}.npz",
                **{
                    name: rng.normal(size=(frames, points, 3)).astype(np.float32)
                    for name, points in parts.items()
                },
            )
    return root


@pytest.fixture(scope="module")
def features_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root of random precomputed features (width 8) in the SSVP-SLT layout, a
    `gloss` column naming 3 classes."""
    root = tmp_path_factory.mktemp("train_mode") / "features"
    lines = ["video_name\tlength\tlabel\tgloss"]
    for index in range(8):
        name = f"clip{index}"
        path = root / "features" / "0" / name[:5] / f"{name}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(torch.randn(4 + index, 8), path)
        lines.append(f"{name}\t{4 + index}\t\t{index % 3}")
    (root / "manifests").mkdir()
    (root / "manifests" / "all_features.tsv").write_text(
        "\n".join(lines) + "\n", encoding="utf-8"
    )
    return root


def train_one_step(write_config, config: dict, recorder: EvalModules) -> list[str]:
    """The submodules in eval mode during a one-step `fast_dev_run` of train.py."""
    config["train_parameters"]["fast_dev_run"] = True
    path = write_config(config)
    assert train.main(["--model_config_path", str(path)]) == 0
    assert len(recorder.seen) == 1
    return recorder.seen[0]


def pairing_config(
    tiny_config: dict, roots: dict[str, Path], extractor: str, encoder: str
):
    """The tiny config with `extractor` and `encoder` (landmarks only for a landmark
    extractor, the features root of `roots` for a features extractor)."""
    config = copy.deepcopy(tiny_config)
    config["feature_extractor"]["name"] = extractor
    if extractor != "cnn_extractor":  # the tiny config's timm model is its setting
        config["feature_extractor"].pop("model_path")
    config["transformer"]["name"] = encoder
    if extractor in LANDMARK_ONLY_EXTRACTORS:
        config["general_parameters"]["data_path"] = str(roots["landmarks"])
        config["train_parameters"]["landmarks"] = True
        config["feature_extractor"] = {"name": extractor, "representation_size": 16}
        if extractor != "landmarks_extractor":
            config["feature_extractor"].update(num_blocks=1, kernel_size=3)
    if extractor in FEATURE_ONLY_EXTRACTORS:
        config["general_parameters"]["data_path"] = str(roots["features"])
        config["feature_extractor"] = {
            "name": extractor,
            "representation_size": 16,
            "feature_dim": 8,
        }
        config["train_parameters"]["classification_mode"] = "gloss"
    return config


# The video networks' train mode is checked with them in tests/test_video_networks.py
# (one encoder each: 9 networks x 3 encoders of train.py runs would add minutes).
@pytest.mark.parametrize(
    "extractor", [n for n in FEATURE_EXTRACTORS.names() if n not in VIDEO_NETWORKS]
)
@pytest.mark.parametrize("encoder", TRANSFORMERS.names())
# pylint: disable-next=too-many-arguments,too-many-positional-arguments
def test_every_pairing_trains_in_train_mode(
    tiny_config,
    write_config,
    landmark_root,
    features_root,
    eval_modules,
    extractor,
    encoder,
) -> None:
    roots = {"landmarks": landmark_root, "features": features_root}
    config = pairing_config(tiny_config, roots, extractor, encoder)
    assert train_one_step(write_config, config, eval_modules) == []


def test_pretrained_hubert_trains_in_train_mode(
    tiny_config, write_config, tmp_path, eval_modules
) -> None:
    # pylint: disable=import-outside-toplevel
    from transformers import HubertConfig

    shape = HubertConfig(  # pylint: disable=unexpected-keyword-arg
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=True,
    )
    folder = save_encoder_shape(shape.to_dict(), tmp_path / "hubert")
    config = copy.deepcopy(tiny_config)
    config["transformer"].update(name="hubert_transformer", pretrained_path=str(folder))
    assert train_one_step(write_config, config, eval_modules) == []


def test_a_frozen_part_stays_in_eval_mode_and_the_rest_trains(
    tiny_config, write_config, eval_modules
) -> None:
    config = copy.deepcopy(tiny_config)
    config["transfer"] = {"freeze_parts": ["feature_extractor"]}
    in_eval = train_one_step(write_config, config, eval_modules)
    frozen = "model.feature_extractor"
    under_frozen = [
        name
        for name in eval_modules.names
        if name == frozen or name.startswith(frozen + ".")
    ]
    assert len(under_frozen) > 1
    assert sorted(in_eval) == sorted(under_frozen)
