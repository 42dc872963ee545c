"""The landmark encoders `landmarks_conv` and `landmarks_stgcn`: point inputs with
velocities, the skeleton graph, masks and padding, and the config that builds them."""

from __future__ import annotations

import copy

import pytest
import torch

from config.loader import parse_config
from models.feature_extractors.landmark_encoders import (
    ConvLandmarksEncoder,
    GraphLandmarksEncoder,
    hand_starts,
    point_channels,
    point_inputs,
    skeleton_adjacency,
)
from models.pipeline import build_pipeline
from models.registry import FEATURE_EXTRACTORS
from utils.errors import ConfigError
from utils.landmark_points import (
    COMPONENT_SIZES,
    HAND_EDGES,
    HAND_PARENTS,
    MIDDLE_FINGER_MCP,
    POSE_WRIST_OF_HAND,
)

COMPONENTS = ["pose", "left_hand", "right_hand"]
K = sum(COMPONENT_SIZES[c] for c in COMPONENTS)


def batch(lengths: list[int], points: int = K, seed: int = 0) -> dict:
    """A padded landmark batch: clip i has `lengths[i]` real frames."""
    generator = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    mask = torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None]
    return {
        "landmarks": torch.randn(len(lengths), longest, points, 3, generator=generator),
        "landmark_mask": torch.rand(len(lengths), longest, points, generator=generator)
        > 0.2,
        "mask": mask,
    }


def test_point_inputs_positions_presence_and_velocities() -> None:
    data = batch([4, 3], points=2)
    data["landmark_mask"][0, 1, 0] = False
    data["landmark_mask"][0, 2, 0] = True
    data["landmark_mask"][0, 3, 0] = True
    plain = point_inputs(data, velocities=False)
    moving = point_inputs(data, velocities=True)
    assert plain.shape == (2, 4, 2, point_channels(False)) == (2, 4, 2, 4)
    assert moving.shape == (2, 4, 2, point_channels(True)) == (2, 4, 2, 7)
    torch.testing.assert_close(moving[..., :4], plain)
    present = data["landmark_mask"] & data["mask"][..., None]
    torch.testing.assert_close(plain[..., 3], present.float())
    assert (plain[~present] == 0).all(), "absent and padded points are 0"
    assert (moving[:, 0, :, 4:] == 0).all(), "no motion into the first frame"
    assert (moving[0, 1, 0, 4:] == 0).all() and (moving[0, 2, 0, 4:] == 0).all()
    torch.testing.assert_close(
        moving[0, 3, 0, 4:], data["landmarks"][0, 3, 0] - data["landmarks"][0, 2, 0]
    )
    assert (moving[1, 3] == 0).all(), "a padded frame has no inputs"


def test_point_inputs_hand_shapes_are_wrist_relative_in_palms() -> None:
    data = batch([3, 2])
    left = 23  # the left hand's wrist among COMPONENTS' points
    data["landmarks"][:, :, left + MIDDLE_FINGER_MCP] = data["landmarks"][
        :, :, left
    ] + torch.tensor([0.5, 0.0, 0.0])
    data["landmark_mask"][:] = True
    inputs = point_inputs(data, velocities=False, hands=hand_starts(COMPONENTS))
    assert inputs.shape[-1] == point_channels(False, True) == 7
    shapes = inputs[..., 4:]
    torch.testing.assert_close(
        shapes[0, :, left + MIDDLE_FINGER_MCP], torch.tensor([[1.0, 0.0, 0.0]] * 3)
    )
    assert (shapes[:, :, :23] == 0).all(), "no hand shape for pose points"
    assert (shapes[:, :, left] == 0).all(), "the wrist is the origin"
    assert (shapes[1, 2] == 0).all(), "nothing at a padded frame"
    moved = dict(data, landmarks=data["landmarks"] + torch.tensor([2.0, -1.0, 0.5]))
    shifted = point_inputs(moved, velocities=False, hands=hand_starts(COMPONENTS))
    torch.testing.assert_close(shifted[..., 4:], shapes, atol=1e-5, rtol=1e-5)


