"""An optional cache of decoded frames: resized, centre-cropped uint8 clips in one
memory-mapped file, built once and reused across epochs and runs.

When JPEG decoding is the bottleneck, training reads the cache instead: a clip's
sampled frames are a slice of the map, no decoding at all. Random augmentations still
run per clip on top of it. Video samples are cached the same way: their `start..end`
frames decoded once, in one pass. The cache file's name is a hash of the frame and
video files (paths, sizes, modification times, a video's frame range) and the frame
size, so a changed dataset builds a new one.
The files and how they are written are in `datasets.cache_files`.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from datasets.cache_files import CacheFiles, read_cache, write_cache
from datasets.index import Sample
from datasets.videos import read_all_frames


def _fingerprint(samples: list[Sample], size: int, resize: int) -> str:
    digest = hashlib.sha256(f"{size}:{resize}".encode())
    for sample in samples:
        if sample.video_path is not None:
            stat = sample.video_path.stat()
            digest.update(
                f"{sample.video_path}:{stat.st_size}:{stat.st_mtime_ns}:"
                f"{sample.start}:{sample.length}".encode()
            )
        for path in sample.frame_paths:
            stat = path.stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


class FrameCache:
    """Frames of many clips in one `(N, C, size, size)` uint8 memory map.

    Args:
        array_path: the `.npy` file holding all frames.
        offsets: sample key -> index of its first frame in the array.
    """

    def __init__(self, array_path: Path, offsets: dict[str, int]) -> None:
        self.array_path = Path(array_path)
        self.offsets = offsets
        self._array: np.ndarray | None = None  # opened lazily, once per process

    def __getstate__(self) -> dict:
        return {"array_path": self.array_path, "offsets": self.offsets, "_array": None}

    @staticmethod
    def key(sample: Sample) -> str:
        """The cache key of a sample: its frame folder, or its video and frames."""
        if sample.video_path is not None:
            return f"{sample.video_path}:{sample.start}:{sample.length}"
        return str(sample.frame_paths[0].parent)

    def __contains__(self, sample: Sample) -> bool:
        return sample.has_frames and self.key(sample) in self.offsets

    def clip(self, sample: Sample, positions: list[int]) -> torch.Tensor:
        """The sample's frames at `positions` as a `(T, C, H, W)` uint8 tensor."""
        if self._array is None:
            self._array = np.load(self.array_path, mmap_mode="r")
        start = self.offsets[self.key(sample)]
        return torch.from_numpy(
            np.ascontiguousarray(self._array[start + np.array(positions)])
        )

    @classmethod
    def build_or_open(
        cls,
        samples: list[Sample],
        cache_dir: Path,
        *,
        resize: int,
        size: int,
        transform,
        decode,
    ) -> FrameCache:
        """Open the cache for these samples, building it first when it is missing or
        damaged (a note says so).

        Args:
            samples: the clips (with frames: folders or videos) to cache.
            cache_dir: where cache files live.
            resize: the decode size hint (JPEG draft mode).
            size: the side of the cached (cropped) frames.
            transform: resize + centre crop of a `(T, C, H, W)` uint8 clip.
            decode: `decode(path, size_hint) -> (H, W, 3)` uint8 array, for frame
                files (videos are decoded by `datasets.videos.read_all_frames`).

        Raises:
            ConfigError: when `cache_dir` cannot be created, lacks the space, or a
                write fails (the partial file is removed).
        """
        name = _fingerprint(samples, size, resize)
        files = CacheFiles(Path(cache_dir), name)
        shape = (sum(sample.length for sample in samples), 3, size, size)
        keys = [cls.key(sample) for sample in samples]
        if files.array.exists() or files.index.exists():
            offsets, problem = read_cache(files, shape, keys)
            if offsets is not None:
                return cls(files.array, offsets)
            print(
                f"note: the frame cache {files.array} is damaged ({problem}); "
                "rebuilding it",
                file=sys.stderr,
            )
        clips = _clips(samples, resize, transform, decode)
        return cls(files.array, write_cache(files, shape, keys, clips))


def _clips(samples: list[Sample], resize: int, transform, decode) -> Iterator:
    """Each sample's frames decoded, resized and cropped: `(T, C, size, size)` uint8."""
    for sample in tqdm(samples, desc="building the frame cache", unit="clip"):
        if sample.video_path is not None:
            images = list(
                read_all_frames(
                    sample.video_path, sample.start, sample.length, size_hint=resize
                )
            )
        else:
            images = [decode(path, resize) for path in sample.frame_paths]
        clip = np.stack(images)
        yield transform(torch.from_numpy(clip).permute(0, 3, 1, 2)).numpy()
