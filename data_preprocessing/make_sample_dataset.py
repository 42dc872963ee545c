"""Write a small synthetic sign-language dataset in the HearAI layout.

The dataset lets a new user train something end to end in a few minutes on a
CPU. Every gloss is a fixed set of HamNoSys attributes and every attribute is
drawn so that a model can read it from the frames:

* ``hand_shape_base_form``: the shape drawn as the hand (circle, square, ...);
* ``hand_location_x`` / ``hand_location_y``: where the hand is centred;
* ``hand_position_finger_direction``: the direction the hand moves in;
* ``hand_position_palm_orientation``: the colour of the hand;
* ``symmetry_operator``: a darker, mirrored non-dominant hand (0 = none,
  1 = moving mirror-symmetrically, 2 = moving the other way, alternating);
* ``hand_shape_thumb_position``: a thumb stub on one side of the hand (0 = none);
* ``hand_shape_bending``: the size of the hand.

A fixed grey "signer" (head and torso) stands in front of a jittered background.
Each clip varies the background, pixel noise, a small offset of the hand path,
the hand size, the motion speed and phase, the clip length and the JPEG quality;
all of it is drawn from ``--seed``, so the output is reproducible.

Layout written (``<name>`` is ``<GLOSS>_<clip:03d>``, e.g. ``HOUSE_000``)::

    OUTPUT_DIR/<name>/<name>_<idx>.jpg          frames, idx = 0..n-1
    OUTPUT_DIR/<name>/<name>_properties.json    {"File", "Frames", "FPS", ...}
    OUTPUT_DIR/test_gloss.txt                   name start end gloss
    OUTPUT_DIR/test_hamnosys.txt                name start end <8 HamNoSys heads>
    OUTPUT_DIR/glosses.txt                      id gloss

``start`` and ``end`` are inclusive frame indices; the frames outside them show
the signer without hands. With ``--videos`` each clip is a short H.264 video
``OUTPUT_DIR/<name>.mp4`` (25 fps) instead of a frame folder, the same frames
encoded at a per-clip quality; with ``--manifest`` a video manifest
``OUTPUT_DIR/manifest.csv`` (``path,start,end,gloss,<8 HamNoSys heads>``) lists
the videos too, so the same clips can be read as a manifest dataset
(``data_path: OUTPUT_DIR/manifest.csv``).

Usage::

    python3 -m data_preprocessing.make_sample_dataset OUTPUT_DIR \
        [--glosses N] [--clips_per_gloss N] [--seed N] [--size PX] \
        [--videos [--manifest]]
"""

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from datasets.videos import encode_h264
from utils.errors import USER_ERROR_EXIT_CODE, UserError
from utils.files import write_atomically

#: HamNoSys heads in annotation-file column order, with their number of classes.
HAMNOSYS_CLASS_COUNTS: dict[str, int] = {
    "symmetry_operator": 9,
    "hand_shape_base_form": 12,
    "hand_shape_thumb_position": 4,
    "hand_shape_bending": 6,
    "hand_position_finger_direction": 18,
    "hand_position_palm_orientation": 8,
    "hand_location_x": 5,
    "hand_location_y": 37,
}

FPS = 25.0
MIN_FRAMES = 10
MAX_FRAMES = 20
#: The signed part of a clip (``start..end``) has at least this many frames.
MIN_ACTIVE_FRAMES = 8
#: At most this many unused frames before ``start`` and after ``end``.
MAX_EDGE_FRAMES = 2
MIN_SIZE = 32
#: The video manifest written with ``--manifest``.
MANIFEST_FILE = "manifest.csv"
#: H.264 constant rate factor per clip: JPEG quality q maps to CRF 108 - q
#: (quality 86..94 -> CRF 22..14), so clips vary in compression as the JPEGs do.
_CRF_OF_QUALITY = 108
MIN_CLIPS_PER_GLOSS = 2
MIN_GLOSSES = 2

