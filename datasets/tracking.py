"""MediaPipe's trackers over a clip's frames: the one landmark extraction of signpipe.

`extract_landmarks`, `labels_csv --landmarks`, `predict.py` on videos and the demo all
call `track` (through `datasets.clip_landmarks`), so a model sees the same kind of
points in training and in use. mediapipe is imported only when a tracker runs. Two
trackers (see docs/landmarks.md, the landmark convention):

- ``hands``: MediaPipe Hands (`mp.solutions.hands`, the full model) in its video
  mode (`static_image_mode=False`: a hand found once is followed, the palm detector
  runs while fewer than two hands are followed), at most two hands, detection
  confidence 0.5: the tool and settings WLASL's published hand landmarks were made
  with. It writes `hands` `(T, 2, 21, 3)` in detection order; a reader puts them on a
  side by `datasets.landmark_layout.canonical_hands`, for a video as for WLASL's files.
  Models that read only hands use it: it is much faster than Holistic.
- ``holistic``: MediaPipe Holistic, `pose` `(T, 33, 3)`, `face` `(T, 468, 3)`,
  `left_hand` and `right_hand` `(T, 21, 3)`.

Points are MediaPipe's own: x and y as shares of the frame's width and height, z on
the scale of x. Frames not given (a model that samples 24 of a clip's 80 frames
needs only those) stay NaN, like frames where nothing was found. With `threads` > 1
the frames are dealt in turn to that many trackers on their own threads, while the
video is still decoding (MediaPipe and PyAV release the GIL while they work).

Needs the optional extra `requirements-landmarks.txt` (mediapipe 0.10.14, whose wheel
bundles these models, so that nothing is downloaded).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import queue
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from utils.cli import route_native_logs
from utils.errors import UserError

TRACKERS = ("hands", "holistic")
#: Hands followed by the hands tracker (one slot each, in detection order).
HAND_SLOTS = 2
#: Points per part as written (Holistic without iris refinement, and Hands).
PART_POINTS = {"pose": 33, "face": 468, "left_hand": 21, "right_hand": 21}
#: Holistic result attribute of each part.
RESULT_FIELDS = {
    "pose": "pose_landmarks",
    "face": "face_landmarks",
    "left_hand": "left_hand_landmarks",
    "right_hand": "right_hand_landmarks",
}
#: The pose model each Holistic model_complexity needs (in modules/pose_landmark).
POSE_MODELS = {
    0: "pose_landmark_lite.tflite",
    1: "pose_landmark_full.tflite",
    2: "pose_landmark_heavy.tflite",
}
#: The files the hands tracker needs (in mediapipe/modules), all in the wheel.
HAND_MODELS = (
    "palm_detection/palm_detection_full.tflite",
    "hand_landmark/hand_landmark_full.tflite",
)
DEFAULT_COMPLEXITY = 1
#: MediaPipe Hands' palm detection confidence, as WLASL's landmarks were made.
HAND_DETECTION_CONFIDENCE = 0.5
INSTALL_HINT = (
    "run `.venv/bin/pip install -r requirements-landmarks.txt` (or `make venv`)"
)


def tracker_for(components: Sequence[str]) -> str:
    """The tracker a model reading `components` needs: hands alone when it reads only
    hands, else Holistic."""
    return "hands" if set(components) <= {"left_hand", "right_hand"} else "holistic"


def _quiet() -> None:
    """Keep MediaPipe's native log lines (glog/absl `W0000 ...`) off the terminal."""
    route_native_logs()
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("absl").setLevel(logging.ERROR)
    # mediapipe 0.10.14 with protobuf 4.25 warns once per process; not the user's.
    warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype")


