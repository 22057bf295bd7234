"""Structured extraction, OCR in reading order and located objects, on the real offline models:
rendered cards read by RapidOCR and filled by the bundled Qwen under llama.cpp's JSON grammar, the
retry path on a real (tiny) transformers model, a real OpenAI-compatible server, and scenes of real
drawings for the detector."""

import json
import random
from pathlib import Path

import pytest
import tiny_models
from conftest import run_cli, skimage_photo
from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel

from vlmsearch.config import ModelSpec
from vlmsearch.errors import BadInputError
from vlmsearch.eval.bucket.scenes import scene
from vlmsearch.extract import from_fields, from_json_schema, load_schema, reading_order
from vlmsearch.extract.detect import iou
from vlmsearch.models import Message, build_model
from vlmsearch.models.protocols import OcrLine
from vlmsearch.models.structured import first_json_object, structured_reply

DRAWINGS = Path("/usr/share/openclipart/png")


class Shop(BaseModel):
    """A pydantic model given as module:Class (`--schema test_extract:Shop`)."""

    shop_name: str
    phone: str
    email: str | None = None


def card(lines: list[str], path: Path) -> Path:
    image = Image.new("RGB", (620, 90 + 70 * len(lines)), (21, 67, 140))
    pen = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        pen.text((40, 40 + 70 * i), line, fill="white", font=ImageFont.load_default(size=40))
    image.save(path)
    return path


@pytest.fixture(scope="module")
def bakery(tmp_path_factory) -> Path:
    return card(["BELLA'S BAKERY", "Open 7am - 6pm", "Tel 0171 555 0192", "Croissant $2.50"], tmp_path_factory.mktemp("cards") / "bakery.png")


@pytest.fixture(scope="module")
def engine(engine_factory, tmp_path_factory):
    return engine_factory(tmp_path_factory.mktemp("extract-store"))


def test_field_lists_and_schemas_become_nullable_objects(tmp_path):
    schema = from_fields("name, price: number, open_hours, tags: list")
    assert schema.fields == ["name", "price", "open_hours", "tags"]
    assert schema.nullable["required"] == schema.fields and schema.nullable["additionalProperties"] is False
    schema.validate({"name": None, "price": 2.5, "open_hours": None, "tags": ["a"]})
    with pytest.raises(BadInputError, match="does not follow the schema"):
        schema.validate({"name": "x", "price": "cheap", "open_hours": None, "tags": None})
    (tmp_path / "s.json").write_text(json.dumps({"type": "object", "properties": {"phone": {"type": "string"}}}))
    assert load_schema(str(tmp_path / "s.json")).fields == ["phone"]
    assert load_schema("test_extract:Shop").fields == ["shop_name", "phone", "email"]
    for bad, message in (
        ("name, name", "given twice"), ("price: money", "unknown type 'money'"), ("two words", "field name"), (" , ", "no fields"),
    ):  # fmt: skip
        with pytest.raises(BadInputError, match=message):
            from_fields(bad)
    for bad, message in (
        ({"type": "array"}, "must describe an object"),
        ({"type": "object", "properties": {"a": {"type": "strin"}}}, "not a valid JSON Schema"),
    ):
        with pytest.raises(BadInputError, match=message):
            from_json_schema(bad)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(BadInputError, match="is not JSON"):
        load_schema(str(tmp_path / "broken.json"))
    with pytest.raises(BadInputError, match="cannot import"):
        load_schema("no_such_module:Thing")


def test_extract_reads_a_sign_into_fields_and_invents_nothing(engine, bakery):
    extraction = engine.extract(bakery, "shop_name, opening_hours, phone, croissant_price: number, email, website")
    data = extraction.data
    squeezed = {k: v.casefold().replace(" ", "") for k, v in data.items() if isinstance(v, str)}  # OCR drops spaces
    assert squeezed["shop_name"] == "bella'sbakery" and squeezed["phone"] == "01715550192"
    assert "7am" in squeezed["opening_hours"] and data["croissant_price"] == 2.5
    assert data["email"] is None and data["website"] is None  # the sign shows neither: null, not a guess
    assert extraction.sources["phone"] == "image:text" and "email" not in extraction.sources
    assert extraction.page.text.splitlines()[0].replace(" ", "") == "BELLA'SBAKERY"