_SUPERSAMPLE = 4  # draw at this multiple of the output size, then downsample

# How each attribute value is drawn. Canvas positions and lengths are fractions
# of the image side.
SHAPES: dict[int, str] = {
    0: "circle",
    1: "square",
    2: "triangle",
    3: "plus",
    4: "star",
    5: "ring",
    6: "bar",
    7: "diamond",
}
#: Thumb side as a unit vector in image coordinates (x right, y down).
THUMB_SIDES: dict[int, tuple[int, int] | None] = {
    0: None,
    1: (-1, 0),
    2: (0, -1),
    3: (1, 0),
}
#: Hand "radius" per bending value.
HAND_SIZES: dict[int, float] = {0: 0.075, 2: 0.1, 4: 0.125}
#: Motion direction per finger-direction value: 0 = up, then clockwise in 45
#: degree steps (2 = right, 4 = down, 6 = left).
DIRECTIONS: dict[int, tuple[float, float]] = {
    k: (math.sin(math.radians(45 * k)), -math.cos(math.radians(45 * k)))
    for k in range(8)
}
PALM_COLOURS: dict[int, tuple[int, int, int]] = {
    0: (235, 40, 40),  # red
    1: (255, 150, 0),  # orange
    2: (245, 235, 30),  # yellow
    3: (40, 205, 60),  # green
    4: (30, 215, 230),  # cyan
    5: (50, 90, 255),  # blue
    6: (225, 45, 225),  # magenta
    7: (255, 140, 190),  # pink
}
LOCATIONS_X: dict[int, float] = {1: 0.28, 2: 0.5, 3: 0.72}
LOCATIONS_Y: dict[int, float] = {8: 0.3, 18: 0.52, 28: 0.74}
#: Symmetry values: 0 = one hand, 1 = mirrored hand moving symmetrically,
#: 2 = mirrored hand moving the opposite way along its path (alternating).
SYMMETRIES: dict[int, str] = {0: "none", 1: "mirror", 2: "alternating"}

_MOTION_AMPLITUDE = 0.09  # half the length of the hand's path
_MAX_PATH_OFFSET = 0.025  # per-clip shift of the whole path (<< location spacing)
_MAX_SIZE_JITTER = 0.06
_MIRROR_SHADE = 0.6  # the non-dominant hand is drawn darker
_SIGNER_GREY = (150, 150, 150)


class GlossSpec(NamedTuple):
    """A gloss word and its fixed HamNoSys labels (fields in column order)."""

    word: str
    symmetry_operator: int
    hand_shape_base_form: int
    hand_shape_thumb_position: int
    hand_shape_bending: int
    hand_position_finger_direction: int
    hand_position_palm_orientation: int
    hand_location_x: int
    hand_location_y: int

    def labels(self) -> tuple[int, ...]:
        """Returns the eight HamNoSys labels in ``HAMNOSYS_CLASS_COUNTS`` order."""
        return tuple(getattr(self, head) for head in HAMNOSYS_CLASS_COUNTS)


#: The gloss attribute sets; ``--glosses N`` uses the first N. Any two differ in
#: at least four heads, the first two differ in every head and the first eight
#: use at least three values of every head. Mirrored glosses never sit at the
#: centre column, where the mirrored hand would cover the dominant one.
GLOSS_SPECS: tuple[GlossSpec, ...] = (
    GlossSpec("HOUSE", 1, 2, 0, 4, 4, 0, 1, 8),
    GlossSpec("TREE", 0, 4, 2, 0, 0, 2, 2, 18),
    GlossSpec("DRINK", 0, 0, 3, 2, 1, 4, 3, 28),
    GlossSpec("EAT", 2, 1, 1, 0, 6, 1, 3, 8),
    GlossSpec("SLEEP", 0, 5, 0, 4, 3, 3, 2, 28),
    GlossSpec("BOOK", 1, 7, 2, 2, 2, 5, 1, 18),
    GlossSpec("CAR", 2, 3, 3, 4, 5, 6, 1, 28),
    GlossSpec("FRIEND", 0, 6, 1, 2, 7, 7, 2, 8),
    GlossSpec("WATER", 1, 0, 2, 0, 4, 6, 3, 18),
    GlossSpec("SCHOOL", 2, 4, 0, 2, 1, 5, 3, 28),
    GlossSpec("WORK", 0, 2, 3, 2, 6, 2, 1, 28),
    GlossSpec("HELLO", 0, 1, 0, 4, 2, 4, 3, 18),
)


