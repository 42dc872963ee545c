"""Pose landmarks: read `.npz` / `.pose` files, select components, normalise, flip.

A landmark clip is a `(T, K, 3)` float32 array with NaN where a point was not detected
(e.g. a hand out of view), built from the configured components in a fixed order, so
that files of different layouts give the same K: a `.pose` file's points are taken by
name (full or reduced Holistic, hands or body only; see `datasets.landmark_layout`),
an `.npz` file's by MediaPipe's order. Hands of unknown side (an `.npz` array `hands`
`(T, H, 21, 3)`, or `.pose` hand components without LEFT/RIGHT) are put on a side by
`datasets.landmark_layout.canonical_hands`.

One coordinate convention (docs/landmarks.md): in memory, points are MediaPipe's
normalised image coordinates, x and y as shares of the frame's width and height and
z on the scale of x, whatever the file holds. A file says what it holds: an `.npz`
has `coordinates` ("normalized" or "pixels") and `frame_size` (`[width, height]`);
a `.pose` file's header has the frame's width and height. Pixel files are divided by
their frame size (z by the width). An `.npz` without `coordinates` (written before
the convention, or by other tools) counts as normalised unless a point lies beyond
`LEGACY_PIXEL_LIMIT`; then it is pixels, converted with its `frame_size` or refused.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config.landmarks import LandmarksParameters
from datasets.landmark_layout import (
    canonical_hands,
    is_unsided_hand,
    palm_lengths,
    select_points,
)
from datasets.sampling import check_fps
from utils.errors import DataError
from utils.files import exists, require_file
from utils.landmark_points import (
    COMPONENT_POINTS,
    COMPONENT_SIZES,
    HAND_POINTS,
    LEFT_SHOULDER,
    POSE_FORMAT_NAMES,
    RIGHT_SHOULDER,
    component_slices,
    hand_starts,
)

# Left/right pairs among the upper-body pose points, swapped by a horizontal flip.
POSE_MIRROR_PAIRS = (
    (1, 4),
    (2, 5),
    (3, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14),
    (15, 16),
    (17, 18),
    (19, 20),
    (21, 22),
)


#: The coordinate conventions a landmark file may declare.
NORMALISED = "normalized"
PIXELS = "pixels"
COORDINATES = (NORMALISED, PIXELS)
#: An `.npz` without `coordinates` whose x or y goes beyond this holds pixels (a
#: normalised point lies near 0..1; a pixel frame is hundreds of pixels wide).
LEGACY_PIXEL_LIMIT = 16.0
#: The metadata arrays of an `.npz` landmark file (not body parts).
METADATA_KEYS = ("fps", "coordinates", "frame_size")


def landmark_arrays(
    parts: dict[str, np.ndarray],
    *,
    frame_size: tuple[int, int] | None,
    fps: float | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of an `.npz` landmark file holding normalised `parts`: the parts,
    `coordinates`, and `frame_size` and `fps` where known (for `np.savez`)."""
    arrays = {part: np.asarray(array, np.float32) for part, array in parts.items()}
    arrays["coordinates"] = np.array(NORMALISED)
    if frame_size is not None:
        arrays["frame_size"] = np.asarray(frame_size, dtype=np.int64)
    if fps:
        arrays["fps"] = np.asarray(fps, dtype=np.float64)
    return arrays


def _frame_size(value: np.ndarray | None, path: Path) -> tuple[float, float] | None:
    if value is None:
        return None
    if value.size != 2 or not np.issubdtype(value.dtype, np.number):
        raise DataError(f"{path}: frame_size must be [width, height]")
    width, height = (float(v) for v in value.reshape(-1))
    if not (np.isfinite(width) and np.isfinite(height) and width > 0 and height > 0):
        raise DataError(f"{path}: frame_size {width:g} x {height:g} is not positive")
    return width, height


