"""The sign dataset: samples -> clip tensors (frames and/or landmarks, or precomputed
features) -> batches."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset

from config.landmarks import LandmarksParameters
from datasets.frame_cache import FrameCache
from datasets.images import decode_image
from datasets.index import Sample
from datasets.landmark_augment import (
    frame_dropout,
    point_dropout,
    random_affine,
    random_crop,
    resample_speed,
)
from datasets.landmarks import (
    LandmarkMemory,
    PointLayout,
    flip_horizontally,
    prepare_clip,
    require_rows,
)
from datasets.sampling import SamplingOptions, sample_indices
from datasets.ssvp import load_features
from datasets.targets import TextTarget, item_labels, pad_ids
from datasets.videos import read_frames
from utils.errors import DataError


def frames_clip(images: list[np.ndarray], transform, where: object) -> torch.Tensor:
    """Decoded `(H, W, 3)` uint8 images -> the transformed `(T, C, H', W')` clip.

    Raises:
        DataError: the images differ in size (naming `where`).
    """
    if any(image.shape != images[0].shape for image in images):
        raise DataError(f"{where}: the frames of one clip differ in size")
    clip = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    if transform is not None:
        clip = transform(clip)
    return clip.contiguous()


def landmark_clip(
    points: np.ndarray,
    shoulders: np.ndarray | None,
    rows: list[int],
    options: LandmarksParameters,
    layout: PointLayout,
) -> tuple[np.ndarray, np.ndarray]:
    """The normalised `(T, K, 3)` landmarks and `(T, K)` presence of a file's `rows`
    (before any augmentation)."""
    shoulder = shoulders[rows] if shoulders is not None else None
    return prepare_clip(points[rows], shoulder, options, layout)


class SignDataset(Dataset):  # pylint: disable=too-many-instance-attributes
    """Clips of sampled frames and/or landmarks, with their labels.

    A video sample's frames are decoded here, in the loader worker, seeking to the
    sampled frames (`datasets.videos.read_frames`).

    An item is `{"labels": {head: int}, "name": str}` plus `"frames"`: `(T, C, H, W)`
    uint8 when frames are used, and `"landmarks"`: `(T, K, 3)` float32 with
    `"landmark_mask"`: `(T, K)` bool when landmarks are used, or `"features"`:
    `(T, D)` float32 rows of a sample's precomputed features (an SSVP-SLT root);
    `T <= num_segments` (`collate_clips` pads and masks short clips). A sequence
    head's label is its list of class ids, a text head's its sentence's token ids,
    with the sentence in `"texts"`: `{head: str}` (see `datasets.targets`).

    Args:
        samples: the clips.
        sampling: temporal sampling options.
        train: random temporal offsets and landmark flips.
        transform: maps a `(T, C, H, W)` uint8 clip to the model's input size.
        landmarks: the landmark options, or None when landmarks are not used.
        size_hint: decode JPEGs at about this size (draft mode), or None.
        seed: base seed for the random choices.
        cache: decoded, resized frames to read instead of the JPEGs (then `transform`
            holds only the random augmentations).
        text_targets: text head -> its tokenizer (`datasets.targets`).
        feature_dim: the width of precomputed feature rows
            (`feature_extractor.feature_dim`), checked in every file; None: not
            checked.
    """

    def __init__(
        self,
        *,
        samples: list[Sample],
        sampling: SamplingOptions,
        train: bool,
        transform=None,
        landmarks: LandmarksParameters | None = None,
        size_hint: int | None = None,
        seed: int = 0,
        cache: FrameCache | None = None,
        text_targets: dict[str, TextTarget] | None = None,
        feature_dim: int | None = None,
    ) -> None:
        self.samples = samples
        self.feature_dim = feature_dim
        self.text_targets = text_targets or {}
        self.sampling = sampling
        self.train = train
        self.transform = transform
        self.landmarks = landmarks
        self.size_hint = size_hint
        self.seed = seed
        self.cache = cache
        self.rng = random.Random(seed)
        self._layout = PointLayout.of(landmarks.components) if landmarks else None
        self._landmark_files = (
            LandmarkMemory(landmarks.components, landmarks.memory_cache_mb * 2**20)
            if landmarks
            else None
        )
        if sampling.time is not None and sampling.default_fps is None:
            unknown = [s.name for s in samples if s.fps is None and not s.landmark_path]
            if unknown:
                raise DataError(
                    "train_parameters.time needs each sample's FPS, but "
                    f"{len(unknown)} samples (e.g. {unknown[0]}) have no "
                    "<name>_properties.json with an FPS (nor a video rate); set "
                    "train_parameters.default_fps"
                )

    def __len__(self) -> int:
        return len(self.samples)

    def _frames(self, sample: Sample, positions: list[int]) -> torch.Tensor:
        if self.cache is not None and sample in self.cache:
            clip = self.cache.clip(sample, positions)
            return (self.transform(clip) if self.transform else clip).contiguous()
        if sample.video_path is not None:
            images = read_frames(
                sample.video_path,
                [sample.start + i for i in positions],
                size_hint=self.size_hint,
            ).images
        else:
            images = [
                decode_image(sample.frame_paths[i], self.size_hint) for i in positions
            ]
        return frames_clip(images, self.transform, sample.frame_source)

    def _landmarks(
        self, sample: Sample, points: np.ndarray, shoulders, positions: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        require_rows(sample.landmark_path, points, sample.start + sample.length)
        indices = [sample.start + i for i in positions]
        options = self.landmarks
        clip, present = landmark_clip(points, shoulders, indices, options, self._layout)
        if self.train:
            if options.apply_affine:
                clip = random_affine(
                    clip, present, options, self.rng, self._layout.relative
                )
            if options.apply_flip and self.rng.random() < options.flip_probability:
                clip, present = flip_horizontally(clip, present, self._layout.mirror)
            present = point_dropout(
                present, self._layout.groups, options.point_dropout, self.rng
            )
            clip = np.where(present[..., None], clip, 0.0).astype(np.float32)
        return torch.from_numpy(clip), torch.from_numpy(present)

    def _positions(self, sample: Sample, fps: float | None) -> list[int]:
        """The clip positions to load; for training with landmark augmentations, on a
        timeline played at a random speed and cropped, minus dropped frames."""
        options = self.landmarks if self.train else None
        timeline = np.arange(sample.length)
        if options is not None and options.apply_speed:
            low, high = options.speed_range
            timeline = timeline[resample_speed(sample.length, low, high, self.rng)]
        if (
            options is not None
            and options.apply_crop
            and self.rng.random() < options.crop_probability
        ):
            timeline = timeline[
                random_crop(len(timeline), options.crop_min_ratio, self.rng)
            ]
        positions = sample_indices(
            len(timeline),
            self.sampling.num_segments,
            train=self.train,
            rng=self.rng,
            step=self.sampling.step(fps, sample.name),
        )
        if options is not None:
            kept = frame_dropout(len(positions), options.frame_dropout, self.rng)
            positions = positions if kept is None else [positions[i] for i in kept]
        return [int(timeline[i]) for i in positions]

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        item = {"labels": sample.labels, "name": sample.name}
        if any(not isinstance(v, int) for v in sample.labels.values()):
            item["labels"], texts = item_labels(sample.labels, self.text_targets)
            if texts:
                item["texts"] = texts
        points = shoulders = None
        fps = sample.fps
        if self.landmarks is not None:
            points, shoulders, file_fps = self._landmark_files.read(
                sample.landmark_path
            )
            fps = fps or file_fps
        positions = self._positions(sample, fps)
        if sample.has_frames:
            item["frames"] = self._frames(sample, positions)
        if sample.features is not None:
            rows = load_features(
                sample.features, rows=sample.length, dim=self.feature_dim
            )
            item["features"] = rows[[sample.start + i for i in positions]]
        if points is not None:
            item["landmarks"], item["landmark_mask"] = self._landmarks(
                sample, points, shoulders, positions
            )
        return item


def _pad(tensors: list[torch.Tensor], length: int) -> torch.Tensor:
    """Stack `(T_i, ...)` tensors into `(B, length, ...)`, zero-padded in time."""
    first = tensors[0]
    out = first.new_zeros((len(tensors), length, *first.shape[1:]))
    for row, tensor in enumerate(tensors):
        out[row, : tensor.shape[0]] = tensor
    return out


def collate_clips(items: list[dict]) -> dict:
    """Batch clips of different lengths: zero-pad in time and mark real frames.

    Returns:
        `{"mask": (B, T) bool, "labels": {head: (B,) long}, "name": [str]}` plus
        `"frames": (B, T, C, H, W) uint8` and/or `"landmarks": (B, T, K, 3) float`
        with `"landmark_mask": (B, T, K) bool`, or `"features": (B, T, D) float`
        (precomputed feature rows). A sequence or text head's labels
        are `(B, L)` long padded with `IGNORE_INDEX`, and the sentences of text
        heads are in `"texts": {head: [str]}` (`""` = no label).
    """
    key = next(k for k in ("frames", "landmarks", "features") if k in items[0])
    lengths = [item[key].shape[0] for item in items]
    longest = max(lengths)
    sequences = [h for h, v in items[0]["labels"].items() if isinstance(v, list)]
    heads = [head for head in items[0]["labels"] if head not in sequences]
    # One (heads, B) tensor whose rows are the heads' labels: a loader worker hands
    # every tensor storage to the main process separately, which costs about as much
    # as a clip's augmentations; nine heads in one storage make that one hand-over.
    labels = torch.tensor(
        [[item["labels"][head] for item in items] for head in heads], dtype=torch.long
    )
    batch = {
        "mask": torch.arange(longest)[None, :] < torch.tensor(lengths)[:, None],
        "labels": dict(zip(heads, labels)),
        "name": [item["name"] for item in items],
    }
    if sequences:
        padded = {h: pad_ids([item["labels"][h] for item in items]) for h in sequences}
        batch["labels"] = {
            h: batch["labels"].get(h, padded.get(h)) for h in items[0]["labels"]
        }
    if "texts" in items[0]:
        batch["texts"] = {
            head: [item["texts"][head] for item in items] for head in items[0]["texts"]
        }
    if "frames" in items[0]:
        shapes = {tuple(item["frames"].shape[1:]) for item in items}
        if len(shapes) > 1:
            raise DataError(
                f"clips of one batch have different frame sizes {sorted(shapes)}; "
                "enable augmentations_parameters.apply_resize and apply_center_crop"
            )
        batch["frames"] = _pad([item["frames"] for item in items], longest)
    if "landmarks" in items[0]:
        batch["landmarks"] = _pad([item["landmarks"] for item in items], longest)
        batch["landmark_mask"] = _pad(
            [item["landmark_mask"] for item in items], longest
        )
    if "features" in items[0]:
        batch["features"] = _pad([item["features"] for item in items], longest)
    return batch


def worker_init_fn(worker_id: int) -> None:
    """Give every loader worker its own random stream for training offsets."""
    info = torch.utils.data.get_worker_info()
    dataset = info.dataset
    dataset.rng = random.Random(hash((dataset.seed, worker_id, torch.initial_seed())))