class ClipTiming(NamedTuple):
    """A clip's number of frames and the inclusive frame range of its sign."""

    frames: int
    start: int
    end: int


@dataclass(frozen=True)
class _ClipStyle:
    """The per-clip random variation."""

    background: tuple[int, int, int]
    offset: tuple[float, float]
    size_factor: float
    speed: float
    phase: float
    noise_sigma: float
    jpeg_quality: int


@dataclass(frozen=True)
class _Hand:
    """One hand to draw on a frame, in supersampled pixel units."""

    shape: str
    centre: tuple[float, float]
    radius: float
    colour: tuple[int, int, int]
    thumb: tuple[int, int] | None


def _sample_style(rng: np.random.Generator) -> _ClipStyle:
    brightness = rng.uniform(-20.0, 20.0)
    tint = rng.uniform(-10.0, 10.0, size=3)
    base = np.array([70.0, 78.0, 92.0]) + brightness + tint
    red, green, blue = (int(v) for v in np.clip(base, 0, 255).round())
    return _ClipStyle(
        background=(red, green, blue),
        offset=(
            float(rng.uniform(-_MAX_PATH_OFFSET, _MAX_PATH_OFFSET)),
            float(rng.uniform(-_MAX_PATH_OFFSET, _MAX_PATH_OFFSET)),
        ),
        size_factor=float(rng.uniform(1 - _MAX_SIZE_JITTER, 1 + _MAX_SIZE_JITTER)),
        speed=float(rng.uniform(0.8, 1.25)),
        phase=float(rng.uniform(-0.1, 0.1)),
        noise_sigma=float(rng.uniform(2.0, 6.0)),
        jpeg_quality=int(rng.integers(86, 95)),
    )


def _sample_timing(rng: np.random.Generator) -> ClipTiming:
    """Draws a clip length and the frame range of the sign within it."""
    n_frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    spare = n_frames - MIN_ACTIVE_FRAMES
    lead = int(rng.integers(0, min(MAX_EDGE_FRAMES, spare) + 1))
    trail = int(rng.integers(0, min(MAX_EDGE_FRAMES, spare - lead) + 1))
    return ClipTiming(n_frames, lead, n_frames - 1 - trail)


def _draw_signer(size: int, background: tuple[int, int, int]) -> Image.Image:
    """Draws the background and the fixed signer at supersampled resolution."""
    side = size * _SUPERSAMPLE
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    torso = (0.3 * side, 0.32 * side, 0.7 * side, side)
    neck = (0.45 * side, 0.22 * side, 0.55 * side, 0.33 * side)
    draw.rectangle(torso, fill=_SIGNER_GREY)
    draw.rectangle(neck, fill=_SIGNER_GREY)
    draw.ellipse(  # head
        (0.39 * side, 0.04 * side, 0.61 * side, 0.26 * side), fill=_SIGNER_GREY
    )
    return image