def test_hand_parents_form_a_tree_of_the_hands_bones() -> None:
    edges = {frozenset(edge) for edge in HAND_EDGES}
    assert HAND_PARENTS[0] == 0, "the wrist is the root"
    finger_bases = [1, 5, 9, 13, 17]
    assert [HAND_PARENTS[base] for base in finger_bases] == [0] * 5
    for point, parent in enumerate(HAND_PARENTS[1:], start=1):
        if point not in finger_bases:  # along a finger: MediaPipe's bone
            assert parent == point - 1 and frozenset((parent, point)) in edges


def test_point_inputs_bones_are_unit_directions_and_bends() -> None:
    data = batch([3, 2])
    data["landmark_mask"][:] = True
    left = 23  # the left hand's wrist among COMPONENTS' points
    thumb = data["landmarks"][0, 0, left : left + 5]
    thumb[1] = thumb[0] + torch.tensor([0.0, 2.0, 0.0])
    thumb[2] = thumb[1] + torch.tensor([0.0, 0.5, 0.0])  # straight on
    thumb[3] = thumb[2] + torch.tensor([0.3, 0.0, 0.0])  # a right angle
    inputs = point_inputs(data, velocities=False, bones=hand_starts(COMPONENTS))
    assert inputs.shape[-1] == point_channels(False, bones=True) == 8
    bones = inputs[..., 4:]
    torch.testing.assert_close(bones[0, 0, left + 1, :3], torch.tensor([0.0, 1, 0]))
    torch.testing.assert_close(bones[0, 0, left + 2], torch.tensor([0.0, 1, 0, 1]))
    torch.testing.assert_close(bones[0, 0, left + 3], torch.tensor([1.0, 0, 0, 0]))
    assert (bones[:, :, :23] == 0).all(), "no bones for pose points"
    assert (bones[:, :, left] == 0).all(), "the wrist has no bone"
    assert (bones[1, 2] == 0).all(), "nothing at a padded frame"
    norms = bones[0, :, left + 1 : left + 21, :3].norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    # Free of the hand's position and size: moved and scaled, the same bones.
    moved = dict(data, landmarks=data["landmarks"] * 3.0 + torch.tensor([2.0, -1, 0]))
    same = point_inputs(moved, velocities=False, bones=hand_starts(COMPONENTS))
    torch.testing.assert_close(same[..., 4:], bones, atol=1e-5, rtol=1e-5)
    data["landmark_mask"][0, 1, left : left + 21] = False
    hidden = point_inputs(data, velocities=False, bones=hand_starts(COMPONENTS))
    assert (hidden[0, 1, left : left + 21] == 0).all(), "an absent hand is 0"


def test_skeleton_adjacency() -> None:
    adjacency = skeleton_adjacency(COMPONENTS)
    assert adjacency.shape == (K, K)
    torch.testing.assert_close(adjacency, adjacency.T)
    assert (adjacency.diagonal() > 0).all(), "self loops"
    left = 23
    for a, b in HAND_EDGES:
        assert adjacency[left + a, left + b] > 0
    wrist = POSE_WRIST_OF_HAND["left_hand"]
    assert adjacency[left, wrist] > 0, "the hand hangs from the pose wrist"
    assert adjacency[left + 8, left + 12] == 0, "fingertips are not joined"
    binary = (adjacency > 0).float()
    degree = binary.sum(1).rsqrt()
    torch.testing.assert_close(adjacency, degree[:, None] * binary * degree[None, :])
    hands = skeleton_adjacency(["left_hand", "right_hand"])
    assert hands.shape == (42, 42) and (hands[:21, 21:] == 0).all()
    face = skeleton_adjacency(["face"])
    torch.testing.assert_close(face, torch.eye(468))


def encoders(
    velocities: bool = True, hand_shape_inputs: bool = False, bone_inputs: bool = False
) -> list[torch.nn.Module]:
    """Both encoders, tiny, with a temporal kernel that sees the neighbours."""
    torch.manual_seed(0)
    common = {
        "representation_size": 16,
        "num_blocks": 2,
        "kernel_size": 3,
        "dropout_rate": 0.0,
        "velocities": velocities,
        "hand_shape_inputs": hand_shape_inputs,
        "bone_inputs": bone_inputs,
    }
    return [
        FEATURE_EXTRACTORS.get("landmarks_conv")(components=COMPONENTS, **common),
        FEATURE_EXTRACTORS.get("landmarks_stgcn")(components=COMPONENTS, **common),
    ]


