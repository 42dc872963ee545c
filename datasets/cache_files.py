"""The frame cache on disk: `frames-<hash>.npy`, one `(N, C, S, S)` uint8 array, and
`frames-<hash>.json`, sample key -> index of its first frame.

A build checks the free space first, then writes both files under temporary names
with ordinary writes (a full disk is an error then, not the bus error of a memory map
whose pages find no space), and renames them into place only when complete. A failed
build removes its temporary files; a killed one leaves them, and the next build of the
same cache on that machine removes them. An existing cache is checked when opened.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from utils.errors import DataError
from utils.files import TEMPORARY_MARK, temporary_path, write_atomically

CACHE_KEY = "general_parameters.frame_cache_dir"
# Room for the .npy header and the JSON index beside the frames.
INDEX_ALLOWANCE = 2**20


@dataclass(frozen=True)
class CacheFiles:
    """The two files of one cache, and the temporary names they are written under."""

    folder: Path
    name: str

    @property
    def array(self) -> Path:
        """The `.npy` file of all frames."""
        return self.folder / f"frames-{self.name}.npy"

    @property
    def index(self) -> Path:
        """The `.json` file of sample offsets."""
        return self.folder / f"frames-{self.name}.json"

    @staticmethod
    def owner() -> str:
        """The temporary files' owner tag: host and process (the folder may be shared
        by several machines)."""
        return f"{socket.gethostname()}-{os.getpid()}"

    def temporary(self, path: Path) -> Path:
        """Where this process writes `path` before renaming it into place."""
        return temporary_path(path, self.owner())

    def remove_stale(self) -> None:
        """Remove temporary files of this cache left by dead processes of this host."""
        pattern = f".frames-{self.name}.*{TEMPORARY_MARK}"
        pattern += f"{glob.escape(socket.gethostname())}-*"
        for path in self.folder.glob(pattern):
            pid = path.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def read_cache(
    files: CacheFiles, shape: tuple[int, ...], keys: list[str]
) -> tuple[dict[str, int] | None, str]:
    """The offsets of an existing cache, or None and what is wrong with it.

    Args:
        files: the cache.
        shape: the `(N, C, S, S)` shape its array must have.
        keys: the sample keys its index must hold.
    """
    try:
        offsets = json.loads(files.index.read_text(encoding="utf-8"))
        array = np.load(files.array, mmap_mode="r")
    except FileNotFoundError as error:
        return None, f"{Path(error.filename).name} is missing"
    except (OSError, ValueError, EOFError, UnicodeDecodeError) as error:
        return None, str(error)
    found = (array.dtype, array.shape)
    del array  # closes the map
    if found != (np.uint8, shape):
        return None, f"it holds {found[0]} {found[1]}, not uint8 {shape}"
    if (
        not isinstance(offsets, dict)
        or set(offsets) != set(keys)
        or not all(isinstance(value, int) for value in offsets.values())
        or not all(0 <= value < shape[0] for value in offsets.values())
    ):
        return None, f"{files.index.name} does not match the frames"
    return offsets, ""


def _size(count: int) -> str:
    return f"{count / 2**30:.2f} GiB"


def _prepare_folder(files: CacheFiles, shape: tuple[int, ...]) -> None:
    """Create the folder, drop stale temporary files, and check the free space."""
    try:
        files.folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"{CACHE_KEY}: cannot create '{files.folder}' ({error.strerror})"
        ) from None
    files.remove_stale()
    needed = math.prod(shape) + INDEX_ALLOWANCE
    free = shutil.disk_usage(files.folder).free
    if needed > free:
        raise DataError(
            f"{CACHE_KEY}: the frame cache needs {_size(needed)}, but '{files.folder}' "
            f"has {_size(free)} free; free some space, choose another folder, or set "
            "general_parameters.frame_cache: false"
        )


def write_cache(
    files: CacheFiles,
    shape: tuple[int, ...],
    keys: list[str],
    clips: Iterable[np.ndarray],
) -> dict[str, int]:
    """Write a new cache atomically.

    Args:
        files: the cache.
        shape: `(N, C, S, S)`, the shape of all frames together.
        keys: the sample keys, in the order of `clips`.
        clips: each sample's `(T, C, S, S)` uint8 frames.

    Returns:
        Sample key -> index of its first frame.

    Raises:
        DataError: naming the folder when it cannot be created, lacks the space or a
            write fails; nothing is left behind then.
    """
    _prepare_folder(files, shape)
    offsets: dict[str, int] = {}

    def write_array(file) -> None:
        header = {"descr": "|u1", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(file, header)
        offset = 0
        for key, clip in zip(keys, clips):
            if clip.shape[1:] != shape[1:] or clip.dtype != np.uint8:
                raise ValueError(f"a cached clip is {clip.dtype} {clip.shape}")
            file.write(np.ascontiguousarray(clip).tobytes())
            offsets[key], offset = offset, offset + len(clip)

    try:
        write_atomically(files.array, write_array, files.owner())
        index = json.dumps(offsets).encode("utf-8")
        write_atomically(files.index, lambda file: file.write(index), files.owner())
    except OSError as error:
        files.array.unlink(missing_ok=True)
        raise DataError(
            f"{CACHE_KEY}: cannot write the frame cache in '{files.folder}' "
            f"({error.strerror or error}); nothing was kept"
        ) from None
    return offsets
