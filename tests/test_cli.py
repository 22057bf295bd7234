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


def test_setup_again_finds_what_it_made_and_a_missing_adapter_is_one_line(tmp_path):
    """`vlmsearch setup` on a machine already set up (the test command runs it first): the model,
    the generator's merge and the VLM's LM are found, nothing is merged again. A profile whose
    adapter is gone fails saying which file."""
    from vlmsearch.config import Settings
    from vlmsearch.models.gguf_merge import merged_path
    from vlmsearch.models.merges import served_merge

    settings = Settings.create(profile="offline")
    merges = [m for spec in settings.profile.roles.values() if (m := served_merge(spec, settings.cache_dir))]
    merged = [merged_path(model, adapter, settings.cache_dir / "models") for model, adapter in merges]
    assert merged and all(path.is_file() for path in merged), "run `make setup` (or `vlmsearch setup`) before the tests"
    written = [path.stat().st_mtime_ns for path in merged]
    result = run_cli("--profile", "offline", "setup")
    assert result.returncode == 0, result.stderr
    assert "offline chat model ready" in result.stderr  # progress and messages go to stderr
    assert [path.stat().st_mtime_ns for path in merged] == written

    gone = tmp_path / "gone.gguf"
    profile = tmp_path / "gone.toml"
    profile.write_text(f'[roles.generator]\nbackend = "bundled"\nmodel = "qwen2.5-coder-0.5b-instruct"\noptions = {{ lora = "{gone}" }}\n')
    result = run_cli("--profile", str(profile), "setup")
    assert result.returncode != 0
    assert "gone.gguf" in result.stderr and "Traceback" not in result.stderr


def test_chat_holds_a_conversation_typed_in(indexed_store, sample_dir):
    cat = sample_dir / "photos" / "chelsea.png"
    typed = f"/image {cat}\nwhat kind of animal is this?\nhow long do they usually live?\n/bogus\n/new\n/quit\n"
    result = run_cli("--store", str(indexed_store), "chat", "--pipeline", "llm", stdin=typed)
    assert result.returncode == 0, result.stderr
    answers = [line.removeprefix("you> ") for line in result.stdout.splitlines() if "[1]" in line and "facts.md" not in line]
    assert "cat" in answers[0].lower() and "12 to 18" in answers[1], result.stdout
    assert "facts.md" in result.stdout and "unknown command /bogus" in result.stderr and "a new conversation" in result.stderr


def test_chat_json_reads_one_turn_per_line(indexed_store, sample_dir):
    turns = [
        {"question": "what kind of animal is this?", "image": str(sample_dir / "photos" / "chelsea.png")},
        {"question": "how long do they usually live?"},
        {"question": "how long do they usually live?", "new": True},  # nothing before it: nothing for "they"
    ]
    result = run_cli("--store", str(indexed_store), "chat", "--json", "--pipeline", "llm", stdin="\n".join(map(json.dumps, turns)) + "\n")
    assert result.returncode == 0, result.stderr
    first, second, alone = (json.loads(line) for line in result.stdout.splitlines())
    assert "12 to 18" in second["answer"] and second["citations"][0]["source"].endswith("facts.md")
    stages = {step["stage"]: step for step in second["trace"]}
    assert stages["conversation"]["output"]["question"] == "how long do Cats usually live?" and stages["visual_search"]["cached"]
    assert "conversation" not in {step["stage"] for step in alone["trace"]} and "visual_search" not in {s["stage"] for s in alone["trace"]}
    bad = run_cli("--store", str(indexed_store), "chat", "--json", stdin="not json\n")
    assert bad.returncode == 1 and "stdin line 1" in bad.stderr and "Traceback" not in bad.stderr


def test_version_comes_from_one_place():
    from importlib.metadata import version

    from vlmsearch import __version__

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"vlmsearch {__version__}"
    assert version("vlmsearch") == __version__  # the package's metadata reads the same attribute
