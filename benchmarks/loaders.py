"""Loader measurements: the pipeline's training loader, the JPEG decode limit, a
naive loader, and the loader reading the frame cache."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import io
import multiprocessing
import random
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.io import ImageReadMode, decode_jpeg, read_file

from benchmarks.common import Scale, Setup, rate, ratio
from config.schema import SignpipeConfig
from datasets.index import Sample
from datasets.sampling import sample_indices
from models.feature_extractors.cnn import IMAGENET_MEAN, IMAGENET_STD
from training.datamodule import SignDataModule
from utils.errors import ConfigError

#: The frame cache on, in a folder of this run (so its build is timed every run).
FRAME_CACHE_OVERRIDES = [
    "general_parameters.frame_cache=true",
    "general_parameters.frame_cache_dir={cache_dir}",
]


def _forever(loader):
    """Batches of `loader`, epoch after epoch."""
    while True:
        yield from loader


def time_loader(loader, warmup: int, batches: int) -> dict:
    """Frames/s and clips/s over `batches` batches after `warmup` batches.

    The warm-up covers the workers' start and the first prefetch; the batches after it
    run through epoch boundaries as in training.
    """
    stream = _forever(loader)
    for _ in range(warmup):
        next(stream)
    frames = clips = 0
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(stream)
        frames += int(batch["mask"].sum())
        clips += int(batch["mask"].shape[0])
    seconds = time.perf_counter() - start
    stream.close()
    return {
        "frames_per_s": rate(frames, seconds),
        "clips_per_s": rate(clips, seconds),
        "frames": frames,
        "clips": clips,
        "seconds": seconds,
    }


def measure_loader(config: SignpipeConfig, scale: Scale) -> tuple[dict, list[Sample]]:
    """The training DataLoader as training builds it (train augmentations, workers)."""
    datamodule = SignDataModule(config)
    loader = datamodule.train_dataloader()
    result = time_loader(loader, warmup=2, batches=scale.loader_batches)
    result.update(
        workers=config.general_parameters.workers,
        batch_size=config.train_parameters.batch_size,
        num_segments=config.train_parameters.num_segments,
        decode_size=config.augmentations_parameters.resize_size,
        train_clips=len(datamodule.data.train_samples),
    )
    del loader
    gc.collect()
    return result, datamodule.data.train_samples


def _pool_init() -> None:
    torch.set_num_threads(1)


def _decode_pil_draft(task: tuple[list[str], int]) -> int:
    """PIL with draft mode: the JPEG decoder scales down by 1/2, 1/4 or 1/8."""
    paths, size = task
    for path in paths:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            np.asarray(image.convert("RGB"))
    return len(paths)


def _decode_torchvision(task: tuple[list[str], int]) -> int:
    """torchvision.io.decode_jpeg on the file's bytes (full size: no scaling)."""
    paths, _ = task
    for path in paths:
        decode_jpeg(read_file(path), mode=ImageReadMode.RGB)
    return len(paths)


def measure_decode(paths: list[Path], size: int, processes: int) -> dict:
    """Frames/s of decoding the JPEGs alone, `processes` processes, both decoders."""
    names = [str(path) for path in paths]
    chunks = [(names[i : i + 32], size) for i in range(0, len(names), 32)]
    result: dict = {"processes": processes, "frames": len(names), "decode_size": size}
    context = multiprocessing.get_context("fork")
    with context.Pool(processes, initializer=_pool_init) as pool:
        for key, decode in (
            ("pil_draft", _decode_pil_draft),
            ("torchvision_decode_jpeg", _decode_torchvision),
        ):
            pool.map(decode, chunks[: 2 * processes])  # warm-up: imports, page cache
            start = time.perf_counter()
            count = sum(pool.map(decode, chunks, chunksize=1))
            result[f"{key}_frames_per_s"] = rate(count, time.perf_counter() - start)
    fastest = max(
        ("pil_draft", "torchvision_decode_jpeg"),
        key=lambda k: result[k + "_frames_per_s"],
    )
    result["fastest"] = fastest
    result["limit_frames_per_s"] = result[f"{fastest}_frames_per_s"]
    return result


class NaiveClipDataset(Dataset):
    """What a first loader looks like: PIL full decode, per-frame torchvision
    transforms to normalised float tensors, one clip per item.

    Args:
        samples: the clips.
        num_segments: frames per clip (sampled as the pipeline samples training clips).
        size: resize and crop size.
    """

    def __init__(self, samples: list[Sample], num_segments: int, size: int) -> None:
        self.samples = samples
        self.num_segments = num_segments
        self.rng = random.Random(0)
        self.transform = transforms.Compose(
            [
                transforms.Resize(size),
                transforms.CenterCrop(size),
                transforms.ToTensor(),
                transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        sample = self.samples[index]
        positions = sample_indices(
            sample.length, self.num_segments, train=True, rng=self.rng
        )
        frames = [
            self.transform(Image.open(sample.frame_paths[i]).convert("RGB"))
            for i in positions
        ]
        return torch.stack(frames), sample.labels["gloss"]


def measure_naive_loader(
    config: SignpipeConfig, samples: list[Sample], scale: Scale
) -> dict:
    """The naive loader: batch size 1, no worker processes."""
    dataset = NaiveClipDataset(
        samples,
        config.train_parameters.num_segments,
        config.augmentations_parameters.center_crop_size,
    )
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=0)
    stream = _forever(loader)
    for _ in range(2):
        next(stream)
    frames = 0
    start = time.perf_counter()
    for _ in range(scale.naive_clips):
        clip, _ = next(stream)
        frames += clip.shape[1]
    seconds = time.perf_counter() - start
    stream.close()
    return {
        "frames_per_s": rate(frames, seconds),
        "clips_per_s": rate(scale.naive_clips, seconds),
        "frames": frames,
        "seconds": seconds,
        "batch_size": 1,
        "workers": 0,
    }


def _frame_cache_config(
    setup: Setup, cache_dir: Path
) -> tuple[SignpipeConfig | None, str | None]:
    """The config with the frame cache on, or None and why it cannot be measured."""
    if importlib.util.find_spec("datasets.frame_cache") is None:
        return None, (
            "skipped: datasets.frame_cache does not exist (the preprocessed frame "
            "cache is not implemented)"
        )
    overrides = [o.format(cache_dir=cache_dir) for o in FRAME_CACHE_OVERRIDES]
    try:
        return setup.config("cached", overrides), None
    except ConfigError as error:
        return None, (
            f"skipped: datasets.frame_cache exists but the config rejects {overrides} "
            f"({error}); adjust FRAME_CACHE_OVERRIDES in benchmarks/bench.py"
        )


def measure_cached_loader(setup: Setup, decode_limit: float) -> dict:
    """The training loader reading the frame cache (built in a fresh folder first:
    `build_s` is the DataModule's construction, cache build included)."""
    cache_dir = setup.work / "frame_cache"
    config, note = _frame_cache_config(setup, cache_dir)
    if config is None:
        return {"skipped": True, "note": note}
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # the build's progress bar
        datamodule = SignDataModule(config)
    build_seconds = time.perf_counter() - start
    loader = datamodule.train_dataloader()
    result = time_loader(loader, warmup=2, batches=setup.scale.loader_batches)
    cached = sum(path.stat().st_size for path in cache_dir.glob("*.npy"))
    result.update(
        build_s=build_seconds,
        cache_bytes=cached,
        vs_decode=ratio(result["frames_per_s"], decode_limit),
    )
    del loader
    gc.collect()
    return result
