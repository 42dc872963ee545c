"""The video-source loader against the decode limit of the same videos.

Generates H.264 `.mp4` clips of the synthetic signer (`render_clip`, as the frame
benchmark data) in the HearAI video layout (`ROOT/<name>.mp4` beside the annotation
files), then measures:

* `loader`: the training DataLoader (`SignDataModule`, train augmentations, the
  configured workers) on the videos: frames/s delivered;
* `decode`: the decode limit: the same clips' sampled frames (training sampling,
  seeded) decoded by `datasets.videos.read_frames` alone, in as many processes as
  the loader has workers, nothing else done;
* `full_decode`: the same frames taken from decoding each clip from its first frame
  up to its last sampled one (what a loader without seeking does);
* `torchcodec`: the same sampled frames through torchcodec's `VideoDecoder`, when
  torchcodec is importable (it needs the system's FFmpeg libraries); else skipped.

Run alone::

    .venv/bin/python -m benchmarks.video_loader [--quick] [--output FILE.json]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np

from benchmarks.common import PROCESSES, load_bench_config, rate, ratio
from benchmarks.loaders import time_loader
from data_preprocessing.make_sample_dataset import (
    GLOSS_SPECS,
    HAMNOSYS_CLASS_COUNTS,
    ClipTiming,
    encode_video,
    render_clip,
)
from datasets.index import Sample
from datasets.sampling import sample_indices
from datasets.video_files import draft_size
from datasets.videos import read_frames
from training.datamodule import SignDataModule
from utils.files import write_atomically

#: Bump when the generated videos change, so that old copies are not reused.
FORMAT_VERSION = 1
COMPLETE_FILE = "complete.json"


@dataclass(frozen=True)
class VideoSpec:
    """The generated videos.

    Attributes:
        clips: number of clips (glosses taken in turn).
        frames_per_clip: frames in every clip.
        size: frame side in pixels.
        gop: frames between key frames (x264 `g`; phones and cameras use 30-60).
        glosses: number of glosses.
        seed: seed of all variation.
    """

    clips: int = 48
    frames_per_clip: int = 64
    size: int = 256
    gop: int = 32
    glosses: int = 8
    seed: int = 0

    def folder_name(self) -> str:
        """The cache folder's name: every parameter."""
        return (
            f"video-v{FORMAT_VERSION}-{self.clips}clips-{self.frames_per_clip}f-"
            f"{self.size}px-g{self.gop}-{self.glosses}g-seed{self.seed}"
        )


#: The full run, and the seconds-long smoke run of `--quick`.
FULL = {"spec": VideoSpec(), "batches": 40, "overrides": ()}
QUICK = {
    "spec": VideoSpec(clips=16, frames_per_clip=24, size=64, gop=8, glosses=4),
    "batches": 3,
    "overrides": (
        "augmentations_parameters.resize_size=32",
        "augmentations_parameters.center_crop_size=32",
        "train_parameters.num_segments=4",
    ),
}


def _write_video_clip(task: tuple[Path, VideoSpec, int]) -> tuple[str, int, int, int]:
    """Render and encode clip `index`; its name, gloss and signed frame range."""
    root, spec, index = task
    gloss, clip = index % spec.glosses, index // spec.glosses
    name = f"{GLOSS_SPECS[gloss].word}_{clip:03d}"
    rng = np.random.default_rng([spec.seed, gloss, clip])
    lead, trail = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    timing = ClipTiming(spec.frames_per_clip, lead, spec.frames_per_clip - 1 - trail)
    frames, quality = render_clip(GLOSS_SPECS[gloss], timing, spec.size, rng)
    write_atomically(
        root / f"{name}.mp4", lambda out: encode_video(out, frames, quality, spec.gop)
    )
    return name, gloss, timing.start, timing.end


