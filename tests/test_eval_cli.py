"""`vlmsearch eval make-bucket / answers / sbs` end to end: the real CLI, real models, a real judge
served by llama.cpp's OpenAI-compatible server."""

import json
import re
from importlib import resources
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.skipif(not Path("/usr/share/openclipart/png").is_dir(), reason="needs openclipart-png (make setup)")


@pytest.fixture(scope="module")
def bucket(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("buckets")
    result = run_cli("eval", "make-bucket", "--out", str(out), "--split", "test", "--max-items", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"test: .*bucket\.jsonl \(4 items", result.stdout)
    return out / "test" / "bucket.jsonl"


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    """The offline models plus a pipeline of our own: retrieval and generation only, no visual stages."""
    path = tmp_path_factory.mktemp("profile") / "textonly.toml"
    offline = (resources.files("vlmsearch.profiles") / "offline.toml").read_text()
    path.write_text(offline + '\n[pipelines.bare]\nstages = ["retrieve", "generate"]\n')
    return path


def test_answers_are_scored_cached_and_judged(bucket, profile, tmp_path, llama_server):
    out = tmp_path / "eval"
    common = ("--profile", str(profile), "eval")
    answers = run_cli(*common, "answers", "--bucket", str(bucket), "--pipeline", "llm", "--pipeline", "bare",
                      "--limit", "3", "--out", str(out), "--json")  # fmt: skip
    assert answers.returncode == 0, answers.stderr[-2000:]
    result = json.loads(answers.stdout)["pipelines"]
    assert set(result) == {"llm", "bare"}
    for summary in result.values():
        assert summary["n"] == 3 and 0 <= summary["ci95"][0] <= summary["accuracy"] <= summary["ci95"][1] <= 1
        assert summary["answerable"] + summary["unanswerable"] == 3 and summary["p50_ms"] > 0
    cache = out / "answers" / "textonly" / "llm.jsonl"
    lines = cache.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["trace"] for line in lines)

    reference = run_cli(*common, "sbs", "--bucket", str(bucket), "--a", "llm", "--b", "bare", "--judge", "reference",
                        "--limit", "3", "--out", str(out), "--json")  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-2000:]
    assert "answering" not in reference.stderr  # every answer came from the cache
    assert cache.read_text().splitlines() == lines
    summary = json.loads(reference.stdout)
    assert summary["judge"] == "reference" and summary["n_items"] == 3 and list(summary["criteria"]) == ["overall"]
    assert summary["position_consistency"] == 1.0

    served = run_cli(*common, "sbs", "--bucket", str(bucket), "--a", "llm", "--b", "bare", "--judge", f"openai:{llama_server}/qwen-local",
                     "--limit", "3", "--out", str(out), "--json")  # fmt: skip
    assert served.returncode == 0, served.stderr[-2000:]
    summary = json.loads(served.stdout)
    assert summary["judge"] == "openai:qwen-local" and summary["n_judgements"] == 6
    assert set(summary["criteria"]) == {"grammar", "readability", "comprehensiveness", "relevance", "errors", "hallucinations", "overall"}
    assert summary["agreement_with_reference"]["n"] == 3

    report = (out / "sbs" / "textonly" / "llm-vs-bare" / "report.html").read_text()
    assert "Judge: reference" in report and "Judge: openai:qwen-local" in report  # every judge so far
    assert "Reference accuracy" in report and 'src="data:image/jpeg;base64,' in report
    pairs = (out / "sbs" / "textonly" / "llm-vs-bare" / "pairs.jsonl").read_text().splitlines()
    assert len(pairs) == 3 and json.loads(pairs[0])["a"]["pipeline"] == "llm"


