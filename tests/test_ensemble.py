"""test.py --ensemble and --mirror: averaged class probabilities over checkpoints and
the mirrored clip, and the members that may not be averaged."""

# pylint: disable=redefined-outer-name

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    load_test_cli,
    model_config,
    one_error,
    write_checkpoint,
    write_landmarks,
)

from datasets.landmarks import flip_horizontally, mirror_permutation
from evaluation.ensemble import AveragedModel, mirror_batch

TEST_CLI = load_test_cli()


@pytest.fixture(scope="module")
def landmark_root(sample_root, tmp_path_factory) -> Path:
    """The tiny sample dataset with a landmark file in every clip folder."""
    root = tmp_path_factory.mktemp("ensemble") / "data"
    shutil.copytree(sample_root, root)
    for index, folder in enumerate(sorted(p for p in root.iterdir() if p.is_dir())):
        frames = len(list(folder.glob("*.jpg")))
        write_landmarks(folder / f"{folder.name}.npz", frames, seed=index)
    return root


@pytest.fixture(scope="module")
def raw(shipped_config, landmark_root) -> dict:
    """A tiny landmark model's config on `landmark_root`."""
    config = model_config(shipped_config, landmark_root, "landmarks_extractor")
    config["landmarks_parameters"] = {"components": ["pose", "left_hand", "right_hand"]}
    return config


@pytest.fixture(scope="module")
def members(raw, tmp_path_factory) -> list[Path]:
    """Two untrained models of the same config (different random weights)."""
    folder = tmp_path_factory.mktemp("members")
    torch.manual_seed(0)
    first = write_checkpoint(raw, folder / "first.ckpt")
    torch.manual_seed(1)
    return [first, write_checkpoint(raw, folder / "second.ckpt")]


def test_the_mirrored_batch_is_what_trainings_flip_gives():
    """The test-time mirror of a batch is the dataset's training flip of each clip."""
    components = ["pose", "left_hand", "right_hand"]
    order = mirror_permutation(components)
    rng = np.random.default_rng(0)
    clips = rng.normal(size=(2, 5, len(order), 3)).astype(np.float32)
    present = rng.random((2, 5, len(order))) > 0.3
    clips = np.where(present[..., None], clips, 0.0).astype(np.float32)
    batch = {
        "landmarks": torch.from_numpy(clips),
        "landmark_mask": torch.from_numpy(present),
        "frames": torch.arange(2 * 5 * 3 * 2 * 4).reshape(2, 5, 3, 2, 4),
    }
    mirrored = mirror_batch(batch, torch.as_tensor(order))
    for index in range(2):
        flipped, kept = flip_horizontally(clips[index], present[index], order)
        assert np.array_equal(mirrored["landmarks"][index].numpy(), flipped)
        assert np.array_equal(mirrored["landmark_mask"][index].numpy(), kept)
    assert torch.equal(mirrored["frames"][..., 0], batch["frames"][..., -1])
    assert torch.equal(batch["landmarks"], torch.from_numpy(clips))  # not in place


def test_the_average_is_the_log_of_the_mean_probability(raw):
    """Two members' outputs become log((p1 + p2) / 2), per head."""
    from config.loader import parse_config  # pylint: disable=import-outside-toplevel

    first = torch.tensor([[2.0, 0.0, -1.0]])
    second = torch.tensor([[0.0, 3.0, 0.5]])
    config = parse_config(copy.deepcopy(raw))
    averaged = AveragedModel(
        [lambda batch: {"logits": {"gloss": first}}]
        + [lambda batch: {"logits": {"gloss": second}}],
        [config, config],
    )
    out = averaged({"mask": torch.ones(1, 2, dtype=torch.bool)})["logits"]["gloss"]
    expected = ((first.softmax(-1) + second.softmax(-1)) / 2).log()
    assert torch.allclose(out, expected, atol=1e-6)


def _results(capsys, status: int) -> dict:
    out, err = capsys.readouterr()
    assert status == 0, err
    return json.loads(out)


def test_an_ensemble_of_a_checkpoint_with_itself_changes_nothing(
    members, landmark_root, capsys
):
    """Averaging a model with itself gives its own figures; the JSON says what was
    averaged; a second member and the mirror change the loss."""
    data = ["--data_path", str(landmark_root)]
    alone = _results(capsys, TEST_CLI.main(["partial", str(members[0]), "val", *data]))
    itself = _results(
        capsys,
        TEST_CLI.main(
            ["partial", str(members[0]), "val", *data, "--ensemble", str(members[0])]
        ),
    )
    assert "averaged" not in alone
    assert itself["averaged"] == {
        "checkpoints": [str(members[0]), str(members[0])],
        "mirror": False,
    }
    assert itself["gloss"]["loss"] == pytest.approx(alone["gloss"]["loss"], abs=1e-5)
    for key in ("top_k_per_instance_acc", "top_k_average_per_class_acc"):
        assert itself["gloss"][key] == alone["gloss"][key]
    both = _results(
        capsys,
        TEST_CLI.main(
            ["partial", str(members[0]), "val", *data]
            + ["--ensemble", str(members[1]), "--mirror"]
        ),
    )
    assert both["averaged"]["mirror"] is True
    assert both["samples"] == alone["samples"]
    assert both["average_loss"] != pytest.approx(alone["average_loss"], abs=1e-6)


@pytest.mark.parametrize(
    ("change", "glosses", "needle"),
    [
        ({}, ["what", "when", "where"], "other classes"),
        ({"train_parameters": {"num_segments": 6}}, None, "num_segments"),
        ({"general_parameters": {"seed": 7}}, None, "splits the data otherwise"),
    ],
    ids=["other_classes", "other_inputs", "other_split"],
)
# pylint: disable-next=too-many-positional-arguments
def test_members_that_do_not_fit_are_refused_in_one_line(
    raw, members, landmark_root, tmp_path, capsys, change, glosses, needle
):
    """Other classes, other sampled frames, or a seeded split that puts other clips
    in val (the member may have trained on them) are one error line, exit 2."""
    other = copy.deepcopy(raw)
    for section, values in change.items():
        other[section].update(values)
    member = write_checkpoint(other, tmp_path / "other.ckpt", glosses)
    status = TEST_CLI.main(
        ["partial", str(members[0]), "val", "--data_path", str(landmark_root)]
        + ["--ensemble", str(member)]
    )
    one_error(capsys, status, str(member), needle)