def _star(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    points = []
    for k in range(10):
        radius = 1.25 * r if k % 2 == 0 else 0.5 * r
        angle = math.pi * k / 5
        points.append((cx + radius * math.sin(angle), cy - radius * math.cos(angle)))
    return points


def _draw_hand(draw: ImageDraw.ImageDraw, hand: _Hand) -> None:
    """Draws one hand: its base shape plus an optional thumb stub."""
    (cx, cy), r, fill = hand.centre, hand.radius, hand.colour
    if hand.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif hand.shape == "square":
        draw.rectangle(
            (cx - 0.9 * r, cy - 0.9 * r, cx + 0.9 * r, cy + 0.9 * r), fill=fill
        )
    elif hand.shape == "triangle":
        draw.polygon(
            [
                (cx, cy - 1.2 * r),
                (cx - 1.1 * r, cy + 0.85 * r),
                (cx + 1.1 * r, cy + 0.85 * r),
            ],
            fill=fill,
        )
    elif hand.shape == "plus":
        arm = 0.38 * r
        draw.rectangle((cx - 1.1 * r, cy - arm, cx + 1.1 * r, cy + arm), fill=fill)
        draw.rectangle((cx - arm, cy - 1.1 * r, cx + arm, cy + 1.1 * r), fill=fill)
    elif hand.shape == "star":
        draw.polygon(_star(cx, cy, r), fill=fill)
    elif hand.shape == "ring":
        draw.ellipse(
            (cx - r, cy - r, cx + r, cy + r), outline=fill, width=max(1, round(0.4 * r))
        )
    elif hand.shape == "bar":
        draw.rectangle(
            (cx - 1.25 * r, cy - 0.42 * r, cx + 1.25 * r, cy + 0.42 * r), fill=fill
        )
    elif hand.shape == "diamond":
        draw.polygon(
            [
                (cx, cy - 1.25 * r),
                (cx + 1.25 * r, cy),
                (cx, cy + 1.25 * r),
                (cx - 1.25 * r, cy),
            ],
            fill=fill,
        )
    else:  # pragma: no cover - SHAPES and this function are kept in step
        raise ValueError(f"unknown hand shape {hand.shape!r}")
    if hand.thumb is not None:
        _draw_thumb(draw, hand, hand.thumb)


def _draw_thumb(draw: ImageDraw.ImageDraw, hand: _Hand, side: tuple[int, int]) -> None:
    """Draws a thumb stub sticking out of the hand towards ``side``."""
    (cx, cy), r, (sx, sy) = hand.centre, hand.radius, side
    near, far, half_width = 0.5 * r, 1.7 * r, 0.27 * r
    if sx:
        x0, x1 = sorted((cx + sx * near, cx + sx * far))
    else:
        x0, x1 = cx - half_width, cx + half_width
    if sy:
        y0, y1 = sorted((cy + sy * near, cy + sy * far))
    else:
        y0, y1 = cy - half_width, cy + half_width
    draw.rectangle((x0, y0, x1, y1), fill=hand.colour)


def _path_centre(
    spec: GlossSpec, style: _ClipStyle, progress: float, side: int
) -> tuple[float, float]:
    """Returns the dominant hand's centre at ``progress`` in [0, 1] along its path."""
    dx, dy = DIRECTIONS[spec.hand_position_finger_direction]
    travel = _MOTION_AMPLITUDE * (2.0 * progress - 1.0)
    x = LOCATIONS_X[spec.hand_location_x] + style.offset[0] + travel * dx
    y = LOCATIONS_Y[spec.hand_location_y] + style.offset[1] + travel * dy
    return x * side, y * side


def _hands_at(
    spec: GlossSpec, style: _ClipStyle, progress: float, side: int
) -> list[_Hand]:
    """Returns the hands of ``spec`` at ``progress`` in [0, 1] along the path."""
    colour = PALM_COLOURS[spec.hand_position_palm_orientation]
    dominant = _Hand(
        shape=SHAPES[spec.hand_shape_base_form],
        centre=_path_centre(spec, style, progress, side),
        radius=HAND_SIZES[spec.hand_shape_bending] * style.size_factor * side,
        colour=colour,
        thumb=THUMB_SIDES[spec.hand_shape_thumb_position],
    )
    if not spec.symmetry_operator:
        return [dominant]
    # The non-dominant hand mirrors the dominant one about the body midline and
    # is drawn darker; "alternating" runs its path backwards.
    if SYMMETRIES[spec.symmetry_operator] == "alternating":
        progress = 1.0 - progress
    x, y = _path_centre(spec, style, progress, side)
    red, green, blue = (round(_MIRROR_SHADE * c) for c in colour)
    thumb = dominant.thumb
    mirrored = replace(
        dominant,
        centre=(side - x, y),
        colour=(red, green, blue),
        thumb=None if thumb is None else (-thumb[0], thumb[1]),
    )
    return [dominant, mirrored]


def _progress(style: _ClipStyle, timing: ClipTiming, index: int) -> float:
    """How far along its path the hand is in frame ``index``, in [0, 1]."""
    along = (index - timing.start) / max(1, timing.end - timing.start)
    return min(1.0, max(0.0, 0.5 + style.phase + style.speed * (along - 0.5)))


def render_clip(
    spec: GlossSpec, timing: ClipTiming, size: int, rng: np.random.Generator
) -> tuple[list[Image.Image], int]:
    """Renders one clip of a gloss.

    Args:
        spec: The gloss to sign.
        timing: The clip's length and the inclusive frame range of the sign; the
            frames outside it show the signer without hands.
        size: Side of the square frames in pixels.
        rng: Source of the per-clip variation.

    Returns:
        The RGB frames and the JPEG quality to save them with.
    """
    style = _sample_style(rng)
    backdrop = _draw_signer(size, style.background)
    side = size * _SUPERSAMPLE
    frames = []
    for index in range(timing.frames):
        canvas = backdrop.copy()
        if timing.start <= index <= timing.end:
            draw = ImageDraw.Draw(canvas)
            progress = _progress(style, timing, index)
            for hand in _hands_at(spec, style, progress, side):
                _draw_hand(draw, hand)
        pixels = np.asarray(canvas.reduce(_SUPERSAMPLE), dtype=np.float32)
        pixels = pixels + rng.normal(0.0, style.noise_sigma, size=pixels.shape)
        frames.append(Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8)))
    return frames, style.jpeg_quality


