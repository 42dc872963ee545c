"""An optional cache of decoded frames: resized, centre-cropped uint8 clips in one
memory-mapped file, built once and reused across epochs and runs.

When JPEG decoding is the bottleneck, training reads the cache instead: a clip's
sampled frames are a slice of the map, no decoding at all. Random augmentations still
run per clip on top of it. The cache file's name is a hash of the frame files (paths,
sizes, modification times) and the frame size, so a changed dataset builds a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from datasets.index import Sample
from utils.errors import DataError


def _fingerprint(samples: list[Sample], size: int, resize: int) -> str:
    digest = hashlib.sha256(f"{size}:{resize}".encode())
    for sample in samples:
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
        """The cache key of a sample: its frame folder."""
        return str(sample.frame_paths[0].parent)

    def __contains__(self, sample: Sample) -> bool:
        return bool(sample.frame_paths) and self.key(sample) in self.offsets

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
        """Open the cache for these samples, building it first when it is missing.

        Args:
            samples: the clips (with frames) to cache.
            cache_dir: where cache files live.
            resize: the decode size hint (JPEG draft mode).
            size: the side of the cached (cropped) frames.
            transform: resize + centre crop of a `(T, C, H, W)` uint8 clip.
            decode: `decode(path, size_hint) -> (H, W, 3)` uint8 array.
        """
        cache_dir = Path(cache_dir)
        name = _fingerprint(samples, size, resize)
        array_path = cache_dir / f"frames-{name}.npy"
        index_path = cache_dir / f"frames-{name}.json"
        if array_path.is_file() and index_path.is_file():
            offsets = json.loads(index_path.read_text(encoding="utf-8"))
            return cls(array_path, offsets)
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(
                f"general_parameters.frame_cache_dir: cannot create '{cache_dir}' "
                f"({error.strerror})"
            ) from None
        total = sum(len(sample.frame_paths) for sample in samples)
        temporary = cache_dir / f".frames-{name}.npy.tmp-{os.getpid()}"
        array = np.lib.format.open_memmap(
            temporary, mode="w+", dtype=np.uint8, shape=(total, 3, size, size)
        )
        offsets, offset = {}, 0
        for sample in tqdm(samples, desc="building the frame cache", unit="clip"):
            clip = np.stack([decode(path, resize) for path in sample.frame_paths])
            frames = transform(torch.from_numpy(clip).permute(0, 3, 1, 2))
            array[offset : offset + len(frames)] = frames.numpy()
            offsets[cls.key(sample)] = offset
            offset += len(frames)
        array.flush()
        del array
        os.replace(temporary, array_path)
        index_path.write_text(json.dumps(offsets), encoding="utf-8")
        return cls(array_path, offsets)
