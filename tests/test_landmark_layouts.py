"""Landmarks by name: `.pose` files of any layout, hands of unknown side, and the
normalisation reference (shoulders, else hands)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody
from pose_format.pose_header import (
    PoseHeader,
    PoseHeaderComponent,
    PoseHeaderDimensions,
)
from pose_format.utils.generic import reduce_holistic

import train
from datasets.landmark_layout import (
    canonical_hands,
    is_unsided_hand,
    palm_lengths,
    select_points,
)
from datasets.landmarks import PALMS_PER_SHOULDER_WIDTH, normalise, read_landmarks
from utils.landmark_points import (
    COMPONENT_SIZES,
    HAND_POINT_NAMES,
    LEFT_SHOULDER,
    MIDDLE_FINGER_MCP,
    POSE_POINT_NAMES,
    RIGHT_SHOULDER,
    WRIST,
)

#: MediaPipe Pose's 33 points: the 23 upper-body ones, then hips and legs.
FULL_POSE_NAMES = POSE_POINT_NAMES + tuple(
    f"{side}_{part}"
    for part in ("HIP", "KNEE", "ANKLE", "HEEL", "FOOT_INDEX")
    for side in ("LEFT", "RIGHT")
)
FULL_FACE_NAMES = tuple(str(i) for i in range(478))
ALL = ["pose", "face", "left_hand", "right_hand"]
DEFAULT = ["pose", "left_hand", "right_hand"]
LEFT = slice(23, 44)  # the left hand among DEFAULT's points
RIGHT = slice(44, 65)


def holistic_components() -> list[tuple[str, tuple[str, ...]]]:
    """The full MediaPipe Holistic layout of pose-format (586 points)."""
    return [
        ("POSE_LANDMARKS", FULL_POSE_NAMES),
        ("FACE_LANDMARKS", FULL_FACE_NAMES),
        ("LEFT_HAND_LANDMARKS", HAND_POINT_NAMES),
        ("RIGHT_HAND_LANDMARKS", HAND_POINT_NAMES),
        ("POSE_WORLD_LANDMARKS", FULL_POSE_NAMES),
    ]


def make_pose(
    components: list[tuple[str, tuple[str, ...]]], data: np.ndarray, fps: float = 25.0
) -> Pose:
    """A pose-format `Pose` of `(T, P, 3)` points (NaN = undetected, stored masked)."""
    header = PoseHeader(
        0.2,
        PoseHeaderDimensions(width=1, height=1, depth=1),
        [
            PoseHeaderComponent(name, list(points), [], [], "XYZC")
            for name, points in components
        ],
    )
    confidence = np.isfinite(data).all(-1).astype(np.float32)
    body = NumPyPoseBody(
        fps, np.nan_to_num(data).astype(np.float32)[:, None], confidence[:, None]
    )
    return Pose(header, body)


def write_pose(path: Path, pose: Pose) -> Path:
    """Write `pose` to `path` as pose-format's tools do."""
    with path.open("wb") as file:
        pose.write(file)
    return path


def random_points(frames: int, count: int, seed: int = 0) -> np.ndarray:
    """`(frames, count, 3)` points in the unit image square."""
    return np.random.default_rng(seed).random((frames, count, 3)).astype(np.float32)


def full_holistic(frames: int, seed: int = 0) -> Pose:
    """A generated full Holistic pose (586 points), all detected."""
    components = holistic_components()
    total = sum(len(points) for _, points in components)
    return make_pose(components, random_points(frames, total, seed))


def test_reduced_holistic_reads_the_named_points_of_the_full_layout(
    tmp_path: Path,
) -> None:
    full = full_holistic(6)
    reduced = reduce_holistic(full)  # pose-format's own reduction: 8 + 128 points
    sizes = {c.name: len(c.points) for c in reduced.header.components}
    assert sizes["POSE_LANDMARKS"] == 8 and sizes["FACE_LANDMARKS"] == 128
    full_points, full_shoulders, fps = read_landmarks(
        write_pose(tmp_path / "full.pose", full), ALL
    )
    points, shoulders, _ = read_landmarks(
        write_pose(tmp_path / "reduced.pose", reduced), ALL
    )
    assert fps == 25.0
    assert points.shape == full_points.shape == (6, sum(COMPONENT_SIZES.values()), 3)
    kept_pose = [
        POSE_POINT_NAMES.index(name)
        for name in reduced.header.components[0].points
        if name in POSE_POINT_NAMES
    ]
    assert sorted(kept_pose) == list(range(11, 17))  # shoulders, elbows, wrists
    kept_face = [23 + int(name) for name in reduced.header.components[1].points]
    kept = kept_pose + kept_face + list(range(23 + 468, points.shape[1]))
    np.testing.assert_array_equal(points[:, kept], full_points[:, kept])
    dropped = np.setdiff1d(np.arange(points.shape[1]), kept)
    assert np.isnan(points[:, dropped]).all(), "points the file lacks are absent"
    np.testing.assert_array_equal(shoulders, full_shoulders)


