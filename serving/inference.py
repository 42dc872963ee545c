"""One uploaded video -> the model's top-5 per head, a landmark strip and timings.

The clip is made exactly as `predict.py` makes it for a video file
(`evaluation.prediction.load_clip`): for models that read landmarks, signpipe's one
extraction (`evaluation.prediction.extract_clip`: MediaPipe Hands for hands-only
models, Holistic otherwise) on the frames the model samples, and the strip drawn from
those same decoded frames and points; frames decoded with PyAV and the
checkpoint's evaluation transform for image models, and the strip drawn from those
transformed frames (what the model saw); the checkpoint's temporal sampling. The
strip never decodes the video again: a long video with few key frames would cost a
second full decode. The model is a torch checkpoint or an exported
ONNX file (`evaluation.onnx_backend`); both are called with the same batch. With
an ensemble, a torch checkpoint's class probabilities are averaged with those of
more checkpoints (`evaluation.ensemble.average_checkpoints`).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from datasets.clip_landmarks import extract_item
from datasets.landmarks import read_landmarks
from datasets.sign_dataset import collate_clips
from datasets.tracking import check_installed, tracker_for, warm_up
from evaluation.checkpoints import (
    LoadedModel,
    load_checkpoint,
    refuse_precomputed_features,
    refuse_sequence_heads,
)
from evaluation.ensemble import AveragedModel, average_checkpoints
from evaluation.onnx_backend import load_onnx
from evaluation.prediction import (
    ClipOptions,
    PredictionInput,
    extract_clip,
    load_clip,
    plan_video,
)
from serving.overlay import (
    DRAWN_COMPONENTS,
    as_data_url,
    render_strip,
    strip_positions,
)
from utils.errors import UserError

TOP_K = 5
#: Frames shown in the landmark strip.
STRIP_FRAMES = 4


class Busy(Exception):
    """Too many requests are waiting; the client should retry later."""


@contextlib.contextmanager
def timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Add the milliseconds the block took to `timings[step]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = timings.get(step, 0.0) + (time.perf_counter() - start) * 1e3


def load_model(path: Path, ensemble: Sequence[Path] = ()) -> tuple[LoadedModel, str]:
    """A `.onnx` export (onnxruntime) or a `train.py` checkpoint (torch, CPU), and
    the backend's name.

    Args:
        path: the model file.
        ensemble: more train.py checkpoints or model zoo names whose class
            probabilities are averaged with the checkpoint's (not with an export).

    Raises:
        UserError: the file is missing or not a model either loader reads, or an
            ensemble member does not fit the checkpoint.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        if ensemble:
            raise UserError(
                f"{path}: --ensemble averages train.py checkpoints, not an export.py "
                "model; serve the checkpoint it was exported from (or its zoo name)"
            )
        return load_onnx(path), "onnx"
    loaded = load_checkpoint(path, torch.device("cpu"))
    if loaded.config.train_parameters.pre_training:
        raise UserError(
            f"{path}: a pretraining checkpoint has no trained heads to show; "
            "fine-tune it first (train.py --checkpoint)"
        )
    for refuse in (refuse_sequence_heads, refuse_precomputed_features):
        refuse(loaded.config, path, "run in the demo; test.py evaluates the checkpoint")
    if ensemble:
        loaded = average_checkpoints(
            loaded,
            str(path),
            ensemble,
            "average (--ensemble); test.py evaluates the checkpoint",
        )
    return loaded, "torch"


@dataclass
class VideoFile:
    """An upload saved to disk, and the name to call it by in messages."""

    path: Path
    display_name: str


