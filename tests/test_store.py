"""The LanceDB store on disk: idempotent writes, hybrid retrieval, filters, ANN, and its guards."""

import numpy as np
import pytest

from vlmsearch.errors import BadInputError, ConfigError
from vlmsearch.records import ImageRecord, InfoCard, PassageRecord, Tag
from vlmsearch.stores import StoreInfo, open_store, rrf_fuse

INFO = StoreInfo(image_embedder="img-test", image_dim=8, text_embedder="txt-test", text_dim=4)


def unit(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def passage(doc: str, n: int, text: str, vector) -> PassageRecord:
    return PassageRecord(f"{doc}:{n}", doc, f"/docs/{doc}.md", n, text, unit(vector))


def image(i: int, label: str, features, text_vector=(1, 0, 0, 0)) -> ImageRecord:
    return ImageRecord(
        id=f"img{i}", path=f"/photos/{label}{i}.png", width=10, height=10, tags=(Tag(label, 0.9, "n02124075"),),
        ocr_text="", card=InfoCard(title=label, gloss=f"a {label}", hypernyms=("animal",)), description=f"{label} photo",
        features=unit(features), text_vector=unit(text_vector),
    )  # fmt: skip


def test_rrf_rewards_agreement():
    fused = rrf_fuse([["a", "b", "c"], ["b", "c", "a"]], k=60)
    assert [doc for doc, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    weighted = rrf_fuse([["a", "b"], ["b", "a"]], k=60, weights=[1.0, 0.25])
    assert [doc for doc, _ in weighted] == ["a", "b"] and weighted[0][1] == pytest.approx(1 / 61 + 0.25 / 62)


def test_passages_hybrid_search_and_idempotent_writes(tmp_path):
    store = open_store(tmp_path, INFO)
    records = [
        passage("d1", 0, "Domestic cats usually live 12 to 18 years.", [1, 0, 0, 0]),
        passage("d1", 1, "Espresso is brewed under pressure.", [0, 1, 0, 0]),
        passage("d2", 0, "Rockets carry satellites into orbit.", [0, 0, 1, 0]),
    ]
    store.add_passages(records)
    store.add_passages(records)  # a resumed run re-sending a batch adds nothing
    store.finalize()
    assert store.count()["passages"] == 3
    assert store.known_doc_ids(["d1", "d2", "d3"]) == {"d1", "d2"}
    # The keyword "espresso" and a vector pointing at the cat passage: both show up, fused.
    hits = store.passages("espresso", unit([1, 0, 0, 0]), k=3)
    assert {h.id for h in hits[:2]} == {"d1:0", "d1:1"}
    # Both rankings agree on the rocket passage: it wins.
    top = store.passages("rockets orbit", unit([0, 0, 1, 0]), k=3)[0]
    assert (top.id, top.source, top.position) == ("d2:0", "/docs/d2.md", 0)


def test_rows_added_after_indexing_are_found(tmp_path):
    store = open_store(tmp_path, INFO)
    store.add_passages([passage("d1", 0, "the first passage about cats", [1, 0, 0, 0])])
    store.finalize()
    store.add_passages([passage("d2", 0, "a later passage about zebras", [0, 1, 0, 0])])
    store.finalize()
    assert store.passages("zebras", unit([0, 0, 0, 1]), k=1)[0].id == "d2:0"


def test_filters_and_bad_filters(tmp_path):
    store = open_store(tmp_path, INFO)
    store.add_images([image(1, "cat", [1, 0, 0, 0, 0, 0, 0, 0]), image(2, "dog", [1, 0.1, 0, 0, 0, 0, 0, 0])])
    store.finalize()
    hits = store.images_by_vector(unit([1, 0, 0, 0, 0, 0, 0, 0]), k=5, where="path LIKE '%dog%'")
    assert [h.id for h in hits] == ["img2"]
    assert hits[0].card.hypernyms == ("animal",) and hits[0].tags[0].synset == "n02124075"
    with pytest.raises(BadInputError, match="invalid filter"):
        store.images_by_vector(unit([1, 0, 0, 0, 0, 0, 0, 0]), k=5, where="no_such_column = 3")


def test_store_refuses_other_embedders(tmp_path):
    open_store(tmp_path, INFO)
    other = INFO.model_copy(update={"image_embedder": "siglip", "image_dim": 768})
    with pytest.raises(ConfigError, match="was built with image embedder 'img-test'"):
        open_store(tmp_path, other)


def test_ann_index_finds_the_same_neighbours(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((400, 8)).astype(np.float32)
    store = open_store(tmp_path, INFO, ann_min_rows=100)
    store.add_images([image(i, "thing", v) for i, v in enumerate(vectors)])
    store.finalize()
    assert any(ix.index_type != "FTS" for ix in store._tables["images"].list_indices())
    for i in (3, 150, 399):
        assert store.images_by_vector(unit(vectors[i]), k=1)[0].id == f"img{i}"
