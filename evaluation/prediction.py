"""For `predict.py`: videos and frame folders -> clips for a checkpoint's model.

Everything comes from the checkpoint (`evaluation.checkpoints.load_checkpoint`): the
model, its config (evaluation transforms, `num_segments` / `time` sampling,
landmarks) and the class names. An input (a video
file or a frame folder) becomes one clip the way `SignDataset` builds evaluation clips:
deterministic, evenly spread frames (`sample_indices(train=False)`), resized and
centre-cropped by the evaluation transform; or, with `all_frames`, every frame. A
video's sampled frames are decoded by seeking (`datasets.videos.read_frames`), as in
training; only `all_frames` decodes a whole video.
Models that read landmarks get them from a landmark file beside the input, or from
signpipe's one extraction (`datasets.tracking`): MediaPipe Hands for models
that read only hands, Holistic otherwise, run on a video's sampled frames only.

A dataset root (a folder holding the annotation file(s) the checkpoint's config
names, `test_<mode>.txt` by default; or a video manifest `.csv`) is read the way
training reads it: each annotated sample (a frame folder or a video) is one input,
and its clip is made by `SignDataset` itself from the annotated `start..end` frames,
so `predict.py` and `test.py` see the same clips.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from config.schema import AnnotationSource, LandmarksParameters, SignpipeConfig
from datasets.clip_landmarks import extract_item, extract_video
from datasets.index import (
    Sample,
    index_samples,
    list_frames,
    read_fps,
    read_root_annotations,
)
from datasets.landmarks import (
    PointLayout,
    landmark_file,
    read_landmarks,
    require_rows,
)
from datasets.sampling import SamplingOptions
from datasets.sign_dataset import (
    SignDataset,
    collate_clips,
    decode_image,
    frames_clip,
    landmark_clip,
)
from datasets.tracking import (
    DEFAULT_COMPLEXITY,
    check_model,
    load_mediapipe,
    tracker_for,
)
from datasets.transforms import build_clip_transform, decode_size_hint
from datasets.video_files import find_videos
from datasets.videos import VideoReader, frame_table, probe_video, read_frames
from utils.annotations import is_manifest
from utils.constants import EMBEDDING_KINDS, IMAGE_SUFFIXES
from utils.errors import DataError, UserError
from utils.files import NOT_FOUND, check_unique_names, path_problem

#: Video frames are resized/cropped in chunks of this many while decoding.
VIDEO_CHUNK = 64


def resolve_kind(text: str) -> str:
    """The embedding kind named by `text` (case-insensitive); `UserError` otherwise."""
    for kind in EMBEDDING_KINDS:
        if kind.lower() == text.lower():
            return kind
    allowed = ", ".join(EMBEDDING_KINDS)
    raise UserError(f"--embedding_kind: unknown kind '{text}'; allowed: {allowed}")


@dataclass(frozen=True)
class PredictionInput:
    """One input: a video file, or the images of a frame folder in frame order.

    Attributes:
        name: the output name (the video's stem or the folder's name).
        source: the video file or the frame folder.
        frame_paths: the folder's images in frame order; empty for a video.
        frame_ids: each image's row in a landmark file: its index `idx` for
            `<name>_<idx>` files (as extract_landmarks writes rows), else 0, 1, ...
        indexed: whether the images are named `<name>_<idx>.<suffix>`.
        sample: the annotated sample of a dataset root (its `start..end` frames
            and landmark file), or None for a bare video or frame folder.
    """

    name: str
    source: Path
    frame_paths: tuple[Path, ...] = ()
    frame_ids: tuple[int, ...] = ()
    indexed: bool = False
    sample: Sample | None = None

    @property
    def is_video(self) -> bool:
        """Whether the input is a video file."""
        return not self.frame_paths and self.sample is None


def natural_key(path: Path) -> tuple:
    """Sort key: digit runs compare as numbers (`f2` before `f10`), then the name."""
    parts = re.split(r"(\d+)", path.stem, flags=re.ASCII)
    return (
        tuple(int(part) if part.isdigit() else part.lower() for part in parts),
        path.name,
    )


def frame_folder_input(folder: Path) -> PredictionInput | None:
    """The folder's frames: `<name>/<name>_<idx>.<img>` files, else all its images in
    numeric order; None when it holds no images."""
    indexed = list_frames(folder, folder.name)
    if indexed:
        ids = sorted(indexed)
        return PredictionInput(
            folder.name, folder, tuple(indexed[i] for i in ids), tuple(ids), True
        )
    images = sorted(
        (
            path
            for path in folder.iterdir()
            if path.is_file()
            and not path.name.startswith(".")
            and path.suffix.lower() in IMAGE_SUFFIXES
        ),
        key=natural_key,
    )
    if not images:
        return None
    return PredictionInput(
        folder.name, folder, tuple(images), tuple(range(len(images))), False
    )


def annotation_paths(
    config: SignpipeConfig, root: Path, annotation_file: AnnotationSource
) -> list[Path]:
    """The files of one annotation source of the config, in `root`; empty for an
    absolute file name (it does not tell whether `root` is a dataset root)."""
    if annotation_file is None:
        names = [f"test_{mode}.txt" for mode in config.train_parameters.modes()]
    elif isinstance(annotation_file, dict):
        names = list(annotation_file.values())
    else:
        names = [annotation_file]
    if any(Path(name).is_absolute() for name in names):
        return []
    return [root / name for name in names]


def dataset_inputs(
    root: Path, config: SignpipeConfig
) -> tuple[list[PredictionInput], list[Path]] | None:
    """The annotated samples of a dataset root, as training indexes them.

    `root` is a dataset root when it holds every file of one of the config's
    annotation sources (`general_parameters.annotation_file`; null: `test_<mode>.txt`
    for each classification mode). Its rows are read and its samples found by
    `datasets.index` (the same reader and checks as training).

    Returns:
        The inputs (one per annotated sample, in annotation order) and the
        annotation files read; None when `root` is not a dataset root.

    Raises:
        DataError: a bad annotation line, or missing frames or landmark files.
    """
    if is_manifest(root):
        return _indexed_inputs(config, root, None), [root]
    tried = []
    for annotation_file in config.general_parameters.annotation_files():
        if annotation_file in tried:
            continue
        tried.append(annotation_file)
        paths = annotation_paths(config, root, annotation_file)
        if not paths or not all(path.is_file() for path in paths):
            continue
        return _indexed_inputs(config, root, annotation_file), paths
    return None


def _indexed_inputs(
    config: SignpipeConfig, root: Path, annotation_file: AnnotationSource
) -> list[PredictionInput]:
    """The samples of a dataset root (or a video manifest) as training indexes them."""
    rows = read_root_annotations(config, root, annotation_file)
    samples = index_samples(
        rows, root, frames=config.uses_frames(), landmarks=config.uses_landmarks()
    )
    return [
        PredictionInput(
            sample.name,
            sample.video_path or root / sample.name,
            sample=sample,
        )
        for sample in samples
    ]


def check_input(source: Path) -> None:
    """`UserError` unless `source` is a folder or a regular file. Checked before
    anything opens it: a FIFO would wait for a writer for ever, and a device such
    as `/dev/zero` never ends."""
    if Path(source).is_dir():
        return
    problem = path_problem(Path(source))
    if problem == NOT_FOUND:
        raise UserError(f"input {source} does not exist")
    if problem is not None:
        raise UserError(
            f"input {source} {problem}; give a folder of videos and frame folders, "
            "a video file or a frame folder"
        )


def list_inputs(
    source: Path, config: SignpipeConfig | None = None
) -> list[PredictionInput]:
    """The videos and frame folders directly in `source`, or `source` itself.

    `source` may also be a single video file, or one frame folder (holding images
    and no videos or image folders). With the checkpoint's `config`, a dataset root
    or a video manifest `.csv` (see `dataset_inputs`) gives its annotated samples
    instead, and a note saying which annotation files were read goes to stderr.

    Raises:
        UserError: `source` does not exist, is neither a folder nor a regular file
            (a FIFO, a device), holds no inputs, or two inputs share a name (and so
            an output file).
        DataError: `source` is a dataset root with bad annotations or missing files.
    """
    source = Path(source)
    check_input(source)
    if source.is_file() and not (config is not None and is_manifest(source)):
        return [PredictionInput(source.stem, source)]
    found = dataset_inputs(source, config) if config is not None else None
    if found is not None:
        inputs, paths = found
        if not inputs:
            raise UserError(f"{', '.join(map(str, paths))}: no annotated samples")
        print(
            f"note: {source} is a dataset root: read {', '.join(map(str, paths))}; "
            f"predicting its {len(inputs)} annotated samples on their start..end "
            "frames, as test.py does",
            file=sys.stderr,
        )
        return inputs
    own = list_frames(source, source.name)
    if own:
        return [frame_folder_input(source)]
    items = [PredictionInput(video.stem, video) for video in find_videos(source)]
    folders = sorted(
        path
        for path in source.iterdir()
        if path.is_dir() and not path.name.startswith(".")
    )
    items += [item for item in map(frame_folder_input, folders) if item is not None]
    if not items and (single := frame_folder_input(source)) is not None:
        items = [single]
    if not items:
        raise UserError(
            f"no videos and no frame folders in {source} (expected video files such "
            "as .mp4, or folders of images such as <name>/<name>_<idx>.jpg)"
        )
    check_unique_names([item.source for item in items], [item.name for item in items])
    return items


@dataclass
class ClipOptions:
    """How an input becomes a clip (from the checkpoint's config).

    Attributes:
        transform: the evaluation transform of `(T, C, H, W)` uint8 clips (None for
            a model that reads no frames).
        size_hint: decode JPEG frames at about this size (draft mode), or None.
        sampling: the training run's temporal sampling, applied as for evaluation
            clips; None takes every frame (`--all_frames`).
        landmarks: the landmark options when the model reads landmarks, else None.
        frames: whether the model reads image frames.
    """

    transform: torch.nn.Module | None
    size_hint: int | None
    sampling: SamplingOptions | None
    landmarks: LandmarksParameters | None
    frames: bool

    @classmethod
    def from_config(cls, config: SignpipeConfig, *, all_frames: bool) -> ClipOptions:
        """The evaluation clip options of a config; every frame with `all_frames`."""
        augmentations = config.augmentations_parameters
        train = config.train_parameters
        return cls(
            # Only models that read frames transform them (a landmark model's
            # predictions never load torchvision's transforms).
            transform=(
                build_clip_transform(augmentations, train=False)
                if config.uses_frames()
                else None
            ),
            size_hint=decode_size_hint(augmentations),
            sampling=(
                None
                if all_frames
                else SamplingOptions(train.num_segments, train.time, train.default_fps)
            ),
            landmarks=config.landmarks_parameters if config.uses_landmarks() else None,
            frames=config.uses_frames(),
        )


def existing_landmarks(item: PredictionInput) -> Path | None:
    """A landmark file made for the input: `<name>.npz|.pose` in a frame folder; for a
    video beside it or in `<name>/` beside it (extract_landmarks' output layout)."""
    if not item.is_video:
        return landmark_file(item.source, item.name)
    folder = item.source.parent
    return landmark_file(folder, item.name) or landmark_file(
        folder / item.name, item.name
    )


def check_extraction(inputs: list[PredictionInput], options: ClipOptions) -> None:
    """Fail early (`UserError`) when landmarks must be extracted but cannot be."""
    if options.landmarks is None:
        return
    if any(existing_landmarks(item) is None for item in inputs):
        check_model(load_mediapipe(), tracker_for(options.landmarks.components))


def plan_video(
    source: Path, options: ClipOptions
) -> tuple[int, float | None, list[int]]:
    """A video's frame count and rate (from its container) and the frames the model
    reads of it."""
    meta = probe_video(source)
    return meta.frames, meta.fps, clip_positions(meta.frames, options, meta.fps, source)


def extract_clip(
    source: Path,
    target: Path,
    options: ClipOptions,
    plan: tuple[int, float | None, list[int]],
    keep: frozenset[int] = frozenset(),
) -> dict[int, np.ndarray]:
    """The landmarks the model reads of a video (`plan_video`), into `target`: the
    tracker its components need, on the sampled frames only; the `keep` frames'
    decoded images (for drawing)."""
    length, _, positions = plan
    return extract_video(
        source,
        target,
        tracker=tracker_for(options.landmarks.components),
        rows=positions,
        length=length,
        keep=keep,
    )


def _extract(
    item: PredictionInput, scratch: Path, options: ClipOptions
) -> tuple[Path, list[int] | None]:
    """Extract the input's landmarks into `scratch`: the `.npz` written, and for a
    video the frames it was extracted for (the clip's positions)."""
    if item.is_video:
        plan = plan_video(item.source, options)
        target = scratch / "landmarks" / f"{item.name}.npz"
        extract_clip(item.source, target, options, plan)
        return target, plan[2]
    source = item.source
    if not item.is_video and not item.indexed:
        # extract_item reads `<name>_<idx>` frames: link the images under such names.
        source = scratch / "frames" / item.name
        source.mkdir(parents=True)
        for index, path in enumerate(item.frame_paths):
            link = source / f"{item.name}_{index}{path.suffix.lower()}"
            try:
                link.symlink_to(path.resolve())
            except OSError:
                shutil.copyfile(path, link)
    result = extract_item(
        item.name,
        source,
        scratch / "landmarks",
        DEFAULT_COMPLEXITY,
        None,
        tracker_for(options.landmarks.components),
    )
    if result.error:
        raise DataError(f"{item.source}: landmark extraction failed ({result.error})")
    return scratch / "landmarks" / item.name / f"{item.name}.npz", None


def decode_video_clip(
    path: Path, transform: torch.nn.Module
) -> tuple[torch.Tensor, float]:
    """Every frame of a video, transformed while decoding (memory stays small).

    The evaluation transform (resize, centre crop) treats each frame alone, so
    transforming in chunks equals transforming the sampled frames afterwards.

    Returns:
        The `(N, C, H, W)` uint8 frames and the video's frame rate.
    """
    chunks, pending = [], []
    with VideoReader(path) as reader:
        fps = reader.info.fps
        for image in reader:
            pending.append(image)
            if len(pending) == VIDEO_CHUNK:
                chunks.append(frames_clip(pending, transform, path))
                pending = []
    if pending:
        chunks.append(frames_clip(pending, transform, path))
    return torch.cat(chunks), fps


def _folder_frames(
    item: PredictionInput, positions: list[int], options: ClipOptions
) -> torch.Tensor:
    """The transformed frames at `positions` of a frame folder (as `SignDataset`)."""
    images = [decode_image(item.frame_paths[i], options.size_hint) for i in positions]
    return frames_clip(images, options.transform, item.source)


def clip_positions(
    length: int, options: ClipOptions, fps: float | None, source: Path
) -> list[int]:
    """Which of `length` frames go into the model: evaluation sampling, or all."""
    if options.sampling is None:
        return list(range(length))
    return options.sampling.evaluation_positions(length, fps, source)


def _landmark_clip(
    points: np.ndarray,
    shoulders: np.ndarray | None,
    rows: list[int],
    parameters: LandmarksParameters,
    source: Path,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised `(T, K, 3)` landmarks and `(T, K)` presence at `rows`, as trained."""
    if rows:
        require_rows(source, points, max(rows) + 1)
    clip, present = landmark_clip(
        points, shoulders, rows, parameters, PointLayout.of(parameters.components)
    )
    return torch.from_numpy(clip), torch.from_numpy(present)


def sample_clip(item: PredictionInput, options: ClipOptions) -> dict:
    """An annotated sample's clip, made by `SignDataset` as for evaluation.

    `positions` are the frame indices used (`<name>_<idx>`, within `start..end`) and
    `num_frames` the annotated length; with `all_frames`, every annotated frame.
    """
    sample = item.sample
    sampling = options.sampling or SamplingOptions(max(1, sample.length))
    dataset = SignDataset(
        samples=[sample],
        sampling=sampling,
        train=False,
        transform=options.transform,
        landmarks=options.landmarks,
        size_hint=options.size_hint,
    )
    clip = dataset[0]
    fps = sample.fps
    if fps is None and sampling.time is not None and sample.landmark_path:
        fps = read_landmarks(sample.landmark_path, options.landmarks.components)[2]
    positions = sampling.evaluation_positions(sample.length, fps, sample.name)
    clip.update(
        name=item.name,
        source=str(item.source),
        labels={},
        positions=[sample.start + position for position in positions],
        num_frames=sample.length,
    )
    return clip


def _input_landmarks(item: PredictionInput, options: ClipOptions) -> tuple:
    """An input's landmarks, shoulders and fps (`read_landmarks`), from its own file
    or extracted; and for an extracted video the positions extracted (else None)."""
    with tempfile.TemporaryDirectory(prefix="signpipe-predict-") as scratch:
        path, planned = existing_landmarks(item), None
        if path is None:
            path, planned = _extract(item, Path(scratch), options)
        return (*read_landmarks(path, options.landmarks.components), planned)


def _clip_frames(
    item: PredictionInput,
    positions: list[int],
    options: ClipOptions,
    video: torch.Tensor | None,
) -> torch.Tensor:
    """The transformed frames of an input at `positions`."""
    if video is not None:
        return video[positions]
    if item.is_video:
        # Full-size frames, as `all_frames` decodes them, so that sampling only
        # picks frames and never changes their pixels.
        images = read_frames(item.source, positions).images
        return frames_clip(images, options.transform, item.source)
    return _folder_frames(item, positions, options)


def load_clip(item: PredictionInput, options: ClipOptions) -> dict:
    """One input as a `SignDataset`-style item (for `collate_clips`).

    Returns:
        `{"name", "source", "labels": {}, "positions": [int], "num_frames": int}`
        plus `"frames"` `(T, C, H, W)` uint8 and/or `"landmarks"` `(T, K, 3)` with
        `"landmark_mask"` `(T, K)`; `positions` are the 0-based frames used, of
        `num_frames`.

    Raises:
        DataError: the input cannot be read (or its landmarks cannot be made).
    """
    if item.sample is not None:
        return sample_clip(item, options)
    points = shoulders = fps = planned = None
    if options.landmarks is not None:
        points, shoulders, fps, planned = _input_landmarks(item, options)
    video = None
    if item.is_video and options.frames and options.sampling is None:
        video, fps = decode_video_clip(item.source, options.transform)
        length = len(video)
    elif item.is_video and options.frames:
        length, fps = frame_table(item.source).frames, probe_video(item.source).fps
    elif item.is_video:
        length = len(points)
    else:
        length = len(item.frame_paths)
        if item.indexed:
            fps = read_fps(item.source, item.name) or fps
    positions = planned
    if not positions or max(positions) >= length:
        positions = clip_positions(length, options, fps, item.source)
    clip = {
        "name": item.name,
        "source": str(item.source),
        "labels": {},
        "positions": positions,
        "num_frames": length,
    }
    if options.frames:
        clip["frames"] = _clip_frames(item, positions, options, video)
    if points is not None:
        rows = positions if item.is_video else [item.frame_ids[i] for i in positions]
        clip["landmarks"], clip["landmark_mask"] = _landmark_clip(
            points, shoulders, rows, options.landmarks, item.source
        )
    return clip


def _error_text(error: Exception) -> str:
    """A one-line reason: a user error's message, else the exception's type and text."""
    if isinstance(error, UserError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class PredictionDataset(Dataset):
    """Inputs -> clips; a broken input gives `{"name", "source", "error"}` instead.

    Args:
        inputs: the inputs.
        options: how clips are made.
    """

    def __init__(self, inputs: list[PredictionInput], options: ClipOptions) -> None:
        self.inputs = inputs
        self.options = options

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> dict:
        item = self.inputs[index]
        try:
            return load_clip(item, self.options)
        except Exception as error:  # pylint: disable=broad-exception-caught
            # One broken input must not stop the others; it is listed at the end.
            return {
                "name": item.name,
                "source": str(item.source),
                "error": _error_text(error),
            }


META_KEYS = ("name", "source", "positions", "num_frames")


def collate_inputs(
    items: list[dict],
) -> tuple[list[tuple[list[dict], dict]], list[dict]]:
    """Batch loaded clips with `collate_clips`; set broken inputs apart.

    Clips whose frames differ in size (no resize/crop in the config) go into
    separate batches.

    Returns:
        `(metadata of each clip, batch)` pairs, and the failed items.
    """
    failed = [item for item in items if "error" in item]
    groups: dict[tuple, list[dict]] = {}
    for item in items:
        if "error" not in item:
            key = tuple(item["frames"].shape[1:]) if "frames" in item else ()
            groups.setdefault(key, []).append(item)
    batches = [
        (
            [{key: item[key] for key in META_KEYS} for item in group],
            collate_clips(group),
        )
        for group in groups.values()
    ]
    return batches, failed