def _declared(value: np.ndarray | None, path: Path) -> str | None:
    if value is None:
        return None
    text = str(value.reshape(-1)[0]) if value.size == 1 else ""
    if text not in COORDINATES:
        raise DataError(
            f"{path}: coordinates must be one of {', '.join(COORDINATES)}, got "
            f"{text or value!r}"
        )
    return text


def _beyond_normalised(parts: dict[str, np.ndarray]) -> bool:
    """Whether any x or y lies beyond `LEGACY_PIXEL_LIMIT` (pixels, not shares)."""
    for array in parts.values():
        xy = array[..., :2]
        finite = xy[np.isfinite(xy)]
        if finite.size and np.abs(finite).max() > LEGACY_PIXEL_LIMIT:
            return True
    return False


def to_normalised(
    parts: dict[str, np.ndarray],
    coordinates: str | None,
    frame_size: tuple[float, float] | None,
    path: Path,
) -> dict[str, np.ndarray]:
    """A file's parts in the normalised convention (see the module docstring).

    Raises:
        DataError: pixel coordinates without the frame size to convert them.
    """
    if coordinates is None:
        coordinates = PIXELS if _beyond_normalised(parts) else NORMALISED
        if coordinates == PIXELS and frame_size is None:
            raise DataError(
                f"{path}: holds pixel coordinates (points beyond "
                f"{LEGACY_PIXEL_LIMIT:g}) but does not say its frame size, so they "
                "cannot be made normalised as every landmark reader needs (see "
                "docs/landmarks.md); extract the landmarks again with "
                "`python3 -m data_preprocessing.extract_landmarks`, or add "
                "coordinates='pixels' and frame_size=[width, height] to the file"
            )
    if coordinates == NORMALISED:
        return parts
    if frame_size is None:
        raise DataError(
            f"{path}: says coordinates='pixels' but has no frame_size [width, height]"
        )
    width, height = frame_size
    scale = np.array([width, height, width], dtype=np.float32)
    return {part: array / scale for part, array in parts.items()}


# What numpy and pose-format raise on a damaged or garbage file (a .pose header is
# parsed field by field: a bad byte is a struct error, a bad name a UnicodeDecodeError,
# a bad version NotImplementedError, a bad count an IndexError or a huge allocation).
UNREADABLE_FILE_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    KeyError,
    IndexError,
    NotImplementedError,
    MemoryError,
    OverflowError,
    struct.error,
    zipfile.BadZipFile,
)


def landmark_file(sample_dir: Path, name: str) -> Path | None:
    """The sample's landmark file (`<name>.npz`, else `<name>.pose`), if any (it may
    still be something other than a file: `read_landmarks` says what)."""
    for suffix in (".npz", ".pose"):
        path = sample_dir / f"{name}{suffix}"
        if exists(path):
            return path
    return None


def _one_fps(value: np.ndarray | None, path: Path) -> float | None:
    """The `fps` array of a landmark file as one frame rate."""
    if value is None:
        return None
    if value.size != 1:
        raise DataError(
            f"{path}: fps holds {value.size} values of shape {value.shape}; expected "
            "one number"
        )
    return check_fps(value.item(), f"{path}: fps")


def _read_npz(
    path: Path, components: list[str]
) -> tuple[dict[str, np.ndarray], float | None]:
    # Only the arrays used: an .npz decompresses each array on access, and the face
    # (468 points) alone is most of a file.
    wanted = {*components, "pose", "hands", *METADATA_KEYS}
    with np.load(path, allow_pickle=False) as data:
        keys = [key for key in data.files if key in wanted]
        if not set(keys) - set(METADATA_KEYS):  # none of the used parts: learn T
            keys += [key for key in data.files if key not in wanted][:1]
        parts = {
            key: np.asarray(data[key], dtype=np.float32)
            for key in keys
            if key not in METADATA_KEYS
        }
        meta = {key: np.asarray(data[key]) for key in keys if key in METADATA_KEYS}
    parts = to_normalised(
        parts,
        _declared(meta.get("coordinates"), path),
        _frame_size(meta.get("frame_size"), path),
        path,
    )
    return parts, _one_fps(meta.get("fps"), path)