def load_mediapipe() -> ModuleType:
    """Import mediapipe and check that it offers the legacy solutions.

    Raises:
        UserError: mediapipe is missing, does not import, or is a version without
            `mp.solutions.holistic` and `mp.solutions.hands`; the message says what
            to install.
    """
    _quiet()
    try:
        # Imported here: an optional extra, needed by the extraction only.
        # pylint: disable-next=import-outside-toplevel
        import mediapipe
    except ImportError:
        raise UserError(
            f"landmark extraction needs mediapipe, which is not installed: "
            f"{INSTALL_HINT}"
        ) from None
    except Exception as error:  # pylint: disable=broad-exception-caught
        # e.g. protobuf >= 5 makes mediapipe 0.10.14 fail with a TypeError.
        raise UserError(
            f"mediapipe does not import ({type(error).__name__}: {error}); "
            f"{INSTALL_HINT}"
        ) from None
    solutions = getattr(mediapipe, "solutions", None)
    for name in ("holistic", "hands"):
        if getattr(solutions, name, None) is None:
            version = getattr(mediapipe, "__version__", "?")
            raise UserError(
                f"mediapipe {version} has no mp.solutions.{name} (the offline "
                f"models); {INSTALL_HINT}"
            )
    return mediapipe


def check_model(
    mediapipe: ModuleType, tracker: str = "holistic", model_complexity: int = 1
) -> None:
    """Raise `UserError` when a model file the tracker needs is not installed.

    mediapipe 0.10.14 bundles only Holistic's full pose model (complexity 1); it
    would try to download the lite (0) and heavy (2) ones at run time.
    """
    _check_files(Path(mediapipe.__file__).parent, tracker, model_complexity)


def check_installed(tracker: str, model_complexity: int = DEFAULT_COMPLEXITY) -> None:
    """`check_model` without importing mediapipe (which takes seconds): whether it is
    installed with the tracker's model files.

    Raises:
        UserError: mediapipe or a model file is missing.
    """
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.origin:
        raise UserError(
            f"landmark extraction needs mediapipe, which is not installed: "
            f"{INSTALL_HINT}"
        )
    _check_files(Path(spec.origin).parent, tracker, model_complexity)


def _check_files(package: Path, tracker: str, model_complexity: int) -> None:
    if tracker not in TRACKERS:
        raise UserError(f"unknown tracker {tracker!r}; expected one of {TRACKERS}")
    folder = package / "modules"
    if tracker == "hands":
        needed = [folder / name for name in HAND_MODELS]
    else:
        needed = [folder / "pose_landmark" / POSE_MODELS[model_complexity]]
    for model in needed:
        if model.is_file():
            continue
        if tracker == "holistic":
            raise UserError(
                f"--model_complexity {model_complexity} needs {model}, which this "
                "mediapipe does not bundle (it would download it, and nothing is "
                f"downloaded here); use --model_complexity {DEFAULT_COMPLEXITY} or "
                "place the file there"
            )
        raise UserError(
            f"the hands tracker needs {model}, which this mediapipe does not bundle; "
            f"{INSTALL_HINT}"
        )


def empty_parts(tracker: str, length: int) -> dict[str, np.ndarray]:
    """NaN arrays of `length` frames for every part the tracker writes."""
    if tracker == "hands":
        return {"hands": np.full((length, HAND_SLOTS, 21, 3), np.nan, np.float32)}
    return {
        part: np.full((length, points, 3), np.nan, np.float32)
        for part, points in PART_POINTS.items()
    }


def _points(landmarks: Any, count: int) -> np.ndarray:
    """MediaPipe landmarks -> `(count, 3)` float32 (its normalised coordinates)."""
    return np.array(
        [(point.x, point.y, point.z) for point in landmarks.landmark[:count]],
        dtype=np.float32,
    )


def _open(mediapipe: ModuleType, tracker: str, model_complexity: int) -> Any:
    if tracker == "hands":
        return mediapipe.solutions.hands.Hands(
            static_image_mode=False,
            max_num_hands=HAND_SLOTS,
            model_complexity=1,
            min_detection_confidence=HAND_DETECTION_CONFIDENCE,
        )
    return mediapipe.solutions.holistic.Holistic(
        static_image_mode=False, model_complexity=model_complexity
    )


