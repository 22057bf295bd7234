"""The search contract through the real CLI, on a real indexed store."""

import json

from conftest import run_cli


def test_text_to_images_json(indexed_store):
    result = run_cli("--store", str(indexed_store), "search", "a cat", "-k", "2", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 2 and hits[0]["path"].endswith("chelsea.png")
    assert {"path", "score", "tags", "ocr_text"} <= set(hits[0]) and hits[0]["score"] >= hits[1]["score"]


def test_text_in_images_is_searchable(indexed_store):
    hits = json.loads(run_cli("--store", str(indexed_store), "search", "open 9am", "-k", "1", "--json").stdout)
    assert hits[0]["path"].endswith("sign.png")


def test_image_to_images(indexed_store, sample_dir):
    result = run_cli("--store", str(indexed_store), "search", "--image", str(sample_dir / "photos" / "coffee.jpg"), "--json")
    hits = json.loads(result.stdout)
    assert hits[0]["path"].endswith("coffee.jpg") and hits[0]["score"] > 0.99
    assert len(hits) == 4


def test_text_to_passages(indexed_store):
    result = run_cli("--store", str(indexed_store), "search", "--docs", "how long do cats live", "--json", "-k", "1")
    hit = json.loads(result.stdout)[0]
    assert {"source", "text", "score"} <= set(hit) and "12 to 18 years" in hit["text"]


def test_human_output_is_a_table(indexed_store):
    result = run_cli("--store", str(indexed_store), "search", "espresso", "-k", "1")
    assert result.returncode == 0 and "coffee.jpg" in result.stdout and "espresso" in result.stdout


def test_filter(indexed_store):
    result = run_cli("--store", str(indexed_store), "search", "a cat", "--where", "path LIKE '%rocket%'", "--json")
    assert [h["path"].rsplit("/", 1)[1] for h in json.loads(result.stdout)] == ["rocket.webp"]


def test_bad_requests_get_one_clear_line(indexed_store, tmp_path):
    cases = [
        (["search", "   "], "the query is empty"),
        (["search", "x" * 5000], "the query is 5,000 characters"),
        (["search", "--image", str(tmp_path / "nope.png")], "cannot read file"),
        (["search"], "give either a search text or --image"),
        (["search", "cat", "--where", "bogus_column > 1"], "invalid filter"),
    ]
    for args, message in cases:
        result = run_cli("--store", str(indexed_store), *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    result = run_cli("--profile", "nonsense", "--store", str(tmp_path), "search", "cat")
    assert result.returncode == 1 and "unknown profile 'nonsense'" in result.stderr


def test_models_lists_profiles():
    result = run_cli("models")
    assert result.returncode == 0 and "hf-cpu" in result.stdout and "efficientnet-lite0" in result.stdout
