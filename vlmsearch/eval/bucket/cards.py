"""Rendered cards for `eval extract`: shop signs, price tags, notices, tickets and product labels,
each with the fields it shows and one it does not (expected null: an answer there is invented).

Values come from hand-written lists, split once: dev and test share no shop, product, town or event
name, so a prompt tuned on dev is not tuned on test's words. Cards are drawn in two font families
or more (Pillow's own, and DejaVu Sans / Serif / Mono where Debian's fonts-dejavu is installed), on
several colours, then rotated a few degrees, blurred or speckled, and saved as JPEG.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf")
COLOURS = (((250, 250, 245), (20, 20, 20)), ((21, 67, 140), (255, 255, 255)), ((250, 220, 60), (30, 30, 30)),
           ((24, 106, 59), (255, 255, 255)), ((235, 235, 235), (150, 20, 20)))  # fmt: skip

NAMES = {
    "dev": {
        "shop": [
            "Bella's Bakery",
            "Green Leaf Cafe",
            "Harbour Books",
            "Nordic Bikes",
            "Corner Pharmacy",
            "Blue Door Deli",
            "Maple Hardware",
            "Sunrise Florist",
            "Oak Street Barber",
            "Golden Noodle",
        ],
        "product": ["Oat Milk", "Basmati Rice", "Dark Chocolate", "Olive Oil", "Green Tea", "Rye Bread", "Honey", "Pasta Shells"],
        "town": ["Oxford", "Leeds", "Bristol", "York", "Bath", "Derby", "Exeter", "Dover"],
        "event": ["Book Fair", "Jazz Night", "Farmers Market", "Chess Club", "Yoga Class", "Film Evening"],
        "place": ["Town Hall", "Room 12", "Main Library", "Park Pavilion", "Hall B"],
    },
    "test": {
        "shop": [
            "Rosa's Pizzeria",
            "Silver Spoon Diner",
            "Atlas Travel",
            "Pine Tree Pets",
            "City Optician",
            "Red Kite Tea Room",
            "Lotus Spa",
            "Northgate Tailors",
            "Kiwi Fruit Market",
            "Orbit Games",
            "Willow Dental",
            "Fox and Hound",
        ],
        "product": [
            "Almond Butter",
            "Brown Lentils",
            "Coconut Water",
            "Apple Juice",
            "Wild Rice",
            "Ground Coffee",
            "Peanut Oil",
            "Maple Syrup",
            "Sea Salt",
            "Corn Flakes",
        ],
        "town": ["Cardiff", "Glasgow", "Norwich", "Chester", "Durham", "Lincoln", "Bangor", "Perth", "Truro", "Ely"],
        "event": ["Craft Fair", "Quiz Night", "Choir Practice", "Art Show", "Dance Workshop", "Poetry Reading", "Plant Swap"],
        "place": ["Village Hall", "Room 4", "Community Centre", "Studio 2", "East Wing", "Garden Room"],
    },
}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")


@dataclass(frozen=True)
class Card:
    kind: str
    lines: tuple[str, ...]  # as drawn, top to bottom
    schema: dict
    expect: dict[str, str | float | None]  # value (compared squeezed), number, or None (not shown)
    accept_prefix: dict[str, str]  # a field's printed label that may come with its value ("Tel", "Seat")


def _hours(rng: random.Random) -> str:
    opens, closes = rng.randint(6, 10), rng.randint(4, 9)
    return rng.choice([f"{opens}am - {closes}pm", f"{opens}:00 - {closes + 12}:00", f"{opens}AM-{closes}PM"])


def _phone(rng: random.Random) -> str:
    def digits(n: int) -> str:
        return "".join(str(rng.randint(0, 9)) for _ in range(n))

    return rng.choice(
        [
            f"0{rng.randint(11, 99)}{rng.randint(1, 9)} {digits(3)} {digits(4)}",
            f"+44 20 {digits(4)} {digits(4)}",
            f"({rng.randint(200, 999)}) {digits(3)}-{digits(4)}",
        ]
    )


def _date(rng: random.Random) -> str:
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.choice((2026, 2027))
    return rng.choice([f"{day} {MONTHS[month - 1]} {year}", f"{year}-{month:02d}-{day:02d}", f"{day:02d}/{month:02d}/{year}"])


def _price(rng: random.Random) -> tuple[str, float]:
    value = float(round(rng.randint(1, 60) + rng.choice((0, 0.25, 0.5, 0.99, 0.49)), 2))
    return rng.choice(["$", "£", "€"]) + f"{value:.2f}", value


def _schema(**fields: str) -> dict:
    kinds = {"string": {"type": "string"}, "number": {"type": "number"}}
    return {"type": "object", "properties": {name: dict(kinds[kind]) for name, kind in fields.items()}}


def card(kind: str, names: dict[str, list[str]], rng: random.Random) -> Card:
    if kind == "shop sign":
        shop, hours, phone = rng.choice(names["shop"]), _hours(rng), _phone(rng)
        lines = (shop.upper() if rng.random() < 0.5 else shop, f"Open {hours}", f"Tel {phone}")
        return Card(kind, lines, _schema(shop_name="string", opening_hours="string", phone="string", email="string"),
                    {"shop_name": shop, "opening_hours": hours, "phone": phone, "email": None}, {"opening_hours": "open", "phone": "tel"})  # fmt: skip
    if kind == "price tag":
        product, (shown, value) = rng.choice(names["product"]), _price(rng)
        weight = f"{rng.choice((250, 500, 750, 1000))} g"
        lines = (product, shown, weight)
        return Card(kind, lines, _schema(product="string", price="number", weight="string", best_before="string"),
                    {"product": product, "price": value, "weight": weight, "best_before": None}, {})  # fmt: skip
    if kind == "notice":
        event, date, place = rng.choice(names["event"]), _date(rng), rng.choice(names["place"])
        time = f"{rng.randint(1, 9)}:{rng.choice(('00', '30', '15'))} pm"
        lines = (event.upper(), date, f"{time}, {place}")
        return Card(kind, lines, _schema(event="string", date="string", time="string", place="string", price="number"),
                    {"event": event, "date": date, "time": time, "place": place, "price": None}, {})  # fmt: skip
    if kind == "ticket":
        origin, destination = rng.sample(names["town"], 2)
        date, seat, (shown, value) = _date(rng), f"{rng.choice('ABCDEF')}{rng.randint(1, 60)}", _price(rng)
        lines = ("TRAIN TICKET", f"From {origin} to {destination}", f"Date {date}  Seat {seat}", f"Fare {shown}")
        return Card(kind, lines, _schema(origin="string", destination="string", date="string", seat="string", price="number", phone="string"),
                    {"origin": origin, "destination": destination, "date": date, "seat": seat, "price": value, "phone": None},
                    {"date": "date", "seat": "seat"})  # fmt: skip
    product, weight, best_before = rng.choice(names["product"]), f"{rng.choice((100, 200, 400, 900))} g", _date(rng)
    lines = (product.upper(), f"Net weight {weight}", f"Best before {best_before}")
    return Card(kind, lines, _schema(product="string", weight="string", best_before="string", price="number"),
                {"product": product, "weight": weight, "best_before": best_before, "price": None},
                {"weight": "net weight", "best_before": "best before"})  # fmt: skip


KINDS = ("shop sign", "price tag", "notice", "ticket", "product label")


def fonts() -> list[tuple[str, object]]:
    """(name, loader(size)): Pillow's bundled font always; DejaVu faces where installed."""
    out = [("Aileron (Pillow)", lambda size: ImageFont.load_default(size=size))]
    for name in FONT_FILES:
        if (DEJAVU / name).is_file():
            out.append((name.removesuffix(".ttf"), lambda size, path=DEJAVU / name: ImageFont.truetype(str(path), size)))
    return out


