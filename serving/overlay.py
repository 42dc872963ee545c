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


def _draw_points(draw: ImageDraw.ImageDraw, points: np.ndarray, scale: float) -> int:
    """Draw one frame's `(K, 3)` pixel landmarks (NaN = absent); the points drawn."""
    drawn = 0
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
    frames: list[np.ndarray],
    points: list[np.ndarray | None],
    points_height: int | None = None,
) -> tuple[bytes, int]:
    """Frames side by side, each scaled to `STRIP_HEIGHT`, landmarks drawn on them.

    Args:
        frames: RGB uint8 `(H, W, 3)` frames.
        points: per frame, `(K, 3)` landmarks of `DRAWN_COMPONENTS` in pixel
            coordinates (NaN where absent), or None to draw none.
        points_height: the frame height the points' coordinates refer to (the
            video's own when the frames were decoded smaller); None: the frames'.

    Returns:
        The PNG bytes and the number of points drawn.
    """
    tiles, drawn = [], 0
    for frame, frame_points in zip(frames, points):
        image = Image.fromarray(frame)
        scale = STRIP_HEIGHT / image.height
        image = image.resize((max(1, round(image.width * scale)), STRIP_HEIGHT))
        if frame_points is not None:
            point_scale = STRIP_HEIGHT / (points_height or frame.shape[0])
            drawn += _draw_points(ImageDraw.Draw(image), frame_points, point_scale)
        tiles.append(image)
    width = sum(tile.width for tile in tiles) + 4 * max(0, len(tiles) - 1)
    strip = Image.new("RGB", (max(1, width), STRIP_HEIGHT), (32, 32, 32))
    left = 0
    for tile in tiles:
        strip.paste(tile, (left, 0))
        left += tile.width + 4
    buffer = io.BytesIO()
    strip.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue(), drawn


def as_data_url(png: bytes) -> str:
    """A PNG as a `data:` URL an `<img>` shows."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
