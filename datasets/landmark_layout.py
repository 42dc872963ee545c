"""Landmark layouts by name: MediaPipe's point names, and hands whose side is unknown.

A `.pose` file names its components and points; each configured component is built
from the points of that name, whatever else the file holds (full Holistic with 543 or
576 points, pose-format's reduced Holistic with 8 body and 128 face points, hands or
body only). A point the file lacks is NaN, as an undetected point is.

Hands of unknown side (MediaPipe Hands gives them in detection order) are put on a
side by `canonical_hands`:

1. in a frame with two hands, the one further left in the image is the signer's
   right hand (a signer faces the camera), the other the left hand;
2. in a frame with one hand, the hand goes to the side of the clip's dividing line:
   halfway between the mean wrist x of the right and of the left hands over the
   two-hand frames;
3. in a clip that never shows two hands, every hand is the right hand (the
   dominant hand of most signers, and the side a mirror augmentation swaps).

Before these rules, a hand reported twice in one frame (MediaPipe's tracker sometimes
puts the same hand in both slots: their points lie within `DUPLICATE_HAND_PALMS`
palm lengths of each other on average) counts as one hand, the first slot's.
"""

from __future__ import annotations

import numpy as np

from utils.landmark_points import HAND_POINTS, MIDDLE_FINGER_MCP, WRIST

#: Two hands of one frame whose points lie this many palm lengths apart on average,
#: or less, are one hand reported twice (two real hands, even touching, lie further
#: apart: in WLASL's two-hand frames the median is more than a palm length).
DUPLICATE_HAND_PALMS = 0.3


def is_unsided_hand(component_name: str) -> bool:
    """Whether a `.pose` component is a hand of unknown side (no LEFT or RIGHT)."""
    name = component_name.upper()
    return "HAND" in name and "LEFT" not in name and "RIGHT" not in name


def select_points(
    points: np.ndarray, names: list[str], wanted: tuple[str, ...]
) -> np.ndarray:
    """The `wanted` points of `(T, P, 3)` `points` named `names`, NaN where absent."""
    index = {name.upper(): position for position, name in enumerate(names)}
    out = np.full((points.shape[0], len(wanted), 3), np.nan, dtype=np.float32)
    for position, name in enumerate(wanted):
        found = index.get(name)
        if found is not None:
            out[:, position] = points[:, found, :3]
    return out


def _drop_duplicates(hands: np.ndarray, present: np.ndarray) -> None:
    """Mark a frame's second present hand absent in `present` (in place) where it
    repeats the first one (see `DUPLICATE_HAND_PALMS`)."""
    for frame in np.flatnonzero(present.sum(axis=1) >= 2):
        first, second = np.flatnonzero(present[frame])[:2]
        a, b = hands[frame, first, :, :2], hands[frame, second, :, :2]
        palm = np.linalg.norm(a[MIDDLE_FINGER_MCP] - a[WRIST])
        apart = np.nanmean(np.linalg.norm(a - b, axis=-1))
        if palm > 0 and apart <= DUPLICATE_HAND_PALMS * palm:
            present[frame, second] = False


def canonical_hands(hands: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hands of unknown side -> `(left_hand, right_hand)`, by the module's rule.

    Args:
        hands: `(T, H, 21, 3)` hands in detection order, NaN where absent; only the
            first two present hands of a frame are kept, and a hand reported twice
            counts once.

    Returns:
        The left and the right hand, each `(T, 21, 3)` with NaN where absent.
    """
    length = hands.shape[0]
    left = np.full((length, HAND_POINTS, 3), np.nan, dtype=np.float32)
    right = left.copy()
    present = np.isfinite(hands[:, :, WRIST, :2]).all(-1)  # (T, H)
    _drop_duplicates(hands, present)
    wrist_x = hands[:, :, WRIST, 0]
    slots = [np.flatnonzero(row)[:2] for row in present]
    two = [(t, s) for t, s in enumerate(slots) if len(s) == 2]
    boundary = np.inf
    if two:
        xs = np.array([sorted(wrist_x[t, s]) for t, s in two])
        boundary = float(xs.mean(axis=0).mean())
    for frame, found in enumerate(slots):
        if len(found) == 2:
            first, second = found[np.argsort(wrist_x[frame, found])]
            right[frame], left[frame] = hands[frame, first], hands[frame, second]
        elif len(found) == 1:
            slot = found[0]
            target = right if wrist_x[frame, slot] < boundary else left
            target[frame] = hands[frame, slot]
    return left, right


def palm_lengths(hand: np.ndarray) -> np.ndarray:
    """`(T,)` wrist to middle-finger base distances in x, y (NaN where absent)."""
    return np.linalg.norm(hand[:, MIDDLE_FINGER_MCP, :2] - hand[:, WRIST, :2], axis=-1)