def test_full_layout_maps_points_by_name_not_position(tmp_path: Path) -> None:
    full = full_holistic(4, seed=1)
    points, _, _ = read_landmarks(write_pose(tmp_path / "a.pose", full), DEFAULT)
    data = np.asarray(full.body.data[:, 0])
    np.testing.assert_array_equal(points[:, :23], data[:, :23])
    np.testing.assert_array_equal(points[:, LEFT], data[:, 33 + 478 : 33 + 478 + 21])
    # The same points, with each component's points listed in reverse order.
    shuffled = [(name, names[::-1]) for name, names in holistic_components()]
    reordered = np.concatenate(
        [
            block[:, ::-1]
            for block in np.split(
                data, np.cumsum([len(p) for _, p in shuffled])[:-1], 1
            )
        ],
        axis=1,
    )
    path = write_pose(tmp_path / "b.pose", make_pose(shuffled, reordered))
    np.testing.assert_array_equal(read_landmarks(path, DEFAULT)[0], points)


def test_hands_only_with_sides(tmp_path: Path) -> None:
    data = random_points(5, 42, seed=2)
    data[2, :21] = np.nan  # the left hand undetected in frame 2
    hands = [
        ("LEFT_HAND_LANDMARKS", HAND_POINT_NAMES),
        ("RIGHT_HAND_LANDMARKS", HAND_POINT_NAMES),
    ]
    path = write_pose(tmp_path / "hands.pose", make_pose(hands, data))
    points, shoulders, _ = read_landmarks(path, DEFAULT)
    assert shoulders is None
    assert np.isnan(points[:, :23]).all(), "no pose in the file"
    np.testing.assert_array_equal(points[:, LEFT], data[:, :21])
    np.testing.assert_array_equal(points[:, RIGHT], data[:, 21:])
    assert np.isnan(points[2, LEFT]).all() and np.isfinite(points[2, RIGHT]).all()


def hand_at(frames: int, x: float, seed: int) -> np.ndarray:
    """`(frames, 21, 3)` hand points around wrist x = `x`."""
    hand = random_points(frames, 21, seed) * 0.05
    hand[..., 0] += x
    return hand


def test_hands_without_sides_are_put_on_a_side(tmp_path: Path) -> None:
    image_left, image_right = hand_at(4, 0.2, 3), hand_at(4, 0.8, 4)
    data = np.concatenate([image_right, image_left], axis=1)  # detection order
    unsided = [("HAND_0", HAND_POINT_NAMES), ("HAND_1", HAND_POINT_NAMES)]
    path = write_pose(tmp_path / "unsided.pose", make_pose(unsided, data))
    points, _, _ = read_landmarks(path, DEFAULT)
    # A signer faces the camera: the hand on the image's left is the right hand.
    np.testing.assert_array_equal(points[:, RIGHT], image_left)
    np.testing.assert_array_equal(points[:, LEFT], image_right)


def test_pose_only(tmp_path: Path) -> None:
    data = random_points(3, 33, seed=5)
    path = write_pose(
        tmp_path / "body.pose", make_pose([("POSE_LANDMARKS", FULL_POSE_NAMES)], data)
    )
    points, shoulders, _ = read_landmarks(path, DEFAULT)
    np.testing.assert_array_equal(points[:, :23], data[:, :23])
    np.testing.assert_array_equal(shoulders, data[:, [11, 12]])
    assert np.isnan(points[:, 23:]).all()


def test_npz_hands_array_is_canonicalised_and_sided_arrays_win(tmp_path: Path) -> None:
    image_left, image_right = hand_at(3, 0.1, 6), hand_at(3, 0.9, 7)
    hands = np.stack([image_right, image_left], axis=1)  # (T, 2, 21, 3)
    np.savez(tmp_path / "a.npz", hands=hands.astype(np.float16))
    points, shoulders, _ = read_landmarks(tmp_path / "a.npz", DEFAULT)
    assert shoulders is None and np.isnan(points[:, :23]).all()
    np.testing.assert_allclose(points[:, RIGHT], image_left, atol=1e-3)
    np.testing.assert_allclose(points[:, LEFT], image_right, atol=1e-3)
    explicit = hand_at(3, 0.5, 8)
    np.savez(tmp_path / "b.npz", hands=hands, left_hand=explicit)
    points, _, _ = read_landmarks(tmp_path / "b.npz", DEFAULT)
    np.testing.assert_array_equal(points[:, LEFT], explicit)


