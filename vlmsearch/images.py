"""Opening user images safely: every failure becomes a BadInputError naming the file and the reason."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vlmsearch.errors import BadInputError, TooLargeError, UnsupportedFileError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparency flattened onto white (clip-art and logos turn black otherwise)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Decode image bytes to RGB; refuse non-images, truncated files and decompression bombs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            # Checked before decoding: a bomb's header is tiny, its pixels are not.
            if width * height > max_pixels:
                raise TooLargeError(
                    f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
                    f"{max_pixels:,} (a decompression bomb or a huge scan); raise ingest.max_image_pixels to allow it"
                )
            image.load()  # decode fully now so truncation shows here, not later
            return to_rgb(image)
    except BadInputError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedFileError(f"{name}: not a readable image (unknown or wrong file format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLargeError(f"{name}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"{name}: broken image data ({exc})") from None


def load_image(path: Path | str, max_pixels: int = 64_000_000) -> Image.Image:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    return decode_image(data, str(path), max_pixels)


def fits(path: Path, max_pixels: int = 64_000_000) -> bool:
    """Whether a file's header says it is an image within the pixel limit (cheap: no decoding).
    For picking training and evaluation images; ingest decodes and reports each failure instead."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.width * image.height <= max_pixels
    except (OSError, Image.DecompressionBombError):
        return False
