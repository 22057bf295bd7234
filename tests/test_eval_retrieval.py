"""`vlmsearch eval retrieval` on real images and real models, through the CLI."""

import json

import pytest
from conftest import run_cli, skimage_photo, text_image

from vlmsearch.errors import BadInputError
from vlmsearch.eval.retrieval import load_queries, rank_of


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    images = root / "images"
    images.mkdir()
    for name in ("chelsea", "coffee", "rocket", "astronaut", "clock"):
        skimage_photo(name).save(images / f"{name}.png")
    text_image("HOTEL PARIS").save(images / "sign.png")
    queries = root / "queries.jsonl"
    pairs = [("a cat", "chelsea.png"), ("a cup of espresso", "coffee.png"), ("missile launch", "rocket.png"), ("hotel paris", "sign.png")]
    queries.write_text("\n".join(json.dumps({"query": q, "target": t}) for q, t in pairs) + "\n")
    return images, queries


def test_metrics_as_json(eval_data):
    images, queries = eval_data
    result = run_cli("eval", "retrieval", "--images", str(images), "--queries", str(queries), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"recall@1", "recall@5", "recall@10", "mrr", "n"} and metrics["n"] == 4
    # Real tags and OCR find these without file names: all four in the top 5 of six images.
    assert metrics["recall@5"] == metrics["recall@10"] == 1.0
    assert metrics["recall@1"] >= 0.75 and metrics["recall@1"] <= metrics["mrr"] <= 1.0


def test_human_output_is_a_table(eval_data):
    images, queries = eval_data
    result = run_cli("eval", "retrieval", "--images", str(images), "--queries", str(queries))
    assert result.returncode == 0 and "recall@1" in result.stdout and "over 6 images" in result.stdout


def test_bad_query_files_name_the_line(tmp_path, eval_data):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "cat", "target": "chelsea.png"}\n{"question": "dog"}\n')
    with pytest.raises(BadInputError, match=r"bad.jsonl:2: expected"):
        load_queries(bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"query": "cat", "target": "no_such.png"}\n')
    result = run_cli("eval", "retrieval", "--images", str(eval_data[0]), "--queries", str(missing))
    assert result.returncode == 1 and "targets not found" in result.stderr and "no_such.png" in result.stderr


def test_rank_of_matches_file_names():
    assert rank_of("b.png", ["/x/a.png", "/y/b.png"]) == 2 and rank_of("c.png", ["/x/a.png"]) is None
