"""The LightningDataModule: the config's data (`datasets.sign_data`) -> loaders."""

from __future__ import annotations

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import distributed as dist
from torch.utils.data import DataLoader

from config.schema import SignpipeConfig
from datasets.index import Sample
from datasets.sign_data import SignData, check_evaluation_processes
from datasets.sign_dataset import SignDataset, collate_clips, worker_init_fn


def evaluation_sampler(
    dataset: SignDataset, num_replicas: int | None = None, rank: int | None = None
) -> UnrepeatedDistributedSampler:
    """This process's share of `dataset`: every sample once over all processes.

    Lightning's default sampler pads the last process's share with repeats, which
    evaluation must not count twice.

    Args:
        dataset: the evaluation dataset.
        num_replicas: the number of processes (default: the process group's).
        rank: this process's rank (default: the process group's).
    """
    if num_replicas is None:
        num_replicas = dist.get_world_size()
    check_evaluation_processes(len(dataset), num_replicas)
    return UnrepeatedDistributedSampler(
        dataset, num_replicas=num_replicas, rank=rank, shuffle=False
    )


class SignDataModule(L.LightningDataModule):
    """The config's data with Lightning's loaders; reads every root when built.

    The data itself (samples, splits, class counts and names) is `data`, the one
    `SignData` object; this class adds only the loaders.

    Args:
        config: the validated config.
    """

    def __init__(self, config: SignpipeConfig) -> None:
        super().__init__()
        self.config = config
        self.data = SignData(config)

    def dataset(self, samples: list[Sample], *, train: bool) -> SignDataset:
        """The dataset over `samples`, with train or evaluation transforms."""
        return self.data.dataset(samples, train=train)

    def describe(self) -> str:
        """A short summary of the data: per-root statistics and the split."""
        return self.data.describe()

    def loader(self, samples: list[Sample], *, train: bool) -> DataLoader:
        """A DataLoader over `samples` (shuffled for training)."""
        workers = self.config.general_parameters.workers
        dataset = self.dataset(samples, train=train)
        sampler = None
        if not train and dist.is_available() and dist.is_initialized():
            sampler = evaluation_sampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.config.train_parameters.batch_size,
            shuffle=train,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate_clips,
            pin_memory=torch.cuda.is_available()
            and self.config.general_parameters.gpu >= 0,
            persistent_workers=workers > 0,
            worker_init_fn=worker_init_fn if workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.data.train_samples, train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.data.val_samples, train=False)