def draw(c: Card, rng: random.Random, font) -> Image.Image:
    """The card on a light table, rotated a little, with blur or speckle now and then."""
    board, ink = rng.choice(COLOURS)
    size = rng.choice((30, 34, 40))
    face = font(size)
    width = int(max(face.getlength(line) for line in c.lines)) + 80
    height = len(c.lines) * int(size * 1.6) + 60
    card_image = Image.new("RGB", (width, height), board)
    pen = ImageDraw.Draw(card_image)
    pen.rectangle((3, 3, width - 4, height - 4), outline=ink, width=3)
    for i, line in enumerate(c.lines):
        pen.text((40, 30 + i * int(size * 1.6)), line, fill=ink, font=face)
    card_image = card_image.rotate(rng.uniform(-6, 6), expand=True, fillcolor=(200, 196, 188), resample=Image.Resampling.BICUBIC)
    table = Image.new("RGB", (card_image.width + 60, card_image.height + 60), (200, 196, 188))
    table.paste(card_image, (30, 30))
    if rng.random() < 0.4:
        table = table.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    if rng.random() < 0.5:
        pixels = np.asarray(table, dtype=np.int16) + np.random.default_rng(rng.randint(0, 2**31)).normal(0, 10, (table.height, table.width, 3))
        table = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return table


def expect_pattern(value: str, prefix: str = "") -> str:
    """What a written value may be, squeezed (no case, spaces or punctuation): the value, or the
    value after its printed label ("Tel 0171..." for a phone)."""
    squeezed = squeeze(value)
    return f"(?:{re.escape(squeeze(prefix))})?{re.escape(squeezed)}" if prefix else re.escape(squeezed)


def squeeze(text: str) -> str:
    return "".join(ch for ch in str(text).casefold() if ch.isalnum())
