import io

import pytest
from PIL import Image

from vlmsearch.errors import BadInputError, TooLargeError, UnsupportedFileError
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


def test_the_pixel_limit_is_ours_and_raising_it_decodes_reduced():
    # Over Pillow's own bomb limit (89 Mpixels) too: the setting, not Pillow, decides.
    drawing = png_bytes(Image.new("1", (10_000, 10_000), 1))
    with pytest.raises(TooLargeError, match=r"--set ingest.max_image_pixels=100000000"):
        decode_image(drawing, "huge.png", max_pixels=64_000_000)
    image = decode_image(drawing, "huge.png", max_pixels=100_000_000, max_side=1000)
    assert image.size == (1000, 1000) and image.mode == "RGB"
    assert image.info["source_size"] == (10_000, 10_000) and image.getpixel((500, 500)) == (255, 255, 255)


def test_a_jpeg_over_the_limit_is_decoded_at_a_reduced_scale():
    data = io.BytesIO()
    Image.effect_noise((4000, 3000), 40).convert("RGB").save(data, format="JPEG")
    image = decode_image(data.getvalue(), "scan.jpg", max_pixels=1_000_000)
    assert image.size == (1000, 750) and image.info["source_size"] == (4000, 3000)


def test_formats_outside_the_list_are_refused_whatever_the_name():
    ppm = io.BytesIO()
    Image.new("RGB", (8, 8)).save(ppm, format="PPM")  # Pillow reads it, we do not
    with pytest.raises(UnsupportedFileError, match="not a readable image"):
        decode_image(ppm.getvalue(), "photo.png", 1_000_000)
