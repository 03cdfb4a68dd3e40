"""Turn whatever a data source holds in its image column into an RGB PIL image, or a clear error."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


class ImageLoadError(ValueError):
    """An image that cannot be read; the runner records it as an error sample and goes on."""


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB, with 16- and 32-bit grayscale scaled to 8 bits (PIL's own conversion clips them: all white)."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        import numpy as np

        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or (img.mode == "I" and a.max(initial=0) > 255) else 255.0
        if img.mode == "F" and a.max(initial=0) <= 1.0:
            top = 1.0
        img = Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def load_image(value, root: Path | None = None) -> Image.Image:
    """PIL image, path (absolute or relative to ``root``), raw bytes, or a datasets ``{"bytes", "path"}`` dict."""
    try:
        if isinstance(value, Image.Image):
            img = value
        elif isinstance(value, dict):
            if value.get("bytes"):
                img = Image.open(io.BytesIO(value["bytes"]))
            elif value.get("path"):
                return load_image(value["path"], root)
            else:
                raise ImageLoadError("image dict has neither bytes nor path")
        elif isinstance(value, (bytes, bytearray)):
            img = Image.open(io.BytesIO(value))
        elif isinstance(value, (str, Path)):
            p = Path(value)
            if not p.is_absolute() and root is not None:
                p = Path(root) / p
            if not p.is_file():
                raise ImageLoadError(f"image file {p} does not exist")
            img = Image.open(p)
        elif value is None:
            raise ImageLoadError("row has no image")
        else:
            raise ImageLoadError(f"unsupported image value of type {type(value).__name__}")
        img.load()
        return to_rgb(img)
    except ImageLoadError:
        raise
    except Exception as e:  # PIL.UnidentifiedImageError, truncated files, OSError
        raise ImageLoadError(f"cannot decode image: {e}") from e
