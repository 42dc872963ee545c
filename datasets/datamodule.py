"""The LightningDataModule: dataset roots -> samples -> train/val split -> loaders."""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from datasets.sign_dataset import (
    Sample,
    SignDataset,
    collate_clips,
    index_samples,
    read_root_annotations,
    resolve_num_classes,
    worker_init_fn,
)
from datasets.transforms import build_clip_transform, decode_size_hint
from utils.config import SignpipeConfig
from utils.errors import DataError


def split_samples(
    samples: list[Sample], ratio_train: float, seed: int, stratify_head: str
) -> tuple[list[Sample], list[Sample]]:
    """A seeded train/val split, stratified by one head's label.

    Every label value keeps about `ratio_train` of its samples in training (at least
    one), so small datasets still see every class in training.
    """
    groups: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[sample.labels.get(stratify_head, -1)].append(sample)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(groups):
        members = groups[label]
        rng.shuffle(members)
        cut = max(1, round(ratio_train * len(members)))
        train.extend(members[:cut])
        val.extend(members[cut:])
    if not val:
        raise DataError(
            f"{len(samples)} samples are too few for a validation split with "
            f"ratio_train_test={ratio_train}; add samples or lower the ratio"
        )
    return train, val


class SignDataModule(L.LightningDataModule):
    """Reads and checks every dataset root when built, so data errors come first.

    Args:
        config: the validated config.
    """

    def __init__(self, config: SignpipeConfig) -> None:
        super().__init__()
        self.config = config
        rows, samples = [], []
        self.root_statistics = []
        for root in config.general_parameters.data_paths():
            root_rows = read_root_annotations(config, Path(root))
            root_samples = index_samples(root_rows, Path(root))
            rows.extend(root_rows)
            samples.extend(root_samples)
            self.root_statistics.append(
                {
                    "root": root,
                    "samples": len(root_samples),
                    "frames": sum(len(s.frame_paths) for s in root_samples),
                }
            )
        self.num_classes = resolve_num_classes(config, rows)
        general = config.general_parameters
        self.train_samples, self.val_samples = split_samples(
            samples,
            general.ratio_train_test,
            general.seed,
            next(iter(self.num_classes)),
        )

    def _dataset(self, samples: list[Sample], *, train: bool) -> SignDataset:
        augmentations = self.config.augmentations_parameters
        return SignDataset(
            samples=samples,
            num_segments=self.config.train_parameters.num_segments,
            train=train,
            transform=build_clip_transform(augmentations, train=train),
            time=self.config.train_parameters.time,
            size_hint=decode_size_hint(augmentations),
            seed=self.config.general_parameters.seed,
        )

    def _loader(self, samples: list[Sample], *, train: bool) -> DataLoader:
        workers = self.config.general_parameters.workers
        return DataLoader(
            self._dataset(samples, train=train),
            batch_size=self.config.train_parameters.batch_size,
            shuffle=train,
            num_workers=workers,
            collate_fn=collate_clips,
            pin_memory=torch.cuda.is_available()
            and self.config.general_parameters.gpu >= 0,
            persistent_workers=workers > 0,
            worker_init_fn=worker_init_fn if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_samples, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_samples, train=False)

    def describe(self) -> str:
        """A short summary of the data: per-root counts and the split."""
        lines = [
            f"data {s['root']}: {s['samples']} samples, {s['frames']} frames"
            for s in self.root_statistics
        ]
        heads = ", ".join(f"{h}={n}" for h, n in self.num_classes.items())
        lines.append(
            f"split: {len(self.train_samples)} train / {len(self.val_samples)} val; "
            f"classes per head: {heads}"
        )
        return "\n".join(lines)
