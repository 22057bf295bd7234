"""OCR speed against what it still reads, for the ingest's OCR settings.

Two sets, both from packages on this machine:
- real: openclipart drawings (a seeded sample); the reference is what RapidOCR's own defaults read
  (its detector sees the image with the short side at least 736 pixels, plus the angle classifier);
- synthetic: drawings with words written at 12-48 pixels somewhere on canvases of 300-1,600 pixels,
  so small text on large images is covered and the truth is known;
- phrases: two-word phrases (16-56 pixels) on plain boards, read right only with the space between
  the words (RapidOCR's recogniser tends to drop spaces in English).

Each setting reports ms per image, word recall against the reference (real) and the truth
(synthetic), and how many text-bearing images lost every word.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from benchmarks.common import print_table, write_json
from vlmsearch.images import load_image
from vlmsearch.models.bundled import RapidOcr

CLIPART = Path("/usr/share/openclipart/png")
WORDS = ("harbour", "exit", "bakery", "station", "museum", "parking", "garden", "library", "pharmacy", "hotel",
         "market", "bridge", "school", "theatre", "airport", "river", "castle", "forest", "coffee", "ticket")  # fmt: skip
SETTINGS = {  # name -> RapidOcr options; the first is the reference
    "rapidocr defaults (min side 736, angle classifier)": {"det_max_side": None, "use_cls": True},
    "no angle classifier": {"det_max_side": None, "use_cls": False},
    "detector at most 1600 px": {"det_max_side": 1600, "use_cls": False},
    "detector at most 1280 px (the default)": {"det_max_side": 1280, "use_cls": False},
    "detector at most 960 px": {"det_max_side": 960, "use_cls": False},
}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]{3,}", text.lower()))


def real_images(count: int, seed: int = 0) -> list[Image.Image]:
    files = sorted(CLIPART.rglob("*.png"))
    random.Random(seed).shuffle(files)
    images = []
    for file in files[: count * 2]:
        try:
            images.append(load_image(file, 64_000_000))
        except Exception:  # noqa: BLE001 (openclipart has a few unreadable files; skip them)
            continue
        if len(images) == count:
            break
    return images


def synthetic_images(count: int, seed: int = 1) -> list[tuple[Image.Image, set[str]]]:
    """A drawing on a white canvas with one or two words of random size, colour and place."""
    rng = random.Random(seed)
    drawings = real_images(count, seed=seed + 100)
    out = []
    for drawing in drawings:
        side = rng.randint(300, 1600)
        canvas = Image.new("RGB", (side, int(side * rng.uniform(0.6, 1.0))), "white")
        drawing.thumbnail((canvas.width // 2, canvas.height // 2))
        canvas.paste(drawing, (rng.randint(0, canvas.width - drawing.width), rng.randint(0, canvas.height - drawing.height)))
        draw, words = ImageDraw.Draw(canvas), set()
        for word in rng.sample(WORDS, rng.randint(1, 2)):
            font = ImageFont.load_default(size=rng.randint(12, 48))
            text = word.upper() if rng.random() < 0.5 else word
            width = font.getlength(text)
            x, y = rng.uniform(0, max(1, canvas.width - width)), rng.uniform(0, canvas.height - 50)
            draw.text((x, y), text, fill=rng.choice([(0, 0, 0), (30, 60, 160), (150, 20, 20)]), font=font)
            words.add(word)
        out.append((canvas, words))
    return out


def phrase_images(count: int, seed: int = 3) -> list[tuple[Image.Image, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        phrase = " ".join(rng.sample(WORDS, 2))
        phrase = phrase.upper() if rng.random() < 0.5 else phrase
        font = ImageFont.load_default(size=rng.randint(16, 56))
        board = Image.new("RGB", (int(font.getlength(phrase)) + rng.randint(20, 300), font.size + rng.randint(20, 300)), "white")
        ImageDraw.Draw(board).text((10, 10), phrase, fill="black", font=font)
        out.append((board, phrase.lower()))
    return out


def _read(ocr: RapidOcr, images: list[Image.Image]) -> tuple[list[str], float]:
    started = time.perf_counter()
    texts = [" ".join(line.text for line in ocr.read(image)) for image in images]
    return texts, (time.perf_counter() - started) / len(images)


def run(real: int = 200, synthetic: int = 100, phrases: int = 60) -> dict:
    real_set = real_images(real)
    synthetic_set = synthetic_images(synthetic)
    phrase_set = phrase_images(phrases)
    reference = None
    results = {}
    for name, options in SETTINGS.items():
        ocr = RapidOcr(**options)
        ocr.read(real_set[0])  # first call warms ONNX Runtime up
        real_texts, real_s = _read(ocr, real_set)
        synthetic_texts, synthetic_s = _read(ocr, [image for image, _ in synthetic_set])
        phrase_texts, _ = _read(ocr, [image for image, _ in phrase_set])
        reference = reference or [_words(t) for t in real_texts]
        bearing = [i for i, words in enumerate(reference) if words]
        found = [_words(real_texts[i]) & reference[i] for i in bearing]
        truth_found = [_words(text) & words for text, (_, words) in zip(synthetic_texts, synthetic_set)]
        results[name] = {
            "options": options,
            "ms_per_image_real": round(1000 * real_s, 1),
            "ms_per_image_synthetic": round(1000 * synthetic_s, 1),
            "real_word_recall": round(sum(map(len, found)) / max(1, sum(len(reference[i]) for i in bearing)), 3),
            "real_images_lost": sum(not f for f in found),
            "real_text_images": len(bearing),
            "synthetic_word_recall": round(sum(map(len, truth_found)) / sum(len(w) for _, w in synthetic_set), 3),
            "synthetic_images_lost": sum(not f for f in truth_found),
            "phrases_exact": sum(phrase in text.lower() for text, (_, phrase) in zip(phrase_texts, phrase_set)),
        }
    base = results[next(iter(SETTINGS))]["ms_per_image_real"]
    rows = [
        {"method": name, "ms/img real": r["ms_per_image_real"], "speed-up": round(base / r["ms_per_image_real"], 2),
         "recall real": r["real_word_recall"], f"lost / {r['real_text_images']}": r["real_images_lost"],
         "ms/img synth": r["ms_per_image_synthetic"], "recall synth": r["synthetic_word_recall"],
         f"lost / {synthetic}": r["synthetic_images_lost"], f"phrases exact / {phrases}": r["phrases_exact"]}
        for name, r in results.items()
    ]  # fmt: skip
    print_table(f"OCR: {real} openclipart drawings (reference: RapidOCR defaults), {synthetic} synthetic text images, "
                f"{phrases} two-word phrases", rows)  # fmt: skip
    return {"real_images": real, "synthetic_images": synthetic, "phrases": phrases, "settings": results,
            "median_ms_real": statistics.median(r["ms_per_image_real"] for r in results.values())}  # fmt: skip


if __name__ == "__main__":
    print(write_json("ocr", run()))