@pytest.mark.parametrize(
    ("name", "unsided"),
    [
        ("HAND_0", True),
        ("hand_landmarks", True),
        ("LEFT_HAND_LANDMARKS", False),
        ("right_hand", False),
        ("POSE_LANDMARKS", False),
    ],
)
def test_is_unsided_hand(name: str, unsided: bool) -> None:
    assert is_unsided_hand(name) is unsided


def test_select_points_by_name_nan_where_absent() -> None:
    points = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    out = select_points(points, ["b", "A", "c"], ("A", "Z", "B"))
    np.testing.assert_array_equal(out[:, 0], points[:, 1, :3])
    assert np.isnan(out[:, 1]).all()
    np.testing.assert_array_equal(out[:, 2], points[:, 0, :3])


def test_canonical_hands_rules() -> None:
    nan = np.full((21, 3), np.nan, np.float32)
    left_x, right_x = 0.8, 0.2  # image positions of the signer's left and right hand
    frames = [
        # 1. two hands: by image x, whatever the slot order
        [hand_at(1, left_x, 1)[0], hand_at(1, right_x, 2)[0]],
        [hand_at(1, right_x, 3)[0], hand_at(1, left_x, 4)[0]],
        # 2. one hand: the side of the dividing line (x = 0.5 + ~0.025)
        [nan, hand_at(1, 0.6, 5)[0]],
        [hand_at(1, 0.4, 6)[0], nan],
        [nan, nan],
    ]
    hands = np.stack([np.stack(frame) for frame in frames])
    left, right = canonical_hands(hands)
    assert left.shape == right.shape == (5, 21, 3)
    np.testing.assert_array_equal(left[0], hands[0, 0])
    np.testing.assert_array_equal(right[0], hands[0, 1])
    np.testing.assert_array_equal(left[1], hands[1, 1])
    np.testing.assert_array_equal(right[1], hands[1, 0])
    np.testing.assert_array_equal(left[2], hands[2, 1])
    assert np.isnan(right[2]).all()
    np.testing.assert_array_equal(right[3], hands[3, 0])
    assert np.isnan(left[3]).all()
    assert np.isnan(left[4]).all() and np.isnan(right[4]).all()
    # 3. a clip that never shows two hands: every hand is the right hand.
    single = np.stack([hands[2], hands[3]])
    left, right = canonical_hands(single)
    assert np.isnan(left).all()
    np.testing.assert_array_equal(right[0], hands[2, 1])
    np.testing.assert_array_equal(right[1], hands[3, 0])


def test_canonical_hands_keeps_the_first_two_present_hands() -> None:
    nan = np.full((21, 3), np.nan, np.float32)
    three = np.stack(
        [nan, hand_at(1, 0.9, 1)[0], hand_at(1, 0.1, 2)[0], hand_at(1, 0.5, 3)[0]]
    )[None]
    left, right = canonical_hands(three)
    np.testing.assert_array_equal(left[0], three[0, 1])
    np.testing.assert_array_equal(right[0], three[0, 2])


def two_hands(frames: int, centre: np.ndarray, palm: float, seed: int) -> np.ndarray:
    """`(frames, 42, 3)` left and right hands near `centre` with palms `palm` long."""
    rng = np.random.default_rng(seed)
    hands = centre + rng.normal(scale=palm, size=(frames, 42, 3)).astype(np.float32)
    for start in (0, 21):
        wrist = hands[:, start + WRIST]
        hands[:, start + MIDDLE_FINGER_MCP] = wrist + [palm, 0.0, 0.0]
    return hands.astype(np.float32)


def test_normalise_without_shoulders_uses_the_hands() -> None:
    hands = two_hands(8, np.array([5.0, 3.0, 0.0]), palm=0.5, seed=0)
    hands[3, :21] = np.nan  # an undetected hand does not move the reference
    out, present = normalise(hands, None, [0, 21], hand_shapes=False)
    assert not present[3, :21].any() and present[3, 21:].all()
    np.testing.assert_allclose(out[present].mean(axis=0), 0.0, atol=1e-5)
    palms = palm_lengths(out[:, 21:])
    np.testing.assert_allclose(palms, 1.0 / PALMS_PER_SHOULDER_WIDTH, rtol=1e-5)