def test_the_retry_path_always_gives_a_valid_object_whatever_the_model(engine, bakery, tmp_path):
    """A random tiny transformers model cannot write JSON: it is re-asked, then every field is null."""
    chat = build_model("chat", ModelSpec(backend="transformers", model=str(tiny_models.causal_lm(tmp_path / "lm"))), tmp_path)
    assert not getattr(chat, "constrains_json", False)
    schema = from_fields("shop_name, price: number")
    assert structured_reply(chat, [Message("user", "the cat")], schema.nullable, retries=1) is None
    from vlmsearch.extract.extractor import Extractor

    extraction = Extractor(engine.models, chat, engine.settings.extract)(Image.open(bakery), schema)
    assert extraction.data == {"shop_name": None, "price": None}


def test_a_reply_in_prose_is_read_and_checked():
    assert first_json_object('Sure! ```json\n{"a": 1}\n``` done') == {"a": 1}
    assert first_json_object('{not json} then {"b": [1, 2]}') == {"b": [1, 2]}
    assert first_json_object("no object [1, 2]") is None


def test_an_openai_compatible_server_constrains_the_reply(llama_server, tmp_path):
    spec = ModelSpec(backend="openai", model="qwen-local", options={"base_url": llama_server, "accepts_images": False, "json_format": "json_object"})
    chat = build_model("chat", spec, tmp_path)
    schema = from_fields("city, population: integer").nullable
    reply = structured_reply(chat, [Message("user", "Zorbland's capital Quimby has 41000 people. Give the city and its population.")], schema, retries=0)
    assert reply is not None and reply["city"] == "Quimby" and reply["population"] == 41000


def test_ocr_lines_come_in_reading_order(engine, tmp_path):
    def line(text, x, y):
        return OcrLine(text, 0.9, ((x, y), (x + 100, y), (x + 100, y + 20), (x, y + 20)))

    page = reading_order([line("4.50", 300, 102), line("Tea", 10, 100), line("Menu", 10, 10), line("Cake", 10, 200), line("3.00", 300, 198)])
    assert page.text == "Menu\nTea 4.50\nCake 3.00" and [r.row for r in page.lines] == [0, 1, 1, 2, 2]
    path = card(["OPENING HOURS", "Mon-Fri 9am - 5pm"], tmp_path / "hours.png")
    read = engine.ocr(path)
    assert read.text.splitlines()[0] == "OPENING HOURS" and all(len(r.box) == 4 and r.box[0] < r.box[2] for r in read.lines)


@pytest.mark.skipif(not DRAWINGS.is_dir(), reason="needs Debian's openclipart-png")
def test_detect_finds_each_placed_drawing(engine):
    subjects = json.loads(Path("eval/natural/subjects.json").read_text())
    drawings = [DRAWINGS / subjects[name]["drawing"] for name in ("potato", "ladybug", "lemon")]
    picture, boxes = scene(drawings, random.Random(3))
    found = engine.detect(picture, ["potato", "ladybug", "lemon", "airplane", "guitar"])
    assert len(found) == len([b for b in boxes if b])
    for box in filter(None, boxes):  # one tight box per drawing; labels are the joint model's best guess
        assert max(iou(d.box, box) for d in found) >= 0.8
    assert all(d.label in ("potato", "ladybug", "lemon", "airplane", "guitar") and 0 <= d.score <= 1 for d in found)
    photo = engine.detect(skimage_photo("chelsea"))  # no plain background: fixed regions, labelled by the tagger
    assert photo and all(d.score >= engine.settings.extract.min_region_score for d in photo)
    with pytest.raises(BadInputError, match="no labels given"):
        engine.detect(picture, [" ", ""])