def _read_pose(path: Path) -> tuple[dict[str, np.ndarray], float | None]:
    # Imported here: only .pose files need it.
    # pylint: disable-next=import-outside-toplevel
    from pose_format import Pose

    pose = Pose.read(path.read_bytes())
    data = pose.body.data  # masked (frames, people, points, dims)
    points = np.ma.filled(data[:, 0, :, :3].astype(np.float32), np.nan)
    masked = np.ma.getmaskarray(data)[:, 0, :, :3].any(-1)
    points[masked] = np.nan
    parts, offset, unsided = {}, 0, []
    names = {value: key for key, value in POSE_FORMAT_NAMES.items()}
    for component in pose.header.components:
        size = len(component.points)
        block = points[:, offset : offset + size]
        offset += size
        if component.name in names:
            key = names[component.name]
            parts[key] = select_points(block, component.points, COMPONENT_POINTS[key])
        elif is_unsided_hand(component.name):
            unsided.append(
                select_points(block, component.points, COMPONENT_POINTS["left_hand"])
            )
    if unsided:
        parts["hands"] = np.stack(unsided, axis=1)
    # pose-format writes MediaPipe's points in pixels of the header's frame size;
    # a header of 1 x 1 (or none) means normalised points.
    size = pose.header.dimensions
    if size is not None and size.width > 1 and size.height > 1:
        parts = to_normalised(parts, PIXELS, (size.width, size.height), path)
    return parts, check_fps(pose.body.fps, f"{path}: fps")


def read_landmarks(
    path: Path, components: list[str]
) -> tuple[np.ndarray, np.ndarray | None, float | None]:
    """The selected components of a landmark file, concatenated.

    Args:
        path: a `.npz` (arrays `face`, `left_hand`, `right_hand`, `pose`, each
            `(T, K, 3)`) or a pose-format `.pose` file (MediaPipe Holistic).
        components: which parts to keep, in order.

    Returns:
        `(T, K, 3)` float32 with NaN for absent points, in normalised image
        coordinates (see the module docstring), the `(T, 2, 3)` left and right
        shoulders (None when the file has no pose), and the FPS if the file has one.
    """
    require_file(path, "landmark file")
    try:
        if path.suffix == ".npz":
            parts, fps = _read_npz(path, components)
        else:
            parts, fps = _read_pose(path)
    except UNREADABLE_FILE_ERRORS as error:
        reason = (str(error) or type(error).__name__)[:200]
        raise DataError(f"{path}: cannot read landmarks ({reason})") from None
    hands = parts.pop("hands", None)
    if hands is not None:
        if hands.ndim != 4 or hands.shape[2:] != (HAND_POINTS, 3):
            raise DataError(
                f"{path}: hands has shape {hands.shape}; expected (T, hands, 21, 3)"
            )
        for side, hand in zip(("left_hand", "right_hand"), canonical_hands(hands)):
            parts.setdefault(side, hand)
    frames = {part.shape[0] for part in parts.values() if part.ndim == 3}
    if len(frames) != 1:
        raise DataError(f"{path}: landmark arrays must be (T, K, 3) with one T")
    length = frames.pop()
    selected = []
    for component in components:
        size = COMPONENT_SIZES[component]
        part = parts.get(component)
        if part is None:  # absent in this file: all points missing
            part = np.full((length, size, 3), np.nan, dtype=np.float32)
        if part.ndim != 3 or part.shape[2] < 3 or part.shape[1] < size:
            raise DataError(
                f"{path}: component {component} has shape {part.shape}; expected "
                f"(T, >={size}, 3)"
            )
        selected.append(part[:, :size, :3])
    pose = parts.get("pose")
    shoulders = None
    if pose is not None and pose.ndim == 3 and pose.shape[1] > RIGHT_SHOULDER:
        shoulders = pose[:, [LEFT_SHOULDER, RIGHT_SHOULDER], :3]
    return np.concatenate(selected, axis=1), shoulders, fps


