"""Opening user images safely: every failure becomes a BadInputError naming the file and the reason.

Policy for huge images (`max_pixels`, ingest.max_image_pixels): Pillow's own process-wide bomb
check is off, because it would overrule the setting; ours runs on the header, before any pixel is
decoded. A JPEG over the limit is decoded reduced (1/2 to 1/8 scale, by the JPEG decoder itself, so
memory stays bounded); any other format over the limit is refused, with the setting to raise.
Decoding costs up to ~8 bytes per pixel at its peak (Pillow copies an RGBA image to shrink it).
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vlmsearch.errors import BadInputError, TooLargeError, UnsupportedFileError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
# The decoders we open: Pillow knows ~40 formats, some with rarely audited decoders (and EPS calls
# Ghostscript); a file of any other format is refused whatever its name says. (JPEG opens phones' MPO too.)
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
Image.MAX_IMAGE_PIXELS = None  # see the module note: our limit replaces Pillow's
# Damaged metadata (TIFF tags, EXIF) makes Pillow warn on the terminal; a file that cannot be used is
# reported once, by us, and one that decodes is fine.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparency flattened onto white (clip-art and logos turn black otherwise)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))  # in place: a huge drawing is not copied three times
        return flat
    return image.convert("RGB")


def _reduced(image: Image.Image, max_side: int) -> Image.Image:
    """The image shrunk by a whole factor (box filter: fast, memory-light) to at most `max_side`."""
    factor = math.ceil(max(image.size) / max_side)
    if factor <= 1:
        return image
    if image.mode not in ("RGB", "RGBA", "L", "LA", "I", "F"):
        image = image.convert({"1": "L", "P": "RGBA", "PA": "RGBA"}.get(image.mode, "RGB"))
    return image.reduce(factor)


def _within_limit(image: Image.Image, name: str, max_pixels: int) -> None:
    """Refuse (or, for a JPEG, reduce) an opened image over `max_pixels`, before decoding it."""
    width, height = image.size
    if width * height <= max_pixels:
        return
    if image.format in ("JPEG", "MPO"):
        scale = next((s for s in (2, 4, 8) if math.ceil(width / s) * math.ceil(height / s) <= max_pixels), 8)
        image.draft("RGB", (math.ceil(width / scale), math.ceil(height / scale)))  # the decoder's own 1/2, 1/4, 1/8
        if image.width * image.height <= max_pixels:
            return
    needed = 8 * width * height
    if needed > _memory_bytes():
        raise TooLargeError(f"{name}: the file claims {width}x{height} = {width * height:,} pixels, more than this "
                            f"machine's memory could decode (~{needed / 2**30:,.0f} GiB): a decompression bomb or a damaged header")  # fmt: skip
    raise TooLargeError(
        f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
        f"(a decompression bomb or a huge drawing; decoding it takes up to ~{needed / 2**30:.1f} GiB of memory); "
        f"to allow it: vlmsearch --set ingest.max_image_pixels={width * height} ..."
    )


def _memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def decode_image(data: bytes, name: str, max_pixels: int, max_side: int | None = None) -> Image.Image:
    """Decode image bytes to RGB, at most `max_side` pixels wide and high when given; refuse
    non-images, truncated files and decompression bombs.

    `image.info["source_size"]` is the size in the file (larger than the image when reduced)."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        source_size = image.size
        _within_limit(image, name, max_pixels)
        image.load()  # decode fully now so truncation shows here, not later
        rgb = to_rgb(_reduced(image, max_side) if max_side else image)
        rgb.info["source_size"] = source_size
        return rgb
    except BadInputError:
        raise
    except UnidentifiedImageError:
        raise UnsupportedFileError(f"{name}: not a readable image (unknown or wrong file format)") from None
    except Image.DecompressionBombError as exc:  # a GIF/TIFF frame or a PNG text chunk over Pillow's own limits
        raise TooLargeError(f"{name}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise BadInputError(f"{name}: broken image data ({exc or type(exc).__name__})") from None


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
        with Image.open(path, formats=FORMATS) as image:
            return image.width * image.height <= max_pixels
    except (OSError, Image.DecompressionBombError):
        return False