def _validate(  # pylint: disable=too-many-arguments
    glosses: int, clips_per_gloss: int, seed: int, size: int, videos: bool, manifest
) -> None:
    if not MIN_GLOSSES <= glosses <= len(GLOSS_SPECS):
        raise UserError(
            f"glosses must be between {MIN_GLOSSES} and {len(GLOSS_SPECS)}, "
            f"got {glosses}"
        )
    if clips_per_gloss < MIN_CLIPS_PER_GLOSS:
        raise UserError(
            f"clips_per_gloss must be at least {MIN_CLIPS_PER_GLOSS}, "
            f"got {clips_per_gloss}"
        )
    if seed < 0:
        raise UserError(f"seed must be non-negative, got {seed}")
    if size < MIN_SIZE:
        raise UserError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    if videos and size % 2:
        raise UserError(f"--videos needs an even size (H.264 4:2:0), got {size}")
    if manifest and not videos:
        raise UserError("--manifest lists videos: give --videos with it")


def _prepare_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"output directory {output_dir} exists and is not a directory")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create output directory {output_dir}: {exc.strerror}"
        ) from exc


def _write_clip(
    clip_dir: Path, name: str, frames: list[Image.Image], quality: int
) -> None:
    """Writes a clip's frames and properties, removing stale frames first."""
    if clip_dir.is_symlink() or clip_dir.is_file():
        clip_dir.unlink()
    clip_dir.mkdir(exist_ok=True)
    for stale in clip_dir.glob("*.jpg"):
        stale.unlink()
    for index, frame in enumerate(frames):
        frame.save(clip_dir / f"{name}_{index}.jpg", format="JPEG", quality=quality)
    width, height = frames[0].size
    properties = {
        "File": name,
        "Frames": len(frames),
        "FPS": FPS,
        "Width": width,
        "Height": height,
    }
    (clip_dir / f"{name}_properties.json").write_text(
        json.dumps(properties, indent=2) + "\n", encoding="utf-8"
    )


