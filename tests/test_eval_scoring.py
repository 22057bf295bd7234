"""Reference scoring, bootstrap intervals and side-by-side aggregation on hand-made answers."""

import json

import pytest

from vlmsearch.errors import BadInputError
from vlmsearch.eval.answers import AnswerRecord
from vlmsearch.eval.bucket.items import Bucket, BucketItem, load_bucket
from vlmsearch.eval.judges import CRITERIA, ReferenceJudge, Ruling, parse_ruling
from vlmsearch.eval.sbs import Judgement, combine, human_agreement, run_judge, summarize
from vlmsearch.eval.scoring import Scored, abstained, fact_found, score
from vlmsearch.eval.scoring import summarize as summarize_answers
from vlmsearch.eval.stats import bootstrap_ci, cohen_kappa, length_controlled_win_rate

PENGUIN = BucketItem(id="p", question="What is this bird a type of?", reference="A penguin is a kind of seabird.",
                     expect=r"(?i)\bseabirds?\b", source="penguin.md", cluster="animals", type="single")  # fmt: skip
LIFESPAN = BucketItem(id="c", question="How long do cats live?", reference="Cats live 12 to 18 years.", source="cats.md", cluster="animals")
NOWHERE = BucketItem(id="n", question="How much does this bird weigh?", reference="The documents do not say.", cluster="animals")


def record(item: str, answer: str, *sources: str, pipeline: str = "x") -> AnswerRecord:
    return AnswerRecord(item, pipeline, "k", answer, tuple({"n": i, "source": s, "text": ""} for i, s in enumerate(sources, 1)), 100.0)


@pytest.mark.parametrize(
    "answer",
    ["The sources do not say.", "The indexed documents do not contain an answer to this question.",
     "The documents don't mention how much it weighs.", "I cannot answer that from the sources.", "There is no information about its weight."],
)  # fmt: skip
def test_abstentions_are_recognised(answer):
    assert abstained(answer)


@pytest.mark.parametrize("answer", ["A penguin is a seabird [1].", "Cats live 12 to 18 years [1].", "It does not fly; it swims."])
def test_answers_are_not_abstentions(answer):
    assert not abstained(answer)


def test_fact_by_regex_and_by_reference_words():
    assert fact_found(PENGUIN, "It is a kind of seabird [1].")
    assert not fact_found(PENGUIN, "It is a kind of bird.")
    assert fact_found(LIFESPAN, "Domestic cats usually live 12 to 18 years [1].")
    assert not fact_found(LIFESPAN, "Cats live 10 to 12 years.")  # the reference's numbers must all be there
    assert not fact_found(LIFESPAN, "Cats are small.")


def test_right_needs_fact_source_and_no_abstention():
    assert score(PENGUIN, "A seabird [1].", ["/store/docs/penguin.md"]).right
    assert not score(PENGUIN, "A seabird [1].", ["albatross.md"]).right  # right fact, wrong source
    assert not score(PENGUIN, "A seabird.", []).right
    said_no = score(PENGUIN, "The sources do not say.", [])
    assert said_no.abstained and not said_no.right
    assert score(NOWHERE, "The sources do not say.", []).right
    assert not score(NOWHERE, "It weighs 30 kg.", []).right


def test_pipeline_summary_counts_abstentions_and_groups():
    rows = [
        Scored(PENGUIN, score(PENGUIN, "The sources do not say.", []), 900.0),
        Scored(LIFESPAN, score(LIFESPAN, "12 to 18 years [1].", ["cats.md"]), 1100.0),
        Scored(NOWHERE, score(NOWHERE, "The documents do not say.", []), 1000.0),
    ]
    s = summarize_answers(rows)
    assert (s["n"], s["right_with_source"], s["false_abstentions"], s["right_abstentions"]) == (3, 1, 1, 1)
    assert s["accuracy"] == pytest.approx(2 / 3, abs=1e-4) and s["p50_ms"] == 1000.0
    assert s["false_abstention_rate"] == 0.5 and s["right_abstention_rate"] == 1.0
    assert s["per_cluster"]["animals"]["n"] == 3 and set(s["per_type"]) == {"single", "(none)"}
    low, high = s["ci95"]
    assert 0 <= low <= s["accuracy"] <= high <= 1


