"""The sign dataset: annotation rows -> samples with frame paths -> clip tensors."""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from datasets.annotations import (
    MAX_REPORTED,
    AnnotationRow,
    check_label_ranges,
    read_annotation_file,
)
from datasets.sampling import sample_indices
from models.heads import IGNORE_INDEX
from utils.config import SignpipeConfig
from utils.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Sample:
    """One clip: where its frames are and its labels."""

    name: str
    frame_paths: list[Path]
    labels: dict[str, int]
    fps: float | None = None


def list_frames(sample_dir: Path, name: str) -> dict[int, Path]:
    """Frame index -> path of the `<name>_<idx>.<image suffix>` files, in one scan."""
    pattern = re.compile(re.escape(name) + r"_(\d+)$")
    frames = {}
    with os.scandir(sample_dir) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            match = pattern.match(stem)
            if match and suffix.lower() in IMAGE_SUFFIXES:
                frames[int(match.group(1))] = Path(entry.path)
    return frames


def _read_fps(sample_dir: Path, name: str) -> float | None:
    path = sample_dir / f"{name}_properties.json"
    if not path.is_file():
        return None
    try:
        fps = json.loads(path.read_text(encoding="utf-8")).get("FPS")
    except (json.JSONDecodeError, AttributeError) as error:
        raise DataError(f"{path}: not a JSON object with an FPS ({error})") from None
    return float(fps) if fps else None


def _join_rows(files: list[tuple[Path, list[AnnotationRow]]]) -> list[AnnotationRow]:
    """Join the rows of several annotation files (one per head group) on sample name."""
    joined: dict[str, AnnotationRow] = {}
    for _, rows in files:
        for row in rows:
            if row.name not in joined:
                joined[row.name] = AnnotationRow(
                    row.name, row.start, row.end, dict(row.labels), row.source
                )
                continue
            first = joined[row.name]
            if (first.start, first.end) != (row.start, row.end):
                raise DataError(
                    f"{row.source}: frames {row.start}-{row.end} of sample {row.name} "
                    f"differ from {first.start}-{first.end} at {first.source}"
                )
            first.labels.update(row.labels)
    return list(joined.values())


def read_root_annotations(config: SignpipeConfig, root: Path) -> list[AnnotationRow]:
    """All annotation rows of one dataset root, every active head filled in."""
    head_modes = config.head_modes()
    annotation_file = config.general_parameters.annotation_file
    if annotation_file is not None:
        path = Path(annotation_file)
        path = path if path.is_absolute() else root / path
        files = [(path, read_annotation_file(path, list(head_modes)))]
    else:
        files = []
        for mode in config.train_parameters.modes():
            heads = [head for head, group in head_modes.items() if group == mode]
            path = root / f"test_{mode}.txt"
            files.append((path, read_annotation_file(path, heads)))
    rows = _join_rows(files)
    for row in rows:
        for head in head_modes:
            row.labels.setdefault(head, IGNORE_INDEX)
    return rows


def index_samples(rows: list[AnnotationRow], root: Path) -> list[Sample]:
    """Find every row's frames; report all missing folders and frames together."""
    samples, problems = [], []
    for row in rows:
        sample_dir = root / row.name
        if not sample_dir.is_dir():
            problems.append(f"{row.source}: sample folder {sample_dir} not found")
            continue
        frames = list_frames(sample_dir, row.name)
        wanted = range(row.start, row.end + 1)
        missing = [index for index in wanted if index not in frames]
        if missing:
            shown = ", ".join(str(index) for index in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            problems.append(
                f"{row.source}: {sample_dir} lacks frames {shown}{more} "
                f"(expected {row.name}_<idx>.jpg for idx {row.start}..{row.end})"
            )
            continue
        samples.append(
            Sample(
                name=row.name,
                frame_paths=[frames[index] for index in wanted],
                labels=row.labels,
                fps=_read_fps(sample_dir, row.name),
            )
        )
    if problems:
        more = len(problems) - MAX_REPORTED
        tail = [f"... and {more} more"] if more > 0 else []
        raise DataError("\n".join(problems[:MAX_REPORTED] + tail))
    return samples


def resolve_num_classes(config: SignpipeConfig, rows: list[AnnotationRow]) -> dict:
    """Head -> class count: the configured one, or `auto` from the labels seen."""
    counts = {}
    for head, head_config in config.active_heads().items():
        if head_config.num_class != "auto":
            counts[head] = head_config.num_class
            continue
        seen = [row.labels[head] for row in rows if row.labels[head] != IGNORE_INDEX]
        if not seen:
            raise DataError(
                f"head {head}: num_class is 'auto' but no sample has a label"
            )
        counts[head] = max(2, max(seen) + 1)
    check_label_ranges(rows, counts)
    return counts


def decode_image(path: Path, size_hint: int | None) -> np.ndarray:
    """An RGB image as a `(H, W, 3)` uint8 array; JPEGs are decoded near `size_hint`."""
    try:
        with Image.open(path) as image:
            if size_hint is not None and image.format == "JPEG":
                image.draft("RGB", (size_hint, size_hint))
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"{path}: cannot read image ({error})") from None