def encode_video(
    file: BinaryIO, frames: list[Image.Image], quality: int, gop: int | None = None
) -> None:
    """Encode frames as an H.264 MP4 (yuv420p, 25 fps) into an open binary file.

    Args:
        file: the open binary file (seekable).
        frames: the RGB frames, all of one even size.
        quality: the clip's JPEG quality, mapped to a CRF (86..94 -> 22..14).
        gop: frames between key frames; None: x264's default (up to 250).
    """
    options = {"crf": str(_CRF_OF_QUALITY - quality)}
    if gop is not None:
        options["g"] = str(gop)
    encode_h264(file, frames, fps=round(FPS), options=options)


def _write_video(path: Path, frames: list[Image.Image], quality: int) -> None:
    """Writes a clip as ``<name>.mp4`` (atomically), removing a frame folder of the
    same name so that the video is the clip's only source."""
    folder = path.with_suffix("")
    if folder.is_dir() and not folder.is_symlink():
        for stale in folder.iterdir():
            stale.unlink()
        folder.rmdir()
    write_atomically(path, lambda out: encode_video(out, frames, quality))


def make_sample_dataset(  # pylint: disable=too-many-arguments
    output_dir: Path,
    *,
    glosses: int = 8,
    clips_per_gloss: int = 12,
    seed: int = 0,
    size: int = 80,
    videos: bool = False,
    manifest: bool = False,
) -> dict:
    """Writes the synthetic dataset to ``output_dir``.

    Clip ``c`` of gloss ``g`` depends only on ``(seed, g, c)``, so the same seed
    gives identical files. Existing clip folders of the same name are overwritten
    (their old frames are removed first); other files are left alone.

    Args:
        output_dir: Directory to write to; created if missing.
        glosses: Number of glosses, between 2 and ``len(GLOSS_SPECS)``.
        clips_per_gloss: Number of clips per gloss, at least 2.
        seed: Non-negative seed of all per-clip variation.
        size: Side of the square frames in pixels, at least 32 (even for videos).
        videos: Write each clip as ``<name>.mp4`` instead of a frame folder.
        manifest: Also write ``manifest.csv`` listing the videos (needs ``videos``).

    Returns:
        A summary: ``{"clips": ..., "frames": ..., "glosses": ...}``.

    Raises:
        UserError: An argument is out of range, or ``output_dir`` is not a
            directory and cannot be created.
        OSError: Writing a file failed.
    """
    _validate(glosses, clips_per_gloss, seed, size, videos, manifest)
    output_dir = Path(output_dir)
    _prepare_output_dir(output_dir)
    samples = [
        _write_sample(output_dir, (gloss_id, clip), seed, size, videos)
        for gloss_id in range(glosses)
        for clip in range(clips_per_gloss)
    ]
    _write_annotations(output_dir, samples, glosses)
    if manifest:
        _write_manifest(output_dir, samples)
    return {
        "clips": len(samples),
        "frames": sum(timing.frames for _, _, timing in samples),
        "glosses": glosses,
    }


def _write_sample(
    output_dir: Path, which: tuple[int, int], seed: int, size: int, video: bool
) -> tuple[str, int, ClipTiming]:
    """Renders and writes clip ``which = (gloss id, clip)`` as a frame folder or a
    video; returns its name, gloss id and timing."""
    gloss_id, clip = which
    spec = GLOSS_SPECS[gloss_id]
    name = f"{spec.word}_{clip:03d}"
    rng = np.random.default_rng([seed, gloss_id, clip])
    timing = _sample_timing(rng)
    frames, quality = render_clip(spec, timing, size, rng)
    if video:
        _write_video(output_dir / f"{name}.mp4", frames, quality)
    else:
        _write_clip(output_dir / name, name, frames, quality)
    return name, gloss_id, timing


