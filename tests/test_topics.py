"""Document topics in the joint image-text space: stored at ingest, added to older stores, and found by
visual search for the whole image and for its regions (real models, real LanceDB, real drawings)."""

from pathlib import Path

import lancedb
import pytest
from conftest import write_docs

from vlmsearch.engine import Engine
from vlmsearch.eval.bucket.canvas import compose, drawing
from vlmsearch.knowledge.wordnet import WordNet
from vlmsearch.pipeline.rephrase import subjects

OPENCLIPART = Path("/usr/share/openclipart/png")
DOCS = {
    "apple.md": "# Apple\nApple: fruit with red or yellow or green skin and sweet to tart crisp whitish flesh.",
    "banana.md": "# Banana\nBanana: elongated crescent-shaped yellow fruit with soft sweet flesh.",
    "anchor.md": "# Anchor\nAnchor: a mechanical device that prevents a vessel from moving.",
    "penguin.md": "# Penguin\nPenguin: short-legged flightless birds of cold southern regions.",
    "instruments.md": "# Guitar\nA stringed instrument with six strings.\n\n# Drum\nA percussion instrument.\n",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("topics")
    write_docs(root / "docs", DOCS)
    engine = Engine.from_config(store=root / "store")
    report = engine.index([root / "docs"])
    assert report.added == 5 and not report.failed
    return engine


def test_every_heading_is_a_topic_pointing_at_its_passages(engine):
    assert engine.store.count()["topics"] == 6  # one per document, two for the one with two sections
    query = engine.models.image_text.embed_texts(["drum"])[0]
    best = engine.store.topics_by_joint(query, 2)[0]
    assert best.topic == "Drum" and best.source.endswith("instruments.md")
    passages = engine.store.passages_at(best.doc_id, best.positions)
    assert [p.text for p in passages] == ["Drum: A percussion instrument."]


def test_a_store_from_before_topics_gains_them_without_new_passages(tmp_path):
    (tmp_path / "docs").mkdir()
    for name, text in DOCS.items():
        (tmp_path / "docs" / name).write_text(text)
    Engine.from_config(store=tmp_path / "store").index([tmp_path / "docs"])
    lancedb.connect(str(tmp_path / "store")).drop_table("topics")  # as a store built before this release
    engine = Engine.from_config(store=tmp_path / "store")
    assert engine.store.count()["topics"] == 0
    report = engine.index([tmp_path / "docs"])
    assert (report.added, report.updated, report.passages) == (0, 5, 0)
    assert engine.store.count() == {"images": 0, "passages": 6, "topics": 6}
    again = engine.index([tmp_path / "docs"])
    assert (again.unchanged, again.updated) == (5, 0)


@pytest.mark.skipif(not OPENCLIPART.is_dir(), reason="needs openclipart-png (make setup)")
def test_regions_find_each_drawn_thing_and_the_question_picks_its_kind(engine):
    picture = compose([drawing(OPENCLIPART / "transportation/anchor.png"), drawing(OPENCLIPART / "food/fruit/apple.png")])
    facts = engine.pipeline("llm").visual_search(picture)
    found = {m.topic: m.region for m in facts.matches[:2]}
    # Each found where it is drawn (a half, a third or a quarter on its side).
    assert set(found) == {"Apple", "Anchor"} and "right" in found["Apple"] and "left" in found["Anchor"], facts.matches
    wordnet = WordNet()
    assert subjects("What is the fruit in this picture called?", facts, wordnet)[0] == "Apple"
    assert subjects("What is the device in this picture used for?", facts, wordnet)[0] == "Anchor"
    assert "Looks like these topics of your documents: Apple" in facts.as_text()
    assert "Looks like" not in facts.as_text(matches=False)
