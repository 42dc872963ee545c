"""Decoding one frame image to 8-bit RGB, refusing what would go wrong silently.

PIL's `convert("RGB")` clips a 16-bit greyscale frame (PNG, TIFF) to white, so those
are scaled to 8 bits here; 32-bit and floating-point images have no agreed range and
are refused by name. An image whose header claims more pixels than PIL's
`MAX_IMAGE_PIXELS` (a decompression bomb) is refused before it is decoded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from utils.errors import DataError
from utils.files import require_file

# PIL's modes for 16-bit greyscale, in any byte order.
SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N")
# Modes without an 8-bit meaning: 32-bit integers, floats.
UNSUPPORTED_MODES = {"I": "32-bit integer", "F": "32-bit floating-point"}


def _to_rgb(image: Image.Image, path: Path) -> np.ndarray:
    """The decoded image as a `(H, W, 3)` uint8 array."""
    if image.mode in SIXTEEN_BIT_GREY:
        grey = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in UNSUPPORTED_MODES or image.mode.startswith("I;"):
        kind = UNSUPPORTED_MODES.get(image.mode, image.mode)
        raise DataError(
            f"{path}: a {kind} image (PIL mode {image.mode}); frames must be 8-bit "
            "or 16-bit images"
        )
    return np.asarray(image.convert("RGB"))


def decode_image(path: Path, size_hint: int | None) -> np.ndarray:
    """An RGB image as a `(H, W, 3)` uint8 array; JPEGs are decoded near `size_hint`.

    Raises:
        DataError: naming the file when it is not a readable image.
    """
    require_file(path, "frame file")
    try:
        with warnings.catch_warnings():
            # Past MAX_IMAGE_PIXELS PIL only warns; the frame is refused all the same.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if size_hint is not None and image.format == "JPEG":
                    image.draft("RGB", (size_hint, size_hint))
                return _to_rgb(image, path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"{path}: image too large to decode ({error})") from None
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"{path}: cannot read image ({error})") from None