def ensure_videos(
    spec: VideoSpec, cache_root: Path | None = None, processes: int = PROCESSES
) -> Path:
    """The videos' dataset root, generated first when no complete copy exists (into a
    private folder renamed into place, so concurrent runs never share a half one)."""
    cache_root = cache_root or Path(tempfile.gettempdir()) / "signpipe-bench"
    root = cache_root / spec.folder_name()
    if (root / COMPLETE_FILE).is_file():
        return root
    cache_root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=cache_root))
    try:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            written = pool.map(
                _write_video_clip,
                [(partial, spec, index) for index in range(spec.clips)],
                chunksize=1,
            )
        gloss_rows = ["name start end gloss"]
        hamnosys_rows = ["name start end " + " ".join(HAMNOSYS_CLASS_COUNTS)]
        for name, gloss, start, end in written:
            gloss_rows.append(f"{name} {start} {end} {gloss}")
            labels = " ".join(map(str, GLOSS_SPECS[gloss].labels()))
            hamnosys_rows.append(f"{name} {start} {end} {labels}")
        for file_name, rows in (
            ("test_gloss.txt", gloss_rows),
            ("test_hamnosys.txt", hamnosys_rows),
            (COMPLETE_FILE, [json.dumps(asdict(spec))]),
        ):
            (partial / file_name).write_text("\n".join(rows) + "\n", encoding="utf-8")
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)  # an interrupted old run
        os.rename(partial, root)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)
    return root


def sampled_frames(
    samples: list[Sample], num_segments: int, count: int, seed: int = 0
) -> list[tuple[str, list[int]]]:
    """`count` clips' worth of (video, frame indices), sampled as training samples."""
    rng = random.Random(seed)
    tasks = []
    while len(tasks) < count:
        sample = samples[len(tasks) % len(samples)]
        positions = sample_indices(sample.length, num_segments, train=True, rng=rng)
        tasks.append((str(sample.video_path), [sample.start + p for p in positions]))
    return tasks


def _seek(task: tuple[str, list[int], int | None]) -> tuple[int, int]:
    path, indices, size_hint = task
    decoded = read_frames(Path(path), indices, size_hint=size_hint)
    return len(indices), decoded.decoded


def _full(task: tuple[str, list[int], int | None]) -> tuple[int, int]:
    """The frames at `indices` by decoding from the first frame to the last asked
    (converting only the asked ones, at the same size as seeking does)."""
    path, indices, size_hint = task
    wanted, last, decoded = set(indices), max(indices), 0
    with av.open(path) as container:
        for decoded, frame in enumerate(container.decode(video=0), start=1):
            if decoded - 1 in wanted:
                width, height = draft_size(frame.width, frame.height, size_hint)
                frame.to_ndarray(
                    format="rgb24", width=width, height=height, interpolation="AREA"
                )
            if decoded > last:
                break
    return len(indices), decoded


def _torchcodec(task: tuple[str, list[int], int | None]) -> tuple[int, int]:
    path, indices, _ = task
    # pylint: disable=import-outside-toplevel,import-error
    from torchcodec.decoders import VideoDecoder

    VideoDecoder(path, seek_mode="approximate").get_frames_at(sorted(set(indices)))
    return len(indices), 0


def _pool_init() -> None:
    import torch  # pylint: disable=import-outside-toplevel

    torch.set_num_threads(1)


def decode_rates(
    tasks: list[tuple[str, list[int]]], size_hint: int | None, processes: int
) -> dict:
    """Frames/s of the sampled frames decoded alone, three ways, in `processes`."""
    jobs = [(path, indices, size_hint) for path, indices in tasks]
    result: dict = {"processes": processes, "clips": len(jobs)}
    ways = {"seek": _seek, "full_decode": _full}
    if importlib.util.find_spec("torchcodec") is not None:
        ways["torchcodec"] = _torchcodec
    else:
        result["torchcodec_note"] = "skipped: torchcodec is not installed"
    context = multiprocessing.get_context("fork")
    with context.Pool(processes, initializer=_pool_init) as pool:
        for key, function in ways.items():
            try:
                pool.map(function, jobs[: 2 * processes])  # warm-up
                start = time.perf_counter()
                counts = pool.map(function, jobs, chunksize=1)
            except (OSError, RuntimeError, ImportError) as error:
                result[f"{key}_note"] = f"skipped: {type(error).__name__}: {error}"
                continue
            seconds = time.perf_counter() - start
            frames = sum(count for count, _ in counts)
            result[f"{key}_frames_per_s"] = rate(frames, seconds)
            result[f"{key}_decoded_per_frame"] = (
                sum(decoded for _, decoded in counts) / frames
                if key != "torchcodec"
                else None
            )
    return result


