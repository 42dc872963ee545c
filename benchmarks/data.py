"""The benchmark dataset: realistic-size JPEG frame folders plus landmark files.

Clips are drawn by `data_preprocessing.make_sample_dataset.render_clip` (the synthetic
signer of the sample data) at 256x256 with 32 frames each, and written in the HearAI
layout the pipeline reads, with one `<name>.npz` landmark file (MediaPipe Holistic
shapes: pose (T, 33, 3), left_hand / right_hand (T, 21, 3), face (T, 468, 3)) per clip:

    ROOT/<name>/<name>_<idx>.jpg, <name>_properties.json, <name>.npz
    ROOT/test_gloss.txt, test_hamnosys.txt, glosses.txt

The dataset is generated once into a folder under the system temp dir named after its
parameters and reused while that folder is complete (it holds `complete.json`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from data_preprocessing.make_sample_dataset import (
    FPS,
    GLOSS_SPECS,
    HAMNOSYS_CLASS_COUNTS,
    ClipTiming,
    render_clip,
)

#: Bump when the generated files change, so that old caches are not reused.
FORMAT_VERSION = 1
COMPLETE_FILE = "complete.json"
LANDMARK_SHAPES = {"pose": 33, "left_hand": 21, "right_hand": 21, "face": 468}
#: Share of frames in which MediaPipe "misses" a hand (NaN points), as in real data.
HAND_MISS_RATE = 0.15


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate.

    Attributes:
        clips: number of clips (spread over `glosses` glosses).
        frames_per_clip: frames in every clip.
        size: frame side in pixels.
        glosses: number of glosses (classes of the gloss head).
        seed: seed of all random variation.
    """

    clips: int
    frames_per_clip: int = 32
    size: int = 256
    glosses: int = 8
    seed: int = 0

    def folder_name(self) -> str:
        """The cache folder's name: every parameter, so specs never share one."""
        return (
            f"v{FORMAT_VERSION}-{self.clips}clips-{self.frames_per_clip}f-"
            f"{self.size}px-{self.glosses}g-seed{self.seed}"
        )

    def clip_names(self) -> list[tuple[str, int, int]]:
        """`(name, gloss id, clip number)` of every clip, glosses taken in turn."""
        names = []
        for index in range(self.clips):
            gloss, clip = index % self.glosses, index // self.glosses
            names.append((f"{GLOSS_SPECS[gloss].word}_{clip:03d}", gloss, clip))
        return names


def default_cache_root() -> Path:
    """Where generated datasets are kept: `<system temp dir>/signpipe-bench`."""
    return Path(tempfile.gettempdir()) / "signpipe-bench"


def _timing(spec: DatasetSpec, rng: np.random.Generator) -> ClipTiming:
    """The clip's frame count and its signed range (up to 2 idle frames each side)."""
    lead = int(rng.integers(0, 3))
    trail = int(rng.integers(0, 3))
    return ClipTiming(spec.frames_per_clip, lead, spec.frames_per_clip - 1 - trail)


def _landmarks(frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Plausible landmark tracks: points near a body layout, drifting smoothly."""
    arrays = {}
    centres = {
        "pose": (0.5, 0.55),
        "left_hand": (0.65, 0.6),
        "right_hand": (0.35, 0.6),
        "face": (0.5, 0.15),
    }
    spreads = {"pose": 0.25, "left_hand": 0.05, "right_hand": 0.05, "face": 0.08}
    for part, points in LANDMARK_SHAPES.items():
        layout = rng.normal(0.0, spreads[part], size=(1, points, 3))
        layout[..., 0] += centres[part][0]
        layout[..., 1] += centres[part][1]
        drift = np.cumsum(rng.normal(0.0, 0.005, size=(frames, 1, 3)), axis=0)
        track = (layout + drift).astype(np.float32)
        if part in ("left_hand", "right_hand"):
            track[rng.random(frames) < HAND_MISS_RATE] = np.nan
        arrays[part] = track
    return arrays


def _write_clip(task: tuple[Path, DatasetSpec, str, int, int]) -> tuple[str, int, int]:
    """Render and write one clip folder; returns its name and signed frame range."""
    root, spec, name, gloss, clip = task
    rng = np.random.default_rng([spec.seed, gloss, clip])
    timing = _timing(spec, rng)
    frames, quality = render_clip(GLOSS_SPECS[gloss], timing, spec.size, rng)
    folder = root / name
    folder.mkdir()
    for index, frame in enumerate(frames):
        frame.save(folder / f"{name}_{index}.jpg", format="JPEG", quality=quality)
    properties = {
        "File": name,
        "Frames": len(frames),
        "FPS": FPS,
        "Width": spec.size,
        "Height": spec.size,
    }
    (folder / f"{name}_properties.json").write_text(
        json.dumps(properties) + "\n", encoding="utf-8"
    )
    arrays = _landmarks(len(frames), rng)
    np.savez(folder / f"{name}.npz", fps=np.float32(FPS), **arrays)
    return name, timing.start, timing.end


def _write_annotations(
    root: Path, spec: DatasetSpec, ranges: dict[str, tuple[int, int]]
) -> None:
    """test_gloss.txt, test_hamnosys.txt and glosses.txt for the written clips."""
    gloss_rows = ["name start end gloss"]
    hamnosys_rows = ["name start end " + " ".join(HAMNOSYS_CLASS_COUNTS)]
    for name, gloss, _ in spec.clip_names():
        start, end = ranges[name]
        gloss_rows.append(f"{name} {start} {end} {gloss}")
        labels = " ".join(str(label) for label in GLOSS_SPECS[gloss].labels())
        hamnosys_rows.append(f"{name} {start} {end} {labels}")
    words = ["id gloss"] + [
        f"{gloss} {GLOSS_SPECS[gloss].word}" for gloss in range(spec.glosses)
    ]
    for file_name, rows in (
        ("test_gloss.txt", gloss_rows),
        ("test_hamnosys.txt", hamnosys_rows),
        ("glosses.txt", words),
    ):
        (root / file_name).write_text("\n".join(rows) + "\n", encoding="utf-8")


def ensure_dataset(
    spec: DatasetSpec, cache_root: Path | None = None, processes: int = 2
) -> tuple[Path, bool]:
    """The dataset's folder, generated first when no complete copy exists.

    Generation writes into a private folder and renames it into place, so concurrent
    runs never see a half-written dataset.

    Returns:
        The dataset root and whether it was generated by this call.
    """
    if not 2 <= spec.glosses <= len(GLOSS_SPECS):
        raise ValueError(f"glosses must be in 2..{len(GLOSS_SPECS)}")
    cache_root = cache_root or default_cache_root()
    root = cache_root / spec.folder_name()
    if (root / COMPLETE_FILE).is_file():
        return root, False
    cache_root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=cache_root))
    try:
        tasks = [(partial, spec, *clip) for clip in spec.clip_names()]
        with multiprocessing.Pool(processes) as pool:
            written = pool.map(_write_clip, tasks, chunksize=1)
        _write_annotations(partial, spec, {n: (s, e) for n, s, e in written})
        (partial / COMPLETE_FILE).write_text(
            json.dumps(asdict(spec)) + "\n", encoding="utf-8"
        )
        if root.exists() and not (root / COMPLETE_FILE).is_file():
            shutil.rmtree(root, ignore_errors=True)  # an interrupted old run
        try:
            os.rename(partial, root)
        except OSError:
            if not (root / COMPLETE_FILE).is_file():
                raise
            return root, False  # another run finished first; use its copy
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return root, True