def test_summary_counts_declines_beside_the_answer_and_numbers_from_another_subject():
    """A decline with the answering passage in the prompt is the generator's failure; a number from
    a sibling's document ("It lives 10 to 12 years [1]." citing dogs.md) is an invented fact."""
    assert score(LIFESPAN, "It lives 10 to 12 years [1].", ["dogs.md"]).other_number
    assert not score(LIFESPAN, "It lives 12 to 18 years [1].", ["cats.md"]).other_number
    assert not score(LIFESPAN, "Cats purr [1].", ["dogs.md"]).other_number  # no number: a wrong answer, not this one
    rows = [
        Scored(PENGUIN, score(PENGUIN, "The sources do not say.", []), 900.0, ("penguin.md", "albatross.md")),
        Scored(LIFESPAN, score(LIFESPAN, "The sources do not say.", []), 900.0, ("dogs.md",)),
        Scored(LIFESPAN.model_copy(update={"id": "c2"}), score(LIFESPAN, "It lives 10 to 12 years [1].", ["dogs.md"]), 900.0, ("dogs.md",)),
    ]
    s = summarize_answers(rows)
    assert (s["false_abstentions"], s["answerable_with_source_shown"], s["false_abstentions_with_source_shown"]) == (2, 1, 1)
    assert s["other_subject_numbers"] == 1
    assert set(s["per_form"]) == {"(none)"}


def test_bootstrap_interval_is_reproducible_and_sane():
    values = [1.0] * 30 + [0.0] * 10
    low, high = bootstrap_ci(values)
    assert (low, high) == bootstrap_ci(values) and low < 0.75 < high and high - low < 0.35
    assert bootstrap_ci([1.0] * 5) == (1.0, 1.0)


def test_kappa():
    assert cohen_kappa(["a", "b", "tie"], ["a", "b", "tie"]) == 1.0
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == 0.0


def test_length_control_removes_a_length_bias():
    # A judge that always prefers the longer answer; a is longer half the time: no real preference.
    gaps = [50, -50] * 20
    outcomes = [1.0 if g > 0 else 0.0 for g in gaps]
    assert length_controlled_win_rate(outcomes, gaps) == pytest.approx(0.5, abs=0.02)
    # a wins whatever the lengths: the controlled rate stays high
    assert length_controlled_win_rate([1.0] * 40, gaps) > 0.9


class FlipJudge:
    """Always prefers the answer shown first: a pure position bias."""

    name, criteria = "flip", CRITERIA

    def rule(self, item, first, second):
        return Ruling({c: "first" for c in CRITERIA})


class FairJudge:
    """Prefers the answer that mentions a seabird, wherever it is shown."""

    name, criteria = "fair", CRITERIA

    def rule(self, item, first, second):
        one, two = "seabird" in first.answer, "seabird" in second.answer
        return Ruling({c: "tie" if one == two else "first" if one else "second" for c in CRITERIA})


def _bucket(tmp_path, items):
    path = tmp_path / "bucket.jsonl"
    path.write_text("".join(json.dumps(i.to_json()) + "\n" for i in items))
    return load_bucket(path)


def test_a_judge_that_flips_with_the_order_gives_ties(tmp_path):
    bucket = _bucket(tmp_path, [PENGUIN, NOWHERE])
    a = [record("p", "A seabird [1].", "penguin.md"), record("n", "It weighs 30 kg.")]
    b = [record("p", "A bird."), record("n", "The documents do not say.")]
    judgements = run_judge(FlipJudge(), bucket.items, a, b)
    assert len(judgements) == 4 and {j.order for j in judgements} == {"ab", "ba"}
    verdicts, _ = combine(judgements)
    assert all(v == "tie" for item in verdicts.values() for v in item.values())
    s = summarize("A", "B", "flip", bucket, judgements, a, b)
    assert s["position_consistency"] == 0.0 and s["criteria"]["overall"]["win_rate"] == 0.5
    assert s["criteria"]["overall"]["tie"] == 2 and s["n_judgements"] == 4


def test_a_consistent_judge_and_its_agreement_with_the_reference(tmp_path):
    bucket = _bucket(tmp_path, [PENGUIN, NOWHERE])
    a = [record("p", "A seabird [1].", "penguin.md"), record("n", "It weighs 30 kg.")]
    b = [record("p", "A bird."), record("n", "The documents do not say.")]
    reference = combine(run_judge(ReferenceJudge(), bucket.items, a, b))[0]
    assert reference == {"p": {"overall": "a"}, "n": {"overall": "b"}}
    judgements = run_judge(FairJudge(), bucket.items, a, b)
    s = summarize("A", "B", "fair", bucket, judgements, a, b, reference)
    overall = s["criteria"]["overall"]
    assert (overall["win"], overall["tie"], overall["loss"]) == (1, 1, 0) and overall["win_rate"] == 0.75
    assert s["position_consistency"] == 1.0
    assert s["agreement_with_reference"]["agreement"] == 0.5 and s["agreement_with_reference"]["decisive_n"] == 2
    assert s["length"]["a_mean_chars"] > 0 and 0 <= s["length_controlled_win_rate"] <= 1


def test_judgements_are_cached_and_reused(tmp_path):
    bucket = _bucket(tmp_path, [PENGUIN])
    a, b = [record("p", "A seabird [1].", "penguin.md")], [record("p", "A bird.")]
    cache = tmp_path / "judgements" / "fair.jsonl"
    first = run_judge(FairJudge(), bucket.items, a, b, cache)

    class Refuses:
        name, criteria = "fair", CRITERIA

        def rule(self, *args):
            raise AssertionError("a cached judgement was asked again")

    assert run_judge(Refuses(), bucket.items, a, b, cache) == first
    changed = [record("p", "Penguins are seabirds [1].", "penguin.md")]
    with pytest.raises(AssertionError, match="asked again"):
        run_judge(Refuses(), bucket.items, changed, b, cache)  # other answers: judged afresh