def test_registered_builders_make_the_encoders() -> None:
    conv, graph = encoders()
    assert isinstance(conv, ConvLandmarksEncoder) and conv.out_dim == 16
    assert isinstance(graph, GraphLandmarksEncoder) and graph.out_dim == 16
    assert conv.embed[0].in_features == K * 7
    assert encoders(velocities=False)[0].embed[0].in_features == K * 4
    assert encoders(hand_shape_inputs=True)[0].embed[0].in_features == K * 10
    graph = encoders(velocities=False, hand_shape_inputs=True)[1]
    assert graph.blocks[0].spatial.in_channels == 7
    assert encoders(bone_inputs=True)[0].embed[0].in_features == K * 11
    assert encoders(velocities=False, bone_inputs=True)[1].channels == 8


@pytest.mark.parametrize("index", [0, 1], ids=["conv", "stgcn"])
def test_padding_does_not_change_a_clips_features(index: int) -> None:
    encoder = encoders(hand_shape_inputs=True, bone_inputs=True)[index]
    encoder.train()
    for seed in range(3):  # BatchNorm statistics away from their start
        encoder(batch([6, 6, 6, 6], seed=seed))
    encoder.eval()
    short = batch([4], seed=5)
    padded = {
        "landmarks": torch.cat([short["landmarks"], torch.randn(1, 3, K, 3) * 9], 1),
        "landmark_mask": torch.cat(
            [short["landmark_mask"], torch.ones(1, 3, K, dtype=torch.bool)], 1
        ),
        "mask": torch.tensor([[True] * 4 + [False] * 3]),
    }
    with torch.no_grad():
        alone, in_batch = encoder(short), encoder(padded)
    assert in_batch.shape == (1, 7, 16)
    torch.testing.assert_close(in_batch[:, :4], alone, atol=1e-5, rtol=1e-5)
    assert (in_batch[:, 4:] == 0).all()


@pytest.mark.parametrize("index", [0, 1], ids=["conv", "stgcn"])
def test_frames_see_their_neighbours_only(index: int) -> None:
    encoder = encoders()[index].eval()  # 2 blocks of kernel 3: 2 frames each side
    data = batch([9])
    with torch.no_grad():
        before = encoder(data)
        data["landmarks"][0, 4] += 1.0
        after = encoder(data)
    changed = ((before - after).abs().amax(-1)[0] > 1e-6).tolist()
    # Velocities: frame 4 moves the inputs of frames 4 and 5.
    assert changed == [False, False, True, True, True, True, True, True, False]


def tiny_landmark_config(tiny_config: dict, name: str, **extractor) -> dict:
    """The tiny config, landmarks only, with extractor `name`."""
    raw = copy.deepcopy(tiny_config)
    raw["train_parameters"]["landmarks"] = True
    raw["feature_extractor"] = {"name": name, "representation_size": 16, **extractor}
    raw["landmarks_parameters"] = {"velocities": True}
    return raw


@pytest.mark.parametrize("name", ["landmarks_conv", "landmarks_stgcn"])
def test_config_builds_the_extractor_from_its_fields(tiny_config, name: str) -> None:
    raw = tiny_landmark_config(tiny_config, name, num_blocks=3, kernel_size=5)
    raw["landmarks_parameters"]["bone_inputs"] = True
    config = parse_config(raw)
    assert not config.uses_frames()
    pipeline = build_pipeline(config, {"gloss": 3})
    extractor = pipeline.feature_extractor
    assert len(extractor.blocks) == 3 and extractor.velocities
    assert extractor.bones == hand_starts(config.landmarks_parameters.components)
    kernels = [m.kernel_size for m in extractor.modules() if hasattr(m, "kernel_size")]
    assert kernels and all(5 in k for k in kernels if k != (1, 1))
    out = pipeline(batch([3, 2]))
    assert out["logits"]["gloss"].shape == (2, 3)


def test_config_rejects_an_even_kernel(tiny_config) -> None:
    raw = tiny_landmark_config(tiny_config, "landmarks_conv", kernel_size=4)
    with pytest.raises(ConfigError, match="kernel_size"):
        parse_config(raw)
