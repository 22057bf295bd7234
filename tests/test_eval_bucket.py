"""The bucket builder on the real labelled collection (Debian's openclipart) and WordNet: reproducible,
the asked object really is in the picture, and every answer is in exactly one document."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmsearch.eval.bucket.build import BucketSettings, build_buckets
from vlmsearch.eval.bucket.canvas import CELL, drawing
from vlmsearch.eval.bucket.items import load_bucket
from vlmsearch.eval.bucket.questions import names_regex
from vlmsearch.eval.bucket.subjects import subject_of
from vlmsearch.joint.pairs import load_pairs
from vlmsearch.knowledge.wordnet import WordNet

OPENCLIPART = Path("/usr/share/openclipart/png")
pytestmark = pytest.mark.skipif(not OPENCLIPART.is_dir(), reason="needs Debian's openclipart-png (make setup installs it)")
ITEMS = 14


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("bucket")
    settings = BucketSettings(images=OPENCLIPART, out=out, splits=("test",), max_items=ITEMS)
    path = build_buckets(settings, WordNet())["test"]
    return settings, load_bucket(path)


@pytest.fixture(scope="module")
def subjects_by_file():
    wordnet = WordNet()
    return {str(p.image.relative_to(OPENCLIPART)): subject_of(p, wordnet) for p in load_pairs(OPENCLIPART)}


def cells(image: Image.Image) -> list[Image.Image]:
    columns, rows = image.width // CELL, image.height // CELL
    return [image.crop((c * CELL, r * CELL, (c + 1) * CELL, (r + 1) * CELL)) for r in range(rows) for c in range(columns)]


def test_same_images_and_seed_give_the_same_bucket(built, tmp_path):
    _, bucket = built
    again = build_buckets(BucketSettings(images=OPENCLIPART, out=tmp_path, splits=("test",), max_items=ITEMS), WordNet())["test"]
    assert again.read_text() == bucket.path.read_text()
    for item in bucket.items:
        assert (again.parent / item.image).read_bytes() == bucket.image_path(item).read_bytes()


def test_every_kind_of_item_is_there(built):
    _, bucket = built
    assert len(bucket.items) == ITEMS
    assert {"single", "composite", "text"} <= {i.type for i in bucket.items if i.answerable}
    assert any(not i.answerable for i in bucket.items)
    assert all(i.reference and i.cluster and i.image for i in bucket.items)


def test_every_answer_is_in_exactly_one_document_its_source(built):
    _, bucket = built
    documents = {p.name: p.read_text() for p in bucket.default_docs.glob("*.md")}
    for item in bucket.items:
        if item.answerable:
            holding = [name for name, text in documents.items() if re.search(item.expect, text)]
            assert holding == [item.source], (item.id, item.expect, holding)
    manifest = json.loads((bucket.path.parent / "build.json").read_text())
    for name in manifest["withheld_subjects"]:  # unanswerable: no document names them
        assert not any(re.search(names_regex([name]), text) for text in documents.values()), name


def test_the_asked_object_is_in_the_picture_and_the_only_one_of_its_kind(built, subjects_by_file):
    _, bucket = built
    for item in (i for i in bucket.items if i.answerable and i.type in ("single", "composite")):
        image = Image.open(bucket.image_path(item)).convert("RGB")
        assert len(cells(image)) >= len(item.shows) == (1 if item.type == "single" else len(item.shows)) >= 1
        asked = [k for k, f in enumerate(item.shows) if subjects_by_file[f] and f"{subjects_by_file[f].slug}.md" == item.source]
        assert asked, (item.id, item.shows, item.source)
        k = asked[0]
        shown = np.asarray(cells(image)[k], dtype=np.int16)
        expected = np.asarray(drawing(OPENCLIPART / item.shows[k]), dtype=np.int16)
        assert np.abs(shown - expected).max() <= 2, f"{item.id}: cell {k} is not {item.shows[k]}"
        kind = subjects_by_file[item.shows[k]].kind
        assert kind in item.question  # the question names only the kind ...
        others = [subjects_by_file[f] for j, f in enumerate(item.shows) if j != k]
        assert all(o.kind != kind for o in others if o)  # ... and nothing else in the picture is of that kind


def test_signs_are_readable_by_the_offline_ocr(built):
    from vlmsearch.models.bundled import RapidOcr

    _, bucket = built
    ocr = RapidOcr()
    signs = [i for i in bucket.items if i.type == "text"]
    assert signs
    for item in signs:
        word = next(s.removeprefix("sign:") for s in item.shows if s.startswith("sign:"))
        read = "".join(line.text for line in ocr.read(Image.open(bucket.image_path(item))))
        assert re.sub(r"[^A-Z]", "", word) in re.sub(r"[^A-Z]", "", read.upper()), (word, read)
        assert "sign" in item.question


def test_subjects_follow_the_folder_topic():
    wordnet = WordNet()
    from vlmsearch.joint.pairs import Pair

    mouse = subject_of(Pair(Path("x.png"), ("mouse",), "mouse", "hardware, computer"), wordnet)
    assert mouse and mouse.kind in ("device", "piece of equipment") and "electronic" in " ".join(mouse.hypernyms + mouse.broader)
    assert subject_of(Pair(Path("x.png"), ("mouse",), "mouse", "mammals, animals"), wordnet).kind == "animal"
    assert subject_of(Pair(Path("x.png"), ("arrow right red",), "a", "buttons, computer"), wordnet) is None  # no supported sense
    penguin = subject_of(Pair(Path("x.png"), ("emperor penguin",), "p", "birds, animals"), wordnet)
    assert penguin.name == "emperor penguin" and penguin.kind == "bird" and penguin.cluster == "animals"


def test_conversations_ask_follow_ups_about_it_with_each_fact_in_one_document(built):
    settings, bucket = built
    conversations = load_bucket(bucket.path.parent / "conversations.jsonl")
    documents = {p.name: p.read_text() for p in bucket.default_docs.glob("*.md")}
    kinds = {item.type for item in conversations.items}
    assert {"turn 1", "follow-up", "follow-up, alone", "topic switch", "topic switch, alone"} <= kinds
    by_id = {item.id: item for item in conversations.items}
    for item in conversations.items:
        if item.answerable:
            assert [n for n, text in documents.items() if re.search(item.expect, text)] == [item.source], item.id
        if item.type == "turn 1" or item.type == "topic switch":
            assert item.image and item.conversation
        if item.type == "follow-up":
            assert item.image is None and re.search(r"\bit\b", item.question), item.question
            alone = by_id[f"{item.id} alone"]
            assert alone.image and alone.conversation is None and " the " in alone.question and alone.expect == item.expect
    again = build_buckets(BucketSettings(images=OPENCLIPART, out=settings.out.parent / "again", splits=("test",), max_items=ITEMS), WordNet())
    assert (again["test"].parent / "conversations.jsonl").read_text() == conversations.path.read_text()