def follow(
    frames: Iterable[tuple[int, np.ndarray]],
    *,
    tracker: str = "holistic",
    model_complexity: int = DEFAULT_COMPLEXITY,
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """One tracker over `(row, RGB)` frames in order: `(row, {part: points})` per
    frame, with only the parts found (`hands` holds the found hands, `(n, 21, 3)`).

    Frames are read as they are followed, so a long video is never held whole.

    Raises:
        UserError: mediapipe or a model file is missing.
    """
    mediapipe = load_mediapipe()
    check_model(mediapipe, tracker, model_complexity)
    with _open(mediapipe, tracker, model_complexity) as model:
        for row, image in frames:
            results = model.process(np.ascontiguousarray(image))
            if tracker == "hands":
                found = (results.multi_hand_landmarks or [])[:HAND_SLOTS]
                yield row, (
                    {"hands": np.stack([_points(hand, 21) for hand in found])}
                    if found
                    else {}
                )
                continue
            yield row, {
                part: _points(getattr(results, field), PART_POINTS[part])
                for part, field in RESULT_FIELDS.items()
                if getattr(results, field) is not None
            }


def store(parts: dict[str, np.ndarray], row: int, found: dict[str, np.ndarray]) -> None:
    """Write one frame's `follow` output into `empty_parts` arrays."""
    for part, points in found.items():
        if part == "hands":
            parts["hands"][row, : len(points)] = points
        else:
            parts[part][row] = points


def track(
    frames: Iterable[tuple[int, np.ndarray]],
    length: int,
    *,
    tracker: str = "holistic",
    model_complexity: int = DEFAULT_COMPLEXITY,
    threads: int = 1,
    run_of: Callable[[int], int] | None = None,
) -> dict[str, np.ndarray]:
    """Landmarks of a clip's `(row, RGB frame)` pairs as `(length, ...)` parts.

    With `threads` > 1 the frames are dealt to that many trackers, each on its own
    thread, while `frames` is still being read (a video decodes while the first
    frames are followed): frame `row` goes to tracker `run_of(row)`, or in turn
    without `run_of`. A tracker follows a hand from frame to frame, so runs of
    consecutive frames (`run_of`) give points closer to following every frame.

    Args:
        frames: the frames to follow, rows increasing, each row < `length`.
        length: the clip's frame count (rows not given stay NaN).
        tracker: "hands" or "holistic" (see the module docstring).
        model_complexity: Holistic's pose model.
        threads: trackers working at the same time.
        run_of: which tracker follows the frame of a row (0 .. threads - 1).

    Returns:
        `{"hands": (length, 2, 21, 3)}` or the four Holistic parts, float32, NaN
        where nothing was found or no frame was given.

    Raises:
        UserError: mediapipe or a model file is missing.
    """
    parts = empty_parts(tracker, length)
    load_mediapipe()  # fail (UserError) before any thread starts
    if threads <= 1:
        for row, found in follow(
            frames, tracker=tracker, model_complexity=model_complexity
        ):
            store(parts, row, found)
        return parts
    queues: list[queue.Queue] = [queue.Queue() for _ in range(threads)]

    def received(inbox: queue.Queue, ended: list[bool]) -> Iterator:
        while (item := inbox.get()) is not None:
            yield item
        ended.append(True)

    def run(inbox: queue.Queue) -> None:
        ended: list[bool] = []
        try:
            for row, found in follow(
                received(inbox, ended),
                tracker=tracker,
                model_complexity=model_complexity,
            ):
                store(parts, row, found)
        finally:
            # After an error, drain the inbox so that the reader never waits.
            while not ended and inbox.get() is not None:
                pass

    with ThreadPoolExecutor(max_workers=threads) as pool:
        running = [pool.submit(run, inbox) for inbox in queues]
        try:
            for turn, item in enumerate(frames):
                queues[(run_of(item[0]) if run_of else turn) % threads].put(item)
        finally:
            for inbox in queues:
                inbox.put(None)
        for done in running:
            done.result()
    return parts


def warm_up(tracker: str) -> None:
    """Import mediapipe and run the tracker once on a blank frame, so that the first
    real clip does not pay for loading them (about 2 s)."""
    track([(0, np.zeros((64, 64, 3), np.uint8))], 1, tracker=tracker)
