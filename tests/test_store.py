"""The store contract, run against both backends on disk (LanceDB, and Milvus Lite as the real Milvus
engine): idempotent writes, hybrid retrieval, filters, ANN, joint vectors, doctor, copy, and guards."""

import numpy as np
import pytest

from vlmsearch.errors import BadInputError, ConfigError, StoreUnavailableError
from vlmsearch.records import ImageRecord, InfoCard, PassageRecord, Tag, TopicRecord
from vlmsearch.stores import StoreInfo, open_existing_store, open_store, rrf_fuse
from vlmsearch.stores.copy import copy_store
from vlmsearch.stores.protocol import TextImageWeights

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


@pytest.fixture(params=["lance", "milvus"])
def where(request, tmp_path) -> str:
    """A store location for each backend: a folder, or a Milvus Lite file."""
    return str(tmp_path / "store") if request.param == "lance" else f"milvus://{tmp_path}/store.db"


def test_rrf_rewards_agreement():
    fused = rrf_fuse([["a", "b", "c"], ["b", "c", "a"]], k=60)
    assert [doc for doc, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    weighted = rrf_fuse([["a", "b"], ["b", "a"]], k=60, weights=[1.0, 0.25])
    assert [doc for doc, _ in weighted] == ["a", "b"] and weighted[0][1] == pytest.approx(1 / 61 + 0.25 / 62)


def test_passages_hybrid_search_and_idempotent_writes(where):
    store = open_store(where, INFO)
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


def test_rows_added_after_indexing_are_found(where):
    store = open_store(where, INFO)
    store.add_passages([passage("d1", 0, "the first passage about cats", [1, 0, 0, 0])])
    store.finalize()
    store.add_passages([passage("d2", 0, "a later passage about zebras", [0, 1, 0, 0])])
    store.finalize()
    assert store.passages("zebras", unit([0, 0, 0, 1]), k=1)[0].id == "d2:0"


def test_filters_and_bad_filters(where):
    store = open_store(where, INFO)
    store.add_images([image(1, "cat", [1, 0, 0, 0, 0, 0, 0, 0]), image(2, "dog", [1, 0.1, 0, 0, 0, 0, 0, 0])])
    store.finalize()
    hits = store.images_by_vector(unit([1, 0, 0, 0, 0, 0, 0, 0]), k=5, where="path LIKE '%dog%'")
    assert [h.id for h in hits] == ["img2"]
    assert hits[0].card.hypernyms == ("animal",) and hits[0].tags[0].synset == "n02124075"
    with pytest.raises(BadInputError, match="invalid filter"):
        store.images_by_vector(unit([1, 0, 0, 0, 0, 0, 0, 0]), k=5, where="no_such_column = 3")
    with pytest.raises(BadInputError, match="one expression"):  # Lance would drop the rest silently
        store.images_by_vector(unit([1, 0, 0, 0, 0, 0, 0, 0]), k=5, where="1=1; DROP TABLE images")
    assert [h.id for h in store.images_by_vector(unit([1, 0, 0, 0, 0, 0, 0, 0]), k=5, where="path LIKE '%;%'")] == []


def test_store_refuses_other_embedders(where):
    open_store(where, INFO)
    other = INFO.model_copy(update={"image_embedder": "siglip", "image_dim": 768})
    with pytest.raises(ConfigError, match="was built with image embedder 'img-test'"):
        open_store(where, other)


def test_ann_index_finds_the_same_neighbours(where):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((400, 8)).astype(np.float32)
    store = open_store(where, INFO, ann_min_rows=100)
    store.add_images([image(i, "thing", v) for i, v in enumerate(vectors)])
    store.finalize()
    assert {ix.kind for ix in store._index_states() if ix.column == "features"} & {"IvfHnswSq", "HNSW"}
    for i in (3, 150, 399):
        assert store.images_by_vector(unit(vectors[i]), k=1)[0].id == f"img{i}"


def test_lance_hnsw_candidate_list_grows_with_the_table(tmp_path):
    from vlmsearch.stores.lance import hnsw_ef

    assert hnsw_ef(1_000_000, 10, 4) == 300  # what lifted recall@10 from 0.85 to 0.95 at 1M (benchmarks.search --sweep)
    assert hnsw_ef(100_000, 10, 4) < hnsw_ef(1_000_000, 10, 4) < hnsw_ef(10_000_000, 10, 4)
    assert hnsw_ef(400, 30, 4) == 120  # never under the candidates asked: Lance refuses ef < k x refine
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((400, 8)).astype(np.float32)
    store = open_store(str(tmp_path / "lance"), INFO, ann_min_rows=100)
    store.add_images([image(i, "thing", v) for i, v in enumerate(vectors)])
    assert store._ef("images", "features", 10) is None  # not indexed yet: exact search
    store.finalize()
    assert store._ef("images", "features", 30) == 120
    for k in (1, 30):  # a deep query (hybrid asks 30) goes through the index with its own ef
        assert store.images_by_vector(unit(vectors[7]), k=k)[0].id == "img7"
    store.ann_ef = 0  # Lance's own default, as before
    assert store._ef("images", "features", 10) is None and store.images_by_vector(unit(vectors[7]), k=1)[0].id == "img7"


def test_lance_ivf_flat_index_is_exact_within_its_partitions(tmp_path):
    vectors = np.random.default_rng(2).standard_normal((400, 8)).astype(np.float32)
    store = open_store(str(tmp_path / "lance"), INFO, ann_min_rows=100, ann_index="ivf_flat")
    store.add_images([image(i, "thing", v) for i, v in enumerate(vectors)])
    store.finalize()
    assert {ix.kind for ix in store._index_states() if ix.column == "features"} == {"IvfFlat"}
    for i in (3, 150, 399):
        assert store.images_by_vector(unit(vectors[i]), k=1)[0].id == f"img{i}"
    with pytest.raises(ConfigError, match="ivf_flat"):
        open_store(str(tmp_path / "other"), INFO, ann_index="hnsw")


JOINT = INFO.model_copy(update={"joint_embedder": "joint-test", "joint_dim": 4})


def test_joint_vectors_filled_in_later_leave_the_rest_of_the_row(where):
    store = open_store(where, JOINT)
    store.add_images([image(i, label, [i + 1, 0, 0, 0, 0, 0, 0, 1]) for i, label in enumerate(["cat", "dog", "car"])])
    store.finalize()
    assert store.missing_joint(["img0", "img1", "img2", "nope"]) == {"img0", "img1", "img2"}
    # Search still works while the column is empty: the joint ranking just has nothing to say.
    hits = store.images_by_text("dog", unit([1, 0, 0, 0]), k=3, joint_vector=unit([0, 1, 0, 0]))
    assert hits[0].path.endswith("dog1.png")
    store.set_joint({"img2": unit([0, 1, 0, 0]), "img0": unit([1, 0, 0, 0])})
    assert store.missing_joint(["img0", "img1", "img2"]) == {"img1"}
    row = store._rows("images", ["img2"])[0]
    assert row["ocr_text"] == "" and row["description"] == "car photo"  # the rest of the row is untouched
    # The joint ranking now pulls the car up for a query that only the joint space understands.
    hits = store.images_by_text("vehicle", unit([0, 0, 0, 1]), k=3, joint_vector=unit([0, 1, 0, 0]))
    assert hits[0].id == "img2"


def test_text_search_weighs_how_sure_each_signal_is(where):
    """A confident joint match outranks rows that share only a word of the query and are far in the
    joint space; rank fusion (RRF) would put them first, each ranking voting alike."""
    store = open_store(where, JOINT)
    store.add_images([image(i, label, [i + 1, 0, 0, 0, 0, 0, 0, 1]) for i, label in enumerate(["car wash", "car park", "sedan"])])
    store.set_joint({"img0": unit([-1, 0, 0, 0.1]), "img1": unit([-1, 0.1, 0, 0]), "img2": unit([1, 0, 0, 0])})
    store.finalize()
    query = dict(text="car", vector=unit([1, 0, 0, 0]), k=3, joint_vector=unit([1, 0, 0, 0]))
    assert [h.id for h in store.images_by_text(**query)][0] == "img2"
    # Weights say how much each signal counts: with the keyword's raised, the word match wins.
    keyword_first = store.images_by_text(**query, weights=TextImageWeights(keyword=5.0, text=1.0, joint=1.0))
    assert {h.id for h in keyword_first[:2]} == {"img0", "img1"}


def test_lance_gives_a_joint_model_added_later_an_empty_column(tmp_path):
    store = open_store(tmp_path, INFO)  # built before any joint model
    store.add_images([image(0, "cat", [1, 0, 0, 0, 0, 0, 0, 0])])
    store = open_store(tmp_path, JOINT)
    assert store.info.joint_embedder == "joint-test" and store.missing_joint(["img0"]) == {"img0"}


def test_milvus_refuses_another_joint_model(tmp_path):
    where = f"milvus://{tmp_path}/store.db"
    open_store(where, JOINT).add_images([image(0, "cat", [1, 0, 0, 0, 0, 0, 0, 0])])
    assert open_store(where, INFO).info.joint_embedder == "joint-test"  # a profile without one: fine
    with pytest.raises(ConfigError, match="holds joint vectors of 'joint-test'"):
        open_store(where, JOINT.model_copy(update={"joint_embedder": "joint-other", "joint_dim": 6}))


def test_a_milvus_server_that_goes_away_mid_session_is_a_clear_error_and_loses_nothing(tmp_path):
    from milvus_lite.server_manager import server_manager_instance

    store = open_store(f"milvus://{tmp_path}/store.db", INFO)
    store.add_passages([passage("d1", 0, "Domestic cats usually live 12 to 18 years.", [1, 0, 0, 0])])
    store.finalize()
    server_manager_instance.release_server(str(tmp_path / "store.db"))  # the in-process server stops
    with pytest.raises(StoreUnavailableError, match=r"store\.db is unavailable .*is its server up\?"):
        store.passages("cats", unit([1, 0, 0, 0]), k=1)
    with pytest.raises(StoreUnavailableError):
        store.count()
    again = open_store(f"milvus://{tmp_path}/store.db", INFO)  # a new server on the same file
    assert again.count()["passages"] == 1 and again.passages("cats", unit([1, 0, 0, 0]), k=1)[0].id == "d1:0"


def test_lance_replaces_the_column_of_another_joint_model_and_keeps_the_rest(tmp_path):
    store = open_store(tmp_path, JOINT)
    store.add_images([image(0, "cat", [1, 0, 0, 0, 0, 0, 0, 0])])
    store.set_joint({"img0": unit([1, 0, 0, 0])})
    assert not store.missing_joint(["img0"])
    # A profile without a joint model leaves the column (switching back costs nothing)...
    assert open_store(tmp_path, INFO).info.joint_embedder == "joint-test"
    assert not open_store(tmp_path, JOINT).missing_joint(["img0"])
    # ...a different one empties it: old vectors mean nothing in the new space.
    other = JOINT.model_copy(update={"joint_embedder": "joint-other", "joint_dim": 6})
    store = open_store(tmp_path, other)
    assert store.missing_joint(["img0"]) == {"img0"}
    assert store.count()["images"] == 1
    store.set_joint({"img0": unit([1, 0, 0, 0, 0, 0])})
    assert not store.missing_joint(["img0"])


def test_ann_index_on_a_partly_filled_joint_column(where):
    rng = np.random.default_rng(1)
    store = open_store(where, JOINT, ann_min_rows=100)
    store.add_images([image(i, "thing", rng.standard_normal(8)) for i in range(300)])
    joint = {f"img{i}": unit(rng.standard_normal(4)) for i in range(0, 300, 2)}  # half of them
    store.set_joint(joint)
    store.finalize()
    hits = store._dense("images", "joint", joint["img40"], 1, None)
    assert hits[0][0]["id"] == "img40" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert len(store._dense("images", "joint", joint["img40"], 300, None)) == 150  # never an image without one
    assert store.count_missing_joint() == 150


def _filled(where) -> None:
    store = open_store(where, JOINT)
    store.add_images([image(i, label, [i + 1, 0, 0, 0, 0, 0, 0, 1]) for i, label in enumerate(["cat", "dog", "car"])])
    store.set_joint({"img0": unit([1, 0, 0, 0]), "img2": unit([0, 1, 0, 0])})
    store.add_passages([passage("d1", n, f"cats sentence {n}", [1, n, 0, 0]) for n in range(3)]
                       + [passage("d2", 0, "rockets carry satellites", [0, 0, 1, 0])])  # fmt: skip
    store.add_topics([TopicRecord("d1:t0", "d1", "/docs/d1.md", "cats", (0, 1, 2), unit([1, 0, 0, 0]))])
    store.finalize()
    return store


def test_doctor_finds_a_torn_document_and_repair_removes_it_whole(where):
    store = _filled(where)
    assert store.check().ok
    store._delete("passages", "id", {"d1:1"})  # what a torn write would leave
    health = store.check()
    found = {(p.table, p.what): p.examples for p in health.problems}
    assert found[("passages", "document with missing or repeated passages (doc ids)")] == ["d1"]
    assert found[("images", "no joint vector yet (run `index` on their folders again)")] == ["img1"]
    assert ("passages", "text") in {(ix.table, ix.column) for ix in health.indices}  # the keyword index
    store.repair()
    assert store.check().ok and store.known_doc_ids(["d1", "d2"]) == {"d2"}
    assert store.count()["topics"] == 0  # the document's topics went with it, to come back whole


@pytest.mark.parametrize("route", [("lance", "milvus"), ("milvus", "lance")])
def test_copy_between_backends_keeps_every_row_and_ranking(tmp_path, route):
    places = {"lance": str(tmp_path / "lance"), "milvus": f"milvus://{tmp_path}/store.db"}
    source = _filled(places[route[0]])
    copied = copy_store(places[route[0]], places[route[1]])
    target = open_existing_store(places[route[1]])
    assert copied == source.count() == target.count() == {"images": 3, "passages": 4, "topics": 1}
    assert target.info == source.info and target.missing_joint(["img0", "img1", "img2"]) == {"img1"}
    for store in (source, target):
        assert [h.id for h in store.passages("rockets", unit([1, 0, 0, 0]), k=4)][0] == "d2:0"
        assert [h.id for h in store.images_by_vector(unit([3, 0, 0, 0, 0, 0, 0, 1]), k=3)] == ["img2", "img1", "img0"]
        assert store.topics_by_joint(unit([1, 0, 0, 0]), 1)[0].positions == (0, 1, 2)
        assert store.image("img0").card.title == "cat" and store.passage("d1:2").text == "cats sentence 2"
    assert copy_store(places[route[0]], places[route[1]]) == {"images": 0, "passages": 0, "topics": 0}  # nothing new
