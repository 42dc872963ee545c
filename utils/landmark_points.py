"""MediaPipe landmark layouts: the point names of each component, and the skeleton.

One definition of each fact, shared by the readers (`datasets/`) and the models
(`models/`): which points a component has, by name, how many, and which are joined.
"""

from __future__ import annotations

#: MediaPipe Pose's upper-body points (0-22): face, shoulders, arms, hands.
POSE_POINT_NAMES = (
    "NOSE",
    "LEFT_EYE_INNER",
    "LEFT_EYE",
    "LEFT_EYE_OUTER",
    "RIGHT_EYE_INNER",
    "RIGHT_EYE",
    "RIGHT_EYE_OUTER",
    "LEFT_EAR",
    "RIGHT_EAR",
    "MOUTH_LEFT",
    "MOUTH_RIGHT",
    "LEFT_SHOULDER",
    "RIGHT_SHOULDER",
    "LEFT_ELBOW",
    "RIGHT_ELBOW",
    "LEFT_WRIST",
    "RIGHT_WRIST",
    "LEFT_PINKY",
    "RIGHT_PINKY",
    "LEFT_INDEX",
    "RIGHT_INDEX",
    "LEFT_THUMB",
    "RIGHT_THUMB",
)
#: MediaPipe Hands' 21 points.
HAND_POINT_NAMES = (
    "WRIST",
    "THUMB_CMC",
    "THUMB_MCP",
    "THUMB_IP",
    "THUMB_TIP",
    "INDEX_FINGER_MCP",
    "INDEX_FINGER_PIP",
    "INDEX_FINGER_DIP",
    "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP",
    "MIDDLE_FINGER_PIP",
    "MIDDLE_FINGER_DIP",
    "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP",
    "RING_FINGER_PIP",
    "RING_FINGER_DIP",
    "RING_FINGER_TIP",
    "PINKY_MCP",
    "PINKY_PIP",
    "PINKY_DIP",
    "PINKY_TIP",
)
#: The face mesh without the 10 iris points of the 478-point layout; pose-format
#: names them by number.
FACE_POINT_NAMES = tuple(str(index) for index in range(468))

#: The points of each configured component, in order.
COMPONENT_POINTS = {
    "pose": POSE_POINT_NAMES,
    "face": FACE_POINT_NAMES,
    "left_hand": HAND_POINT_NAMES,
    "right_hand": HAND_POINT_NAMES,
}
#: Points per component (one definition, used by readers and models).
COMPONENT_SIZES = {name: len(points) for name, points in COMPONENT_POINTS.items()}
#: pose-format component names of each configured component.
POSE_FORMAT_NAMES = {
    "pose": "POSE_LANDMARKS",
    "face": "FACE_LANDMARKS",
    "left_hand": "LEFT_HAND_LANDMARKS",
    "right_hand": "RIGHT_HAND_LANDMARKS",
}
HAND_POINTS = len(HAND_POINT_NAMES)
WRIST, MIDDLE_FINGER_MCP = 0, HAND_POINT_NAMES.index("MIDDLE_FINGER_MCP")
LEFT_SHOULDER = POSE_POINT_NAMES.index("LEFT_SHOULDER")
RIGHT_SHOULDER = POSE_POINT_NAMES.index("RIGHT_SHOULDER")

#: MediaPipe Hands' bones, as pairs of point indices.
# fmt: off
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10),
    (10, 11), (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17),
    (17, 18), (18, 19), (19, 20),
)
# fmt: on
#: Each hand point's parent in the hand's tree (the wrist its own): the bone of point j
#: runs from HAND_PARENTS[j] to j; the five finger bases hang from the wrist.
HAND_PARENTS = (0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
#: MediaPipe Pose's connections among the upper-body points.
# fmt: off
POSE_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12),
    (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16),
    (16, 18), (16, 20), (16, 22), (18, 20),
)
# fmt: on
#: The pose wrist each hand hangs from.
POSE_WRIST_OF_HAND = {
    "left_hand": POSE_POINT_NAMES.index("LEFT_WRIST"),
    "right_hand": POSE_POINT_NAMES.index("RIGHT_WRIST"),
}
COMPONENT_EDGES = {
    "pose": POSE_EDGES,
    "left_hand": HAND_EDGES,
    "right_hand": HAND_EDGES,
}


def component_slices(components: list[str]) -> list[slice]:
    """Where each component's points lie among the concatenated components."""
    slices, offset = [], 0
    for component in components:
        slices.append(slice(offset, offset + COMPONENT_SIZES[component]))
        offset += COMPONENT_SIZES[component]
    return slices


def hand_starts(components: list[str]) -> list[int]:
    """Where each hand's 21 points start among the concatenated components."""
    return [
        part.start
        for component, part in zip(components, component_slices(components))
        if component in ("left_hand", "right_hand")
    ]