def require_rows(path: Path, points: np.ndarray, rows: int) -> None:
    """Raise `DataError` unless the file's `points` have the `rows` frames that its
    annotation (`end` + 1) asks for."""
    if len(points) < rows:
        raise DataError(
            f"{path}: has {len(points)} frames, but the annotation asks for frame "
            f"{rows - 1}"
        )


class LandmarkMemory:
    """Landmark files read once and kept in memory, up to a size budget.

    Parsing an `.npz` costs more than everything else a landmark clip needs, and a
    loader process reads every file once per epoch; with persistent workers each
    keeps what it has read. Files past the budget are read from disk every time.

    Args:
        components: the parts to read (see `read_landmarks`).
        budget_bytes: the most bytes of arrays to keep; 0 keeps nothing.
    """

    def __init__(self, components: list[str], budget_bytes: int) -> None:
        self.components = components
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._files: dict[Path, tuple] = {}

    def __getstate__(self) -> dict:
        # A worker process starts empty rather than receiving a pickled copy.
        return {**self.__dict__, "used_bytes": 0, "_files": {}}

    def __len__(self) -> int:
        return len(self._files)

    def read(self, path: Path) -> tuple[np.ndarray, np.ndarray | None, float | None]:
        """`read_landmarks(path, components)`, from memory when read before."""
        found = self._files.get(path)
        if found is not None:
            return found
        found = read_landmarks(path, self.components)
        size = found[0].nbytes + (found[1].nbytes if found[1] is not None else 0)
        if self.used_bytes + size <= self.budget_bytes:
            found[0].setflags(write=False)  # shared by every later read
            if found[1] is not None:
                found[1].setflags(write=False)
            self._files[path] = found
            self.used_bytes += size
        return found


def relative_points(components: list[str]) -> np.ndarray:
    """`(K,)` bool: the finger points that `normalise` makes wrist-relative."""
    relative = np.zeros(sum(COMPONENT_SIZES[c] for c in components), dtype=bool)
    for start in hand_starts(components):
        relative[start + 1 : start + HAND_POINTS] = True
    return relative


def _hand_shapes(landmarks: np.ndarray, hands: list[int]) -> np.ndarray:
    """Express each hand's finger points relative to its wrist, in hand sizes.

    The wrist keeps its body position; fingers become (point - wrist) / (wrist to
    middle-finger base distance), so the handshape is not drowned by arm movement.
    """
    landmarks = landmarks.copy()
    for start in hands:
        wrist = landmarks[:, start : start + 1]
        size = np.linalg.norm(landmarks[:, start + 9, :2] - wrist[:, 0, :2], axis=-1)
        size = np.where(size > 1e-6, size, np.nan)[:, None, None]
        fingers = slice(start + 1, start + HAND_POINTS)
        landmarks[:, fingers] = (landmarks[:, fingers] - wrist) / size
    return landmarks


#: Palm lengths (wrist to middle-finger base) in a shoulder width, roughly: hands-only
#: clips are scaled by this many palm lengths, so both references give similar units.
PALMS_PER_SHOULDER_WIDTH = 4.0


def _reference(
    landmarks: np.ndarray, shoulders: np.ndarray | None, hands: list[int]
) -> tuple[np.ndarray, float] | None:
    """The clip's centre and unit length: the shoulders' midpoint and width when the
    clip shows shoulders, else the mean of its hand points and
    `PALMS_PER_SHOULDER_WIDTH` median palm lengths; None when it shows neither."""
    if shoulders is not None:
        valid = np.isfinite(shoulders).all((1, 2))
        if valid.any():
            width = np.linalg.norm(
                shoulders[valid, 0, :2] - shoulders[valid, 1, :2], axis=-1
            )
            return shoulders[valid].mean(axis=(0, 1)), float(np.median(width))
    points = [landmarks[:, start : start + HAND_POINTS] for start in hands]
    if points:
        points = np.concatenate(points, axis=1)
        present = np.isfinite(points).all(-1)
        palms = np.concatenate([palm_lengths(landmarks[:, s:]) for s in hands])
        palms = palms[np.isfinite(palms)]
        if present.any() and palms.size:
            unit = PALMS_PER_SHOULDER_WIDTH * float(np.median(palms))
            return points[present].mean(axis=0), unit
    return None