def test_the_commands_print_json_in_the_order_given(bakery, tmp_path):
    other = card(["TRAIN TICKET", "Seat B24"], tmp_path / "ticket.png")
    result = run_cli("--store", str(tmp_path / "store"), "extract", str(bakery), str(other), "--fields", "phone, seat, email", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(bakery), str(other)]
    assert all(list(line["data"]) == ["phone", "seat", "email"] and line["data"]["email"] is None for line in lines)
    assert lines[0]["data"]["phone"].replace(" ", "") == "01715550192" and lines[0]["sources"]["phone"] == "image:text"
    assert "B24" in lines[1]["data"]["seat"] and lines[1]["sources"]["seat"] == "image:text"
    ocr = json.loads(run_cli("ocr", str(other), "--json").stdout)
    assert ocr["text"] == "TRAIN TICKET\nSeat B24"
    detected = json.loads(run_cli("detect", str(other), "--json").stdout)
    assert all(set(d) == {"label", "score", "box"} for d in detected)
    refused = run_cli("extract", str(bakery))
    assert refused.returncode == 1 and "give the fields to extract" in refused.stderr


def test_with_docs_a_field_comes_from_a_retrieved_passage_and_names_it(engine, bakery, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bakery.md").write_text("# Bella's Bakery\nBella's Bakery on Mill Lane was founded in 1987 by Bella Rossi, and bakes its croissants at 5am.")
    (docs / "tides.md").write_text("# Tides\nThe tide rises twice a day on most coasts.")
    assert engine.index([docs]).added == 2
    without = engine.extract(bakery, "shop_name, founded: integer")
    assert without.data["founded"] is None  # the sign does not say
    extraction = engine.extract(bakery, "shop_name, founded: integer", docs=True)
    assert extraction.data["founded"] == 1987
    passage = extraction.sources["founded"]
    assert passage.endswith(":0") and extraction.sources["shop_name"] == "image:text"
    assert any(e.source == passage and "1987" in e.text for e in extraction.evidence)


@pytest.mark.skipif(not DRAWINGS.is_dir(), reason="needs Debian's openclipart-png")
def test_the_extraction_set_is_rendered_and_scored(tmp_path):
    from vlmsearch.eval.extraction import build_located, load_items

    written = build_located(tmp_path / "set", Path("eval/natural/subjects.json"), DRAWINGS)
    cards, scenes = load_items(written["test"]["extract"]), load_items(written["test"]["detect"])
    assert len(cards) >= 60 and len(scenes) >= 20 and {c["kind"] for c in cards} >= {"shop sign", "ticket", "price tag"}
    folder = written["dev"]["extract"].parent
    for name, items in (("extract-few.jsonl", load_items(written["dev"]["extract"])[:2]), ("detect-few.jsonl", load_items(written["dev"]["detect"])[:2])):
        (folder / name).write_text("".join(json.dumps(i) + "\n" for i in items))
    out = tmp_path / "report"
    scored = run_cli("eval", "extract", "--bucket", str(folder / "extract-few.jsonl"), "--out", str(out))
    assert scored.returncode == 0, scored.stderr
    report = json.loads((out / "extract-llm.json").read_text())
    assert report["items"] == 2 and report["valid_share"] == 1.0 and report["fields_of_another_schema"] > 0
    assert 0 <= report["exact_match"] <= 1 and set(report["per_kind"]) == {"shop sign", "price tag"}
    located = run_cli("eval", "detect", "--bucket", str(folder / "detect-few.jsonl"), "--out", str(out))
    assert located.returncode == 0, located.stderr
    detected = json.loads((out / "detect.json").read_text())
    assert detected["objects"] == 1 + 2 and detected["box_recall_any_label"] > 0.5 and (out / "detect.png").is_file()