class SignDataset(Dataset):
    """Clips of sampled frames with their labels.

    An item is `{"frames": (T, C, H, W) uint8, "labels": {head: int}, "name": str}` with
    `T <= num_segments` (short clips are padded and masked by `collate_clips`).

    Args:
        samples: the clips.
        num_segments: frames sampled per clip.
        train: random temporal offsets (and the caller's random transform).
        transform: maps a `(T, C, H, W)` uint8 clip to the model's input size.
        time: seconds between sampled frames, or None to spread evenly.
        size_hint: decode JPEGs at about this size (draft mode), or None.
        seed: base seed for the training offsets.
    """

    def __init__(
        self,
        *,
        samples: list[Sample],
        num_segments: int,
        train: bool,
        transform=None,
        time: float | None = None,
        size_hint: int | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = samples
        self.num_segments = num_segments
        self.train = train
        self.transform = transform
        self.time = time
        self.size_hint = size_hint
        self.seed = seed
        self.rng = random.Random(seed)
        if time is not None:
            unknown = [s.name for s in samples if s.fps is None]
            if unknown:
                raise DataError(
                    f"train_parameters.time needs the FPS of every sample, but "
                    f"{len(unknown)} samples (e.g. {unknown[0]}) have no "
                    f"<name>_properties.json with an FPS"
                )

    def __len__(self) -> int:
        return len(self.samples)

    def _step(self, sample: Sample) -> int | None:
        if self.time is None:
            return None
        return max(1, round(self.time * sample.fps))

    def __getitem__(self, index: int) -> dict:
        sample = self.samples[index]
        positions = sample_indices(
            len(sample.frame_paths),
            self.num_segments,
            train=self.train,
            rng=self.rng,
            step=self._step(sample),
        )
        images = [
            decode_image(sample.frame_paths[i], self.size_hint) for i in positions
        ]
        if any(image.shape != images[0].shape for image in images):
            raise DataError(
                f"{sample.frame_paths[0].parent}: the frames of one clip differ in size"
            )
        clip = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        if self.transform is not None:
            clip = self.transform(clip)
        return {
            "frames": clip.contiguous(),
            "labels": sample.labels,
            "name": sample.name,
        }


def collate_clips(items: list[dict]) -> dict:
    """Batch clips of different lengths: zero-pad in time and mark real frames.

    Returns:
        `{"frames": (B, T, C, H, W) uint8, "mask": (B, T) bool,
        "labels": {head: (B,) long}, "name": [str]}`.
    """
    lengths = [item["frames"].shape[0] for item in items]
    first = items[0]["frames"]
    shapes = {tuple(item["frames"].shape[1:]) for item in items}
    if len(shapes) > 1:
        raise DataError(
            f"clips of one batch have different frame sizes {sorted(shapes)}; enable "
            "augmentations_parameters.apply_resize and apply_center_crop"
        )
    frames = first.new_zeros((len(items), max(lengths), *first.shape[1:]))
    mask = torch.zeros(len(items), max(lengths), dtype=torch.bool)
    for row, (item, length) in enumerate(zip(items, lengths)):
        frames[row, :length] = item["frames"]
        mask[row, :length] = True
    labels = {
        head: torch.tensor([item["labels"][head] for item in items], dtype=torch.long)
        for head in items[0]["labels"]
    }
    return {
        "frames": frames,
        "mask": mask,
        "labels": labels,
        "name": [item["name"] for item in items],
    }


def worker_init_fn(worker_id: int) -> None:
    """Give every loader worker its own random stream for training offsets."""
    info = torch.utils.data.get_worker_info()
    dataset = info.dataset
    dataset.rng = random.Random(hash((dataset.seed, worker_id, torch.initial_seed())))