def test_normalise_prefers_the_shoulders_when_present() -> None:
    pose = np.full((4, 23, 3), np.nan, np.float32)
    pose[:, LEFT_SHOULDER] = [4.0, 1.0, 0.0]
    pose[:, RIGHT_SHOULDER] = [2.0, 1.0, 0.0]
    hands = two_hands(4, np.array([9.0, 9.0, 0.0]), palm=0.1, seed=1)
    clip = np.concatenate([pose, hands], axis=1)
    shoulders = pose[:, [LEFT_SHOULDER, RIGHT_SHOULDER]]
    out, _ = normalise(clip, shoulders, [23, 44], hand_shapes=False)
    np.testing.assert_allclose(out[:, LEFT_SHOULDER], [[0.5, 0.0, 0.0]] * 4)
    np.testing.assert_allclose(out[:, 23], (hands[:, 0] - [3.0, 1.0, 0.0]) / 2.0)
    # Shoulders never detected: the hands are the reference.
    hidden = np.full_like(shoulders, np.nan)
    out, present = normalise(clip, hidden, [23, 44], hand_shapes=False)
    hand_points = out[:, 23:][present[:, 23:]]
    np.testing.assert_allclose(hand_points.mean(axis=0), 0.0, atol=1e-5)


def test_normalise_hand_shapes_are_wrist_relative_in_palms() -> None:
    hands = two_hands(3, np.array([1.0, 1.0, 0.0]), palm=0.3, seed=2)
    out, _ = normalise(hands, None, [0, 21], hand_shapes=True)
    # The middle-finger base lies one palm length from the wrist: (1, 0) in palms.
    np.testing.assert_allclose(
        out[:, MIDDLE_FINGER_MCP, :2], [[1.0, 0.0]] * 3, atol=1e-5
    )


def pose_root(root: Path, layout: str) -> Path:
    """A dataset root of generated `.pose` clips in `layout` (3 glosses, train and
    val), each gloss's hands at its own height so there is something to learn."""
    lines = ["name start end gloss split"]
    for gloss in range(3):
        for index, split in enumerate(["train", "train", "val"]):
            name = f"g{gloss}_{index}"
            frames = 6 + index
            seed = gloss * 10 + index
            if layout == "reduced_holistic":
                pose = reduce_holistic(full_holistic(frames, seed))
                data = np.array(pose.body.data.filled(np.nan)[:, 0])
                components = [(c.name, tuple(c.points)) for c in pose.header.components]
                data[:, 8:] += gloss * 0.1  # face and hands move with the gloss
                pose = make_pose(components, data)
            else:
                left = hand_at(frames, 0.7, seed) + [0.0, gloss * 0.2, 0.0]
                right = hand_at(frames, 0.3, seed + 1)
                right[1] = np.nan  # a frame with one hand
                names = (
                    ["LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS"]
                    if layout == "hands_sided"
                    else ["HAND_0", "HAND_1"]
                )
                pose = make_pose(
                    [(n, HAND_POINT_NAMES) for n in names],
                    np.concatenate([left, right], axis=1),
                )
            (root / name).mkdir(parents=True)
            write_pose(root / name / f"{name}.pose", pose)
            lines.append(f"{name} 0 {frames - 1} {gloss} {split}")
    (root / "test_gloss.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("layout", ["reduced_holistic", "hands_sided", "hands_unsided"])
def test_pose_files_of_each_layout_train_with_landmarks(
    tiny_config, write_config, tmp_path: Path, layout: str
) -> None:
    root = pose_root(tmp_path / layout, layout)
    config = copy.deepcopy(tiny_config)
    config["general_parameters"]["data_path"] = str(root)
    config["train_parameters"].update(
        classification_mode="gloss", landmarks=True, fast_dev_run=True
    )
    config["feature_extractor"] = {
        "name": "landmarks_extractor",
        "representation_size": 16,
    }
    config["landmarks_parameters"] = {"apply_flip": True, "apply_affine": True}
    config["heads"]["gloss"]["gloss"]["num_class"] = "auto"
    assert train.main(["--model_config_path", str(write_config(config))]) == 0


def test_canonical_hands_counts_a_hand_reported_twice_once() -> None:
    """MediaPipe's tracker sometimes reports one hand in both slots: one hand, on the
    side the one-hand rule gives, and it does not move the dividing line."""
    twice = hand_at(1, 0.3, 7)[0]
    echo = twice + np.float32(0.001)  # the same hand, a hair apart
    frames = [
        [hand_at(1, 0.8, 1)[0], hand_at(1, 0.2, 2)[0]],  # two real hands
        [twice, echo],
    ]
    left, right = canonical_hands(np.stack([np.stack(frame) for frame in frames]))
    np.testing.assert_array_equal(right[1], twice)
    assert np.isnan(left[1]).all()
    # Two real hands as close as hands get when they touch stay two hands.
    touching = [hand_at(1, 0.45, 3)[0], hand_at(1, 0.55, 4)[0]]
    left, right = canonical_hands(np.stack(touching)[None])
    assert np.isfinite(left).all() and np.isfinite(right).all()