def test_conversations_are_answered_turn_by_turn_against_the_same_facts_asked_alone(bucket, tmp_path):
    conversations = bucket.parent / "conversations.jsonl"
    first = json.loads(conversations.read_text().splitlines()[0])
    limit = 2 * len(first["turns"]) - 1  # its turns, then each later turn asked alone
    result = run_cli("eval", "answers", "--bucket", str(conversations), "--pipeline", "llm", "--limit", str(limit), "--out", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)["pipelines"]["llm"]
    assert summary["n"] == limit and summary["conversation"]["turn 1"]["n"] == 1
    later = [kind for kind in ("follow-up", "topic switch") if kind in summary["conversation"]]
    assert later and all(0 <= (summary["conversation"][k]["ratio"] or 0) for k in later)
    records = [json.loads(line) for line in (tmp_path / "answers" / "offline" / "llm.jsonl").read_text().splitlines()]
    follow_up = next(r for r in records if r["item"].endswith("#2"))
    assert follow_up["trace"][0]["stage"] == "conversation"  # asked after the pipeline's own answer to turn 1
    assert not any(step["stage"] == "conversation" for r in records if r["item"].endswith(" alone") for step in r["trace"])


def test_bad_requests_get_one_clear_line(bucket, tmp_path):
    unknown = run_cli("eval", "answers", "--bucket", str(bucket), "--pipeline", "nope", "--out", str(tmp_path), "--limit", "1")
    assert unknown.returncode == 1 and "unknown pipeline 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    missing = run_cli("eval", "answers", "--bucket", str(tmp_path / "none.jsonl"), "--pipeline", "llm")
    assert missing.returncode == 1 and "cannot read the bucket" in missing.stderr
    same = run_cli("eval", "sbs", "--bucket", str(bucket), "--a", "llm", "--b", "llm")
    assert same.returncode == 1 and "same pipeline" in same.stderr
    judge = run_cli("eval", "sbs", "--bucket", str(bucket), "--a", "llm", "--b", "vlm", "--judge", "openai:nonsense", "--out", str(tmp_path))
    assert judge.returncode == 1 and "openai:<base url>/<model>" in judge.stderr