def test_people_majority_and_agreement():
    votes = [Judgement("p", name, "-", {"overall": v, "grammar": "tie"}) for name, v in (("ann", "a"), ("bob", "a"), ("cy", "b"))]
    verdicts, consistent = combine(votes)
    assert verdicts["p"]["overall"] == "a" and not consistent
    agreement = human_agreement(votes)
    assert agreement["judges"] == ["ann", "bob", "cy"] and len(agreement["pairs"]) == 3
    assert next(p for p in agreement["pairs"] if p["judges"] == ["ann", "bob"])["agreement"] == 1.0


def test_parse_ruling_reads_loose_replies():
    ruling = parse_ruling("Grammar: A\nreadability - tie\n**comprehensiveness**: answer B\nrelevance: A\nerrors: B\noverall: b")
    assert ruling.verdicts["grammar"] == "first" and ruling.verdicts["readability"] == "tie"
    assert ruling.verdicts["comprehensiveness"] == "second" and ruling.verdicts["overall"] == "second"
    assert ruling.unparsed == ("hallucinations",) and ruling.verdicts["hallucinations"] == "tie"


def test_bucket_loader_names_the_bad_line(tmp_path):
    path = tmp_path / "bucket.jsonl"
    path.write_text('{"question": "ok?"}\n{"question": "   "}\n')
    with pytest.raises(BadInputError, match=r"bucket.jsonl:2: question"):
        load_bucket(path)
    path.write_text('{"question": "q", "expect": "(unclosed"}\n')
    with pytest.raises(BadInputError, match=r":1: expect"):
        load_bucket(path)
    path.write_text('{"question": "q", "image": "missing.png"}\n')
    with pytest.raises(BadInputError, match="image not found"):
        load_bucket(path)
    path.write_text('{"question": "q", "id": "x"}\n{"question": "r", "id": "x"}\n')
    with pytest.raises(BadInputError, match="used twice"):
        load_bucket(path)
    path.write_text('{"question": "q"}\n\n{"question": "r"}\n')
    assert [i.id for i in load_bucket(path).items] == ["0001", "0003"]
    assert isinstance(load_bucket(path), Bucket)


def test_a_conversation_is_scored_against_the_same_facts_asked_alone(tmp_path):
    from vlmsearch.eval.bucket.items import load_bucket
    from vlmsearch.eval.scoring import Scored, score, summarize

    turns = [
        {"question": "What is this bird called?", "image": "a.png", "expect": "penguin", "source": "penguin.md"},
        {"question": "What is it a type of?", "expect": "seabird", "source": "penguin.md", "standalone": "What is the penguin a type of?"},
        {"question": "What is this fruit called?", "image": "b.png", "expect": "banana", "source": "banana.md"},
    ]
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"")
    path = tmp_path / "conversations.jsonl"
    path.write_text(json.dumps({"id": "c1", "turns": turns}) + "\n" + json.dumps({"id": "c2", "turns": turns[:2]}) + "\n")
    items = {item.id: item for item in load_bucket(path).items}
    assert list(items) == ["c1#1", "c1#2", "c1#3", "c1#2 alone", "c1#3 alone", "c2#1", "c2#2", "c2#2 alone"]
    assert [items[i].type for i in ("c1#1", "c1#2", "c1#3")] == ["turn 1", "follow-up", "topic switch"]
    assert items["c1#2 alone"].image == "a.png" and items["c1#2 alone"].question == "What is the penguin a type of?"
    assert items["c1#3 alone"].question == "What is this fruit called?" and items["c1#3 alone"].image == "b.png"
    answers = {"c1#1": "It is a penguin.", "c1#2": "A seabird.", "c1#3": "A banana.", "c1#2 alone": "A seabird.", "c1#3 alone": "A banana.",
               "c2#1": "It is a puffin.", "c2#2": "A puffin is a kind of auk.", "c2#2 alone": "A seabird."}  # fmt: skip
    rows = [Scored(item, score(item, answers[i], [item.source or ""]), 10.0) for i, item in items.items()]
    conversation = summarize(rows)["conversation"]
    assert conversation["follow-up"]["turns"]["accuracy"] == 0.5 and conversation["follow-up"]["alone"]["accuracy"] == 1.0
    assert conversation["follow-up"]["ratio"] == 0.5 and conversation["turn 1"]["accuracy"] == 0.5
    assert conversation["follow-up after a right turn 1"]["ratio"] == 1.0  # c2 misnamed the bird in turn 1
    assert conversation["topic switch"]["ratio"] == 1.0