def _write_manifest(
    output_dir: Path, samples: list[tuple[str, int, ClipTiming]]
) -> None:
    """Writes manifest.csv: path,start,end,gloss,<HamNoSys heads> per video."""
    rows = [",".join(["path", "start", "end", "gloss", *HAMNOSYS_CLASS_COUNTS])]
    for name, gloss_id, timing in samples:
        labels = [gloss_id, *GLOSS_SPECS[gloss_id].labels()]
        cells = [f"{name}.mp4", timing.start, timing.end, *labels]
        rows.append(",".join(str(cell) for cell in cells))
    data = ("\n".join(rows) + "\n").encode("utf-8")
    write_atomically(output_dir / MANIFEST_FILE, lambda out: out.write(data))


def _write_annotations(
    output_dir: Path, samples: list[tuple[str, int, ClipTiming]], glosses: int
) -> None:
    """Writes test_gloss.txt, test_hamnosys.txt and glosses.txt."""
    gloss_rows = ["name start end gloss"]
    hamnosys_rows = ["name start end " + " ".join(HAMNOSYS_CLASS_COUNTS)]
    for name, gloss_id, timing in samples:
        prefix = f"{name} {timing.start} {timing.end}"
        gloss_rows.append(f"{prefix} {gloss_id}")
        labels = GLOSS_SPECS[gloss_id].labels()
        hamnosys_rows.append(prefix + "".join(f" {label}" for label in labels))
    gloss_names = ["id gloss"] + [
        f"{gloss_id} {GLOSS_SPECS[gloss_id].word}" for gloss_id in range(glosses)
    ]
    for filename, rows in (
        ("test_gloss.txt", gloss_rows),
        ("test_hamnosys.txt", hamnosys_rows),
        ("glosses.txt", gloss_names),
    ):
        (output_dir / filename).write_text("\n".join(rows) + "\n", encoding="utf-8")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m data_preprocessing.make_sample_dataset",
        description=(
            "Write a small synthetic sign-language dataset (HearAI layout) whose "
            "glosses differ in visible HamNoSys attributes."
        ),
    )
    parser.add_argument("output_dir", type=Path, metavar="OUTPUT_DIR")
    parser.add_argument(
        "--glosses",
        type=int,
        metavar="N",
        default=8,
        help=f"number of glosses, {MIN_GLOSSES}..{len(GLOSS_SPECS)} (default: 8)",
    )
    parser.add_argument(
        "--clips_per_gloss",
        type=int,
        metavar="N",
        default=12,
        help=f"clips per gloss, at least {MIN_CLIPS_PER_GLOSS} (default: 12)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        default=0,
        help="seed of the per-clip variation (default: 0)",
    )
    parser.add_argument(
        "--size",
        type=int,
        metavar="PX",
        default=80,
        help=f"frame side in pixels, at least {MIN_SIZE} (default: 80)",
    )
    parser.add_argument(
        "--videos",
        action="store_true",
        help="write each clip as OUTPUT_DIR/<name>.mp4 instead of a frame folder",
    )
    parser.add_argument(
        "--manifest",
        action="store_true",
        help=f"also write OUTPUT_DIR/{MANIFEST_FILE}, a video manifest of the clips "
        "(with --videos)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` if None.

    Returns:
        0 on success, 2 on a user error (bad argument, unusable output dir).
    """
    args = _build_parser().parse_args(argv)
    try:
        summary = make_sample_dataset(
            args.output_dir,
            glosses=args.glosses,
            clips_per_gloss=args.clips_per_gloss,
            seed=args.seed,
            size=args.size,
            videos=args.videos,
            manifest=args.manifest,
        )
    except (UserError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    kind = " as videos" if args.videos else ""
    print(
        f"wrote {summary['clips']} clips ({summary['frames']} frames) of "
        f"{summary['glosses']} glosses{kind} to {args.output_dir}"
        + (f" (and {args.output_dir / MANIFEST_FILE})" if args.manifest else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