@pytest.mark.slow  # ~47 s: our VLM answers every item four times; training tooling, not a user path
def test_rephraser_ranks_and_dpo_preference_pairs(bucket, tmp_path):
    import tiny_models

    from vlmsearch.vlm.model import VisionLanguageModel, VLMConfig, load_lm

    answerable = sum(json.loads(line).get("source") is not None for line in bucket.read_text().splitlines())
    result = run_cli("eval", "rephraser", "--bucket", str(bucket), "--pipeline", "llm", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["items"] == answerable > 0
    for key in ("alone_top1", "alone_top3", "fused_top3"):
        low, high = summary[key]["ci95"]
        assert 0 <= low <= summary[key]["rate"] <= high <= 1
    assert summary["alone_top1"]["rate"] <= summary["alone_top3"]["rate"]

    # Preference pairs from a VLM checkpoint (a tiny LM: the real encoder, visual search and retrieval).
    config = VLMConfig(name="tiny", lm=str(tiny_models.causal_lm(tmp_path / "lm")), image_side=2, heads=4)
    VisionLanguageModel(config, *load_lm(config)).save_pretrained(tmp_path / "vlm")
    pairs = run_cli("train", "vlm-prefs", "--bucket", str(bucket), "--vlm", str(tmp_path / "vlm"), "--samples", "1", "--out", str(tmp_path / "prefs.jsonl"))
    assert pairs.returncode == 0, pairs.stderr[-2000:]
    found = re.search(r"(\d+) preference pairs from (\d+) answerable items", pairs.stdout)
    assert found and int(found[2]) == answerable
    assert len((tmp_path / "prefs.jsonl").read_text().splitlines()) == int(found[1])

    wrong = run_cli("eval", "rephraser", "--bucket", str(bucket), "--pipeline", "llm", "--vlm", str(tmp_path / "vlm"))
    assert wrong.returncode == 1 and "use it with --pipeline vlm" in wrong.stderr


def test_generator_training_chats_are_the_pipelines_own_prompts(bucket, tmp_path):
    from vlmsearch.finetune.rag_data import ABSTAIN

    items = {item["id"]: item for item in map(json.loads, bucket.read_text().splitlines())}
    result = run_cli("train", "generator-data", "--bucket", str(bucket), "--out", str(tmp_path / "chats.jsonl"), "--counterfactual", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r"(\d+) chats .*answered (\d+), unanswerable \(declined\) (\d+), retrieval missed the document (\d+) \(left out\); "
                      r"counterfactual: fact stated (\d+), fact absent \(declined\) (\d+)", result.stdout)  # fmt: skip
    assert found, result.stdout
    chats = [json.loads(line)["messages"] for line in (tmp_path / "chats.jsonl").read_text().splitlines()]
    answered, unanswerable, missed, stated, absent = map(int, found.groups()[1:])
    assert answered + unanswerable + missed == len(items) and len(chats) == int(found[1]) == answered + unanswerable + stated + absent
    assert 0 < stated == answered and absent <= stated  # every answered item's question points at its subject
    declined = [reply["content"] for _, _, reply in chats if reply["content"] == ABSTAIN]
    assert len(declined) == unanswerable + absent  # the missed ones are left out
    sources = {item["source"] for item in items.values() if item.get("source")}
    for system, user, reply in chats:
        assert system["role"] == "system" and "[1]" in system["content"]
        assert user["content"].startswith("Sources:\n[1] ") and "Image information:" in user["content"]
        if reply["content"] != ABSTAIN:  # the cited number is a passage from the asked item's document
            n = int(re.search(r"\[(\d)\]\.$", reply["content"])[1])
            cited = re.search(rf"^\[{n}\] \(([^)]+)\) (.*)$", user["content"], re.MULTILINE)
            assert cited[1] in sources
            # A counterfactual's numbers are stated in the passage it cites.
            assert set(re.findall(r"\d+", reply["content"].replace(f"[{n}]", ""))) <= set(re.findall(r"\d+", cited[2]))


@pytest.mark.slow  # ~55 s: sign chats through the real pipeline and `eval signs`: training tooling of the generator's LoRA (make train-generator)
def test_sign_reading_chats_answer_from_the_text_in_the_image_or_decline(bucket, tmp_path):
    from vlmsearch.finetune.rag_data import ABSTAIN

    result = run_cli(
        "train", "sign-data", "--bucket", str(bucket), "--out", str(tmp_path / "signs.jsonl"), "--count", "6", "--seed", "3", "--other-share", "0.5"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r"(\d+) chats .*sign read (\d+), sign not asked \(declined\) (\d+), (\d+) left out", result.stdout)
    assert found, result.stdout
    total, read, declined, left_out = map(int, found.groups())
    chats = [json.loads(line)["messages"] for line in (tmp_path / "signs.jsonl").read_text().splitlines()]
    assert len(chats) == total == read + declined and total + left_out == 6 and read and declined
    for _, user, reply in chats:
        shown = re.search(r"^Text in the image: (.+)$", user["content"], re.MULTILINE)[1]
        if reply["content"] != ABSTAIN:  # the answer's value is what OCR read on the sign
            value = re.search(r"[$A-Z]*\d[\d.]*(?: ?[A-Z]+)?", reply["content"])[0]
            assert value.replace(" ", "") in shown.replace(" ", ""), (value, shown)

    scored = run_cli("eval", "signs", "--bucket", str(bucket), "--pipeline", "llm", "--count", "4", "--json")
    assert scored.returncode == 0, scored.stderr[-2000:]
    llm = json.loads(scored.stdout)["pipelines"]["llm"]
    assert llm["n"] == 4 and llm["asked_its_value"] + llm["asked_another"] + llm["ocr_missed"] == 4
    assert llm["read_right"] + llm["declined_right"] >= 3  # the shipped generator reads signs it was never asked in these words