class DemoService:
    """The model and the preprocessing behind the demo, safe to call from threads.

    At most `workers` clips are processed at once and at most `max_waiting` more
    wait for a turn (`Busy` beyond that); the model itself is called by one thread
    at a time.

    Args:
        loaded: the model, its config and class names.
        backend: `torch` or `onnx`, for the page.
        workers: clips processed at the same time.
        max_waiting: requests allowed to wait for a turn.
        warm_up_now: start loading MediaPipe at once; False leaves it to
            `start_warm_up` (the server calls it once it answers) or the first clip.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        backend: str = "torch",
        *,
        workers: int = 1,
        max_waiting: int = 16,
        warm_up_now: bool = True,
    ) -> None:
        self.loaded = loaded
        self.backend = backend
        self.options = ClipOptions.from_config(loaded.config, all_frames=False)
        self.modes = loaded.config.head_modes()
        self.tracker = (
            tracker_for(self.options.landmarks.components)
            if self.options.landmarks is not None
            else "holistic"
        )
        self.mediapipe_ready = self._check_mediapipe()
        self._model_lock = threading.Lock()
        self._turns = threading.Semaphore(workers)
        self._waiting = threading.BoundedSemaphore(workers + max_waiting)
        # MediaPipe loads in the background: the server answers at once, and the
        # first clip waits for it only if it comes in the first seconds.
        self._warm = threading.Event()
        self._warm_error: str | None = None
        self._warming = threading.Lock()
        if not self.mediapipe_ready:
            self._warm.set()
        elif warm_up_now:
            self.start_warm_up()

    def _check_mediapipe(self) -> bool:
        """Whether landmarks can be extracted (checked without importing mediapipe);
        required for landmark models."""
        try:
            check_installed(self.tracker)
        except UserError:
            if self.options.landmarks is not None:
                raise
            return False
        return True

    def start_warm_up(self) -> None:
        """Load MediaPipe on a background thread (once; later calls do nothing)."""
        # Never released: the warm-up runs once.
        # pylint: disable-next=consider-using-with
        if self._warming.acquire(blocking=False):
            threading.Thread(target=self._warm_up, daemon=True).start()

    def _warm_up(self) -> None:
        try:
            warm_up(self.tracker)
        except Exception as error:  # pylint: disable=broad-exception-caught
            # Reported with the first clip that needs MediaPipe.
            self._warm_error = f"{type(error).__name__}: {error}"
        finally:
            self._warm.set()

    def ready(self) -> bool:
        """Whether MediaPipe has loaded (clips are answered before that, later)."""
        return self._warm.is_set()

    def info(self) -> dict:
        """What the page shows about the model."""
        config = self.loaded.config
        return {
            "backend": self.backend,
            "feature_extractor": config.feature_extractor.name,
            "transformer": config.transformer.name,
            "reads": [
                name
                for name, used in (
                    ("frames", config.uses_frames()),
                    ("landmarks", config.uses_landmarks()),
                )
                if used
            ],
            "heads": {
                head: self.modes.get(head, "gloss") for head in self.loaded.label_names
            },
            "num_segments": config.train_parameters.num_segments,
            "tracker": self.tracker if self.options.landmarks is not None else None,
            "ensemble": self.ensemble(),
            "ready": self.ready(),
        }

    def ensemble(self) -> list[str]:
        """The checkpoints averaged with the served one (`--ensemble`), if any."""
        model = self.loaded.model
        return model.names[1:] if isinstance(model, AveragedModel) else []

    def predict(self, video: VideoFile) -> dict:
        """Run one saved upload through preprocessing and the model.

        Returns:
            `{"heads": {head: [{"label", "probability"}] * 5}, "head_kinds",
            "timings_ms", "frames": {"num_frames", "positions", "fps"},
            "landmark_strip": data URL or None, "landmarks_drawn": int}`.

        Raises:
            UserError: the file is not a readable video (the message names the
                upload, not the temporary file).
            Busy: too many requests are waiting.
        """
        # Released in `finally` below: a `with` block cannot be entered without waiting.
        # pylint: disable-next=consider-using-with
        if not self._waiting.acquire(blocking=False):
            raise Busy("the server is busy; try again in a moment")
        try:
            with self._turns:
                return self._predict(video)
        except UserError as error:
            raise UserError(
                str(error).replace(str(video.path), video.display_name)
            ) from None
        finally:
            self._waiting.release()

    def _predict(self, video: VideoFile) -> dict:
        timings: dict[str, float] = {}
        if self.mediapipe_ready:
            self.start_warm_up()
            with timed(timings, "warm_up"):
                self._warm.wait()
            if self._warm_error and self.options.landmarks is not None:
                raise UserError(f"MediaPipe did not load ({self._warm_error})")
            if timings["warm_up"] < 1.0:
                del timings["warm_up"]
        with timed(timings, "probe"):
            plan = plan_video(video.path, self.options)
        item = PredictionInput(video.path.stem, video.path)
        shown: dict[int, np.ndarray] = {}
        points_file = None
        if self.options.landmarks is not None:
            points_file = video.path.parent / item.name / f"{item.name}.npz"
            with timed(timings, "landmarks"):
                # Where load_clip finds it; the sampled frames come back decoded,
                # for the strip to show those where landmarks were found.
                shown = extract_clip(
                    video.path, points_file, self.options, plan, frozenset(plan[2])
                )
        with timed(timings, "decode"):
            clip = load_clip(item, self.options)
        batch = collate_clips([clip])
        tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        with timed(timings, "model"), self._model_lock, torch.inference_mode():
            logits = self.loaded.model(tensors)["logits"]
        heads = {
            head: self._top(head, torch.softmax(values[0].float(), -1).numpy())
            for head, values in logits.items()
        }
        with timed(timings, "overlay"):
            strip, drawn = self._strip(clip, shown, points_file)
        timings["total"] = sum(timings.values())
        return {
            "heads": heads,
            "head_kinds": {head: self.modes.get(head, "gloss") for head in heads},
            "timings_ms": {step: round(ms, 1) for step, ms in timings.items()},
            "frames": {
                "num_frames": clip["num_frames"],
                "positions": list(clip["positions"]),
                "fps": plan[1],
            },
            "landmark_strip": as_data_url(strip) if strip else None,
            "landmarks_drawn": drawn,
        }

    def _top(self, head: str, probabilities: np.ndarray) -> list[dict]:
        """The top-5 classes of a head with their probabilities."""
        names = self.loaded.label_names[head]
        order = np.argsort(-probabilities, kind="stable")[:TOP_K]
        return [
            {"label": names[i], "probability": round(float(probabilities[i]), 6)}
            for i in order
        ]

    def _strip(
        self, clip: dict, shown: dict[int, np.ndarray], points_file: Path | None
    ) -> tuple[bytes | None, int]:
        """A few of the clip's frames with their landmarks, nothing decoded again:
        for a landmark model, frames it read where landmarks were found (`shown`, kept
        by the extraction), with the points it read; for an image model, the clip's
        own transformed `frames` `(T, C, H, W)`, with Holistic run on these frames
        alone."""
        wanted = strip_positions(clip["positions"], STRIP_FRAMES)
        if points_file is not None:
            all_points = read_landmarks(points_file, DRAWN_COMPONENTS)[0]
            found = [
                index
                for index in sorted(shown)
                if index < len(all_points) and np.isfinite(all_points[index]).any()
            ]
            picked = strip_positions(found, STRIP_FRAMES) if found else wanted
            picked = [index for index in picked if index in shown]
            if not picked:
                return None, 0
            return render_strip(
                [shown[index] for index in picked],
                [all_points[index] for index in picked],
            )
        if "frames" not in clip or not wanted:
            return None, 0
        rows = [clip["positions"].index(position) for position in wanted]
        images = [
            np.ascontiguousarray(clip["frames"][row].permute(1, 2, 0).numpy())
            for row in rows
        ]
        points: list[np.ndarray | None] = [None] * len(images)
        if self.mediapipe_ready and not self._warm_error:
            points = self._points_of(images)
        return render_strip(images, points)

    @staticmethod
    def _points_of(images: list[np.ndarray]) -> list[np.ndarray | None]:
        """Holistic landmarks of a few frames, by extract_item over them as a frame
        folder."""
        with tempfile.TemporaryDirectory(prefix="signpipe-strip-") as scratch:
            folder = Path(scratch) / "strip"
            folder.mkdir()
            for index, image in enumerate(images):
                Image.fromarray(image).save(folder / f"strip_{index}.png")
            result = extract_item("strip", folder, Path(scratch) / "out", 1, None)
            if result.error:
                raise UserError(f"landmark extraction failed ({result.error})")
            found = read_landmarks(
                Path(scratch) / "out" / "strip" / "strip.npz", DRAWN_COMPONENTS
            )[0]
        return list(found)