def measure_video_loader(
    *,
    spec: VideoSpec | None = None,
    batches: int = 40,
    overrides: tuple[str, ...] | list[str] = (),
    cache_root: Path | None = None,
    work: Path | None = None,
) -> dict:
    """The video-source training loader's frames/s against the decode limit.

    Args:
        spec: the videos to generate (or reuse); `VideoSpec()` by default.
        batches: timed loader batches (after 2 warm-up batches).
        overrides: `dotted.key=value` config overrides on train_config.yml.
        cache_root: where generated videos are kept (system temp dir by default).
        work: scratch folder for the run's files (a temporary one by default).

    Returns:
        `{"dataset", "loader", "decode", "loader_vs_decode", "seek_vs_full_decode",
        "torchcodec_vs_pyav"}`: frames/s figures and their ratios.
    """
    spec = spec or VideoSpec()
    root = ensure_videos(spec, cache_root)
    with tempfile.TemporaryDirectory(prefix="signpipe-video-bench-") as scratch:
        config = load_bench_config(
            root,
            (work or Path(scratch)) / "run",
            [f"general_parameters.workers={PROCESSES}", *overrides],
        )
        datamodule = SignDataModule(config)
        loader = datamodule.train_dataloader()
        loaded = time_loader(loader, warmup=2, batches=batches)
        del loader
        gc.collect()
    train = config.train_parameters
    loaded.update(
        workers=config.general_parameters.workers,
        batch_size=train.batch_size,
        num_segments=train.num_segments,
        decode_size=config.augmentations_parameters.resize_size,
    )
    tasks = sampled_frames(
        datamodule.data.train_samples, train.num_segments, loaded["clips"]
    )
    decode = decode_rates(
        tasks, config.augmentations_parameters.resize_size, loaded["workers"]
    )
    return {
        "dataset": {**asdict(spec), "root": str(root)},
        "loader": loaded,
        "decode": decode,
        "loader_vs_decode": ratio(
            loaded["frames_per_s"], decode.get("seek_frames_per_s")
        ),
        "seek_vs_full_decode": ratio(
            decode.get("seek_frames_per_s"), decode.get("full_decode_frames_per_s")
        ),
        "torchcodec_vs_pyav": ratio(
            decode.get("torchcodec_frames_per_s"), decode.get("seek_frames_per_s")
        ),
    }


def _cell(value: float | None, digits: int = 1) -> str:
    return "skipped" if value is None else f"{value:,.{digits}f}"


def markdown_rows(result: dict) -> list[str]:
    """The results as markdown table rows: `| measurement | value | unit |`."""
    spec, loader, decode = result["dataset"], result["loader"], result["decode"]
    what = (
        f"{spec['clips']} H.264 clips x {spec['frames_per_clip']} frames, "
        f"{spec['size']}px, key frame every {spec['gop']}"
    )
    procs = f"{decode['processes']} procs"
    return [
        f"| video loader: SignDataModule train loader ({what}; workers "
        f"{loader['workers']}, batch {loader['batch_size']}, {loader['num_segments']} "
        f"frames/clip) | {_cell(loader['frames_per_s'])} | frames/s |",
        f"| video decode limit: PyAV seeking to the same sampled frames, {procs} | "
        f"{_cell(decode.get('seek_frames_per_s'))} | frames/s |",
        f"| video decode: PyAV from the first frame to the last sampled, {procs} | "
        f"{_cell(decode.get('full_decode_frames_per_s'))} | frames/s |",
        f"| video decode: torchcodec get_frames_at, {procs} | "
        f"{_cell(decode.get('torchcodec_frames_per_s'))} | frames/s |",
        f"| video loader / decode limit | {_cell(result['loader_vs_decode'], 2)} | "
        "ratio |",
        f"| seeking / decoding from the start | "
        f"{_cell(result['seek_vs_full_decode'], 2)} | ratio |",
        f"| torchcodec / PyAV seeking | {_cell(result['torchcodec_vs_pyav'], 2)} | "
        "ratio |",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; print the rows (and write JSON with `--output`)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.video_loader",
        description="The video-source loader's frames/s against the decode limit.",
    )
    parser.add_argument("--quick", action="store_true", help="a seconds-long run")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    result = measure_video_loader(
        spec=plan["spec"], batches=plan["batches"], overrides=plan["overrides"]
    )
    if args.output:
        data = (json.dumps(result, indent=2) + "\n").encode("utf-8")
        write_atomically(args.output, lambda out: out.write(data))
    print("| measurement | value | unit |\n|---|---:|---|")
    print("\n".join(markdown_rows(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
