"""A strip of a few frames of a clip with their MediaPipe landmarks drawn on them."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image, ImageDraw

from utils.landmark_points import COMPONENT_EDGES, component_slices

#: The components drawn, in drawing order.
DRAWN_COMPONENTS = ["pose", "left_hand", "right_hand"]
#: Colour of each drawn component.
COLOURS = {
    "pose": (255, 210, 0),
    "left_hand": (0, 200, 255),
    "right_hand": (255, 60, 160),
}
#: Height of each frame in the strip, in pixels.
STRIP_HEIGHT = 240


def strip_positions(positions: list[int], count: int) -> list[int]:
    """Up to `count` of the clip's frame positions, evenly spread, first and last
    included."""
    if len(positions) <= count:
        return list(positions)
    picks = np.linspace(0, len(positions) - 1, count).round().astype(int)
    return [positions[i] for i in picks]


def _draw_points(
    draw: ImageDraw.ImageDraw, points: np.ndarray, size: tuple[int, int]
) -> int:
    """Draw one frame's `(K, 3)` normalised landmarks (NaN = absent) on an image of
    `size` (width, height); the points drawn."""
    drawn = 0
    scale = np.asarray(size, dtype=np.float32)
    for component, part in zip(DRAWN_COMPONENTS, component_slices(DRAWN_COMPONENTS)):
        xy = points[part, :2] * scale
        colour = COLOURS[component]
        for start, end in COMPONENT_EDGES[component]:
            if np.isfinite(xy[[start, end]]).all():
                draw.line([tuple(xy[start]), tuple(xy[end])], fill=colour, width=2)
        for x, y in xy[np.isfinite(xy).all(axis=1)]:
            draw.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colour)
            drawn += 1
    return drawn


def render_strip(
    frames: list[np.ndarray], points: list[np.ndarray | None]
) -> tuple[bytes, int]:
    """Frames side by side, each scaled to `STRIP_HEIGHT`, landmarks drawn on them.

    Args:
        frames: RGB uint8 `(H, W, 3)` frames.
        points: per frame, `(K, 3)` landmarks of `DRAWN_COMPONENTS` in normalised
            image coordinates (NaN where absent), or None to draw none.

    Returns:
        The JPEG bytes and the number of points drawn.
    """
    tiles, drawn = [], 0
    for frame, frame_points in zip(frames, points):
        image = Image.fromarray(frame)
        if image.height >= 2 * STRIP_HEIGHT:  # a box filter first: much faster
            image = image.reduce(image.height // STRIP_HEIGHT)
        scale = STRIP_HEIGHT / image.height
        image = image.resize(
            (max(1, round(image.width * scale)), STRIP_HEIGHT),
            Image.Resampling.BILINEAR,
        )
        if frame_points is not None:
            drawn += _draw_points(ImageDraw.Draw(image), frame_points, image.size)
        tiles.append(image)
    width = sum(tile.width for tile in tiles) + 4 * max(0, len(tiles) - 1)
    strip = Image.new("RGB", (max(1, width), STRIP_HEIGHT), (32, 32, 32))
    left = 0
    for tile in tiles:
        strip.paste(tile, (left, 0))
        left += tile.width + 4
    buffer = io.BytesIO()
    # JPEG: a tenth of PNG's encoding time for a photo strip, on the request's path.
    strip.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue(), drawn


def as_data_url(jpeg: bytes) -> str:
    """A JPEG as a `data:` URL an `<img>` shows."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
