"""One training step of every video network on the CPU, at a small valid size.

A step is what Lightning runs per batch: the pipeline's forward on a batch of random
uint8 clips, the cross-entropy of one head, backward and an AdamW step. The pipeline
is the shipped config's (`train_config.yml`) with `feature_extractor.name` set to
the network, so its encoder and heads follow as in training. Networks with a fixed
input (MViT: 16 frames of 224x224) run at that input; the others at
`frames` x `size` x `size`.

    .venv/bin/python -m benchmarks.video_networks [--steps N] [--batch_size B]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch.nn import functional

from benchmarks.common import CONFIG_FILE
from config.loader import load_config
from config.model import VIDEO_NETWORKS
from models.pipeline import build_pipeline
from utils.cli import run_cli

NUM_CLASSES = 10


def network_input(name: str, frames: int, size: int) -> tuple[int, int]:
    """The frames and frame side `name` is measured at: its fixed input, or the
    requested one raised to its minimum size."""
    spec = VIDEO_NETWORKS[name]
    return spec.exact_frames or frames, spec.exact_size or max(size, spec.min_size)


def _pipeline(name: str, frames: int, size: int) -> torch.nn.Module:
    """The shipped config's pipeline with `name` as the extractor, one head."""
    overrides = [
        f"feature_extractor.name={name}",
        f"train_parameters.num_segments={frames}",
        f"augmentations_parameters.resize_size={size}",
        f"augmentations_parameters.center_crop_size={size}",
    ]
    config = load_config(CONFIG_FILE, overrides)
    pipeline = build_pipeline(config, {"gloss": NUM_CLASSES})
    pipeline.prepare_for_training(
        channels_last=config.trainer.channels_last, compile_model=False
    )
    return pipeline.train()


def time_training_step(
    name: str, *, batch_size: int, frames: int, size: int, steps: int, warmup: int
) -> dict:
    """Seconds per training step of `name` (median of `steps` after `warmup`)."""
    frames, size = network_input(name, frames, size)
    pipeline = _pipeline(name, frames, size)
    optimizer = torch.optim.AdamW(pipeline.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    batch = {
        "frames": torch.randint(
            0,
            256,
            (batch_size, frames, 3, size, size),
            dtype=torch.uint8,
            generator=generator,
        ),
        "mask": torch.ones(batch_size, frames, dtype=torch.bool),
    }
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)
    seconds = []
    for _ in range(warmup + steps):
        start = time.perf_counter()
        logits = pipeline(batch)["logits"]["gloss"]
        loss = functional.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
    extractor = pipeline.feature_extractor
    with torch.no_grad():
        tokens = extractor(batch).shape[1]
    return {
        "batch_size": batch_size,
        "frames": frames,
        "size": size,
        "tokens": tokens,
        "width": extractor.spec.width,
        "params_millions": sum(p.numel() for p in extractor.backbone.parameters())
        / 1e6,
        "step_seconds": statistics.median(seconds[warmup:]),
        "steps": steps,
    }


def measure_video_networks(
    names: list[str] | None = None,
    *,
    batch_size: int = 2,
    frames: int = 8,
    size: int = 64,
    steps: int = 2,
    warmup: int = 1,
) -> dict:
    """One training step of each video network on the CPU.

    Args:
        names: the networks (default: all of `VIDEO_NETWORKS`).
        batch_size: clips per step.
        frames: frames per clip (networks with a fixed count use theirs).
        size: frame side in pixels (raised to a network's minimum; fixed-size
            networks use theirs).
        steps: timed steps per network (the median is reported).
        warmup: untimed steps first.

    Returns:
        `{"device": "cpu", "torch_threads": N, "load_average": [1, 5, 15 min],
        "networks": {name: {batch_size, frames, size, tokens, width,
        params_millions, step_seconds, steps}}}`.
    """
    results = {}
    for name in names or list(VIDEO_NETWORKS):
        results[name] = time_training_step(
            name,
            batch_size=batch_size,
            frames=frames,
            size=size,
            steps=steps,
            warmup=warmup,
        )
        print(f"{name}: {results[name]['step_seconds']:.2f} s/step", file=sys.stderr)
    return {
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        # Other processes on the machine skew the figures.
        "load_average": list(os.getloadavg()),
        "networks": results,
    }


def markdown_rows(results: dict) -> list[str]:
    """The results as a markdown table: header, separator and one row per network."""
    rows = [
        "| network | input (B x T x H x W) | tokens T' | width D | params (M) "
        "| CPU training step (s) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results["networks"].items():
        rows.append(
            f"| `{name}` | {row['batch_size']} x {row['frames']} x {row['size']} x "
            f"{row['size']} | {row['tokens']} | {row['width']} | "
            f"{row['params_millions']:.1f} | {row['step_seconds']:.2f} |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", nargs="+", choices=list(VIDEO_NETWORKS))
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)

    def measure() -> int:
        results = measure_video_networks(
            args.names,
            batch_size=args.batch_size,
            frames=args.frames,
            size=args.size,
            steps=args.steps,
            warmup=args.warmup,
        )
        print("\n".join(markdown_rows(results)))
        return 0

    return run_cli(measure)


if __name__ == "__main__":
    sys.exit(main())