def normalise(
    landmarks: np.ndarray,
    shoulders: np.ndarray | None,
    hands: list[int] | None = None,
    *,
    hand_shapes: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale a clip by its body, then make hand shapes wrist-relative.

    The reference is the shoulders when the clip shows them (centre: their mean
    midpoint, unit: their median width), otherwise the hands (see `_reference`).

    Args:
        landmarks: `(T, K, 3)` with NaN for absent points.
        shoulders: `(T, 2, 3)` left and right shoulder, or None (hands only).
        hands: start indices of hand components (see `hand_starts`); None or
            empty with `shoulders` None leaves the clip as it is.
        hand_shapes: make each hand's fingers relative to its wrist (see
            `_hand_shapes`).

    Returns:
        The normalised `(T, K, 3)` landmarks with absent points set to 0, and the
        `(T, K)` bool mask of present points.
    """
    reference = _reference(landmarks, shoulders, hands or [])
    if reference is not None and reference[1] > 0:
        landmarks = (landmarks - reference[0]) / reference[1]
    if hands and hand_shapes:
        landmarks = _hand_shapes(landmarks, hands)
    present = np.isfinite(landmarks).all(-1)
    landmarks = np.where(present[..., None], landmarks, 0.0).astype(np.float32)
    return landmarks, present


def mirror_permutation(components: list[str]) -> np.ndarray:
    """Point order after a horizontal flip: left and right hands and pose sides swap."""
    offsets, offset = {}, 0
    for component in components:
        offsets[component] = offset
        offset += COMPONENT_SIZES[component]
    order = np.arange(offset)
    if "left_hand" in offsets and "right_hand" in offsets:
        left, right = offsets["left_hand"], offsets["right_hand"]
        order[left : left + HAND_POINTS] = np.arange(right, right + HAND_POINTS)
        order[right : right + HAND_POINTS] = np.arange(left, left + HAND_POINTS)
    if "pose" in offsets:
        base = offsets["pose"]
        for a, b in POSE_MIRROR_PAIRS:
            order[base + a], order[base + b] = base + b, base + a
    return order


def flip_horizontally(
    landmarks: np.ndarray, present: np.ndarray, order: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror normalised landmarks (x -> -x) and swap left/right points."""
    flipped = landmarks[:, order].copy()
    flipped[..., 0] *= -1.0
    return flipped, present[:, order]


@dataclass(frozen=True)
class PointLayout:
    """Where the parts of the configured components lie among their K points."""

    hands: list[int]
    groups: list[slice]
    mirror: np.ndarray
    relative: np.ndarray

    @classmethod
    def of(cls, components: list[str]) -> PointLayout:
        """The layout of `components`, in order."""
        return cls(
            hands=hand_starts(components),
            groups=component_slices(components),
            mirror=mirror_permutation(components),
            relative=relative_points(components),
        )


def prepare_clip(
    clip: np.ndarray,
    shoulders: np.ndarray | None,
    parameters: LandmarksParameters,
    layout: PointLayout,
) -> tuple[np.ndarray, np.ndarray]:
    """A clip's sampled rows as the model reads them: `normalise` as configured
    (training, `predict.py` and the demo share this)."""
    if not parameters.normalize:
        return normalise(clip, None)
    return normalise(clip, shoulders, layout.hands, hand_shapes=parameters.hand_shapes)
