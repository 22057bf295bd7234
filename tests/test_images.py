import io

import pytest
from PIL import Image

from vlmsearch.errors import BadInputError
from vlmsearch.images import decode_image, load_image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_decodes_real_image_to_rgb():
    image = decode_image(png_bytes(Image.new("L", (40, 30), 128)), "grey.png", max_pixels=10_000)
    assert image.mode == "RGB" and image.size == (40, 30)


def test_transparency_is_flattened_onto_white():
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert decode_image(png_bytes(clear), "clear.png", 10_000).getpixel((4, 4)) == (255, 255, 255)


def test_not_an_image_names_the_file():
    with pytest.raises(BadInputError, match=r"notes\.jpg: not a readable image"):
        decode_image(b"just some text, not a JPEG", "notes.jpg", 10_000)


def test_truncated_image_is_refused():
    data = png_bytes(Image.effect_noise((256, 256), 64))
    with pytest.raises(BadInputError, match="broken image data"):
        decode_image(data[: len(data) // 2], "cut.png", 10_000_000)


def test_decompression_bomb_is_refused_before_decoding():
    # A 1-bit 12000x12000 PNG is a few kB on disk but 144 Mpixels once decoded.
    bomb = png_bytes(Image.new("1", (12_000, 12_000)))
    assert len(bomb) < 100_000
    with pytest.raises(BadInputError, match="decompression bomb"):
        decode_image(bomb, "bomb.png", max_pixels=64_000_000)


def test_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="cannot read file"):
        load_image(tmp_path / "absent.png")
