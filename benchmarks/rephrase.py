"""Rephraser query quality: does the search query retrieve the passage about what the image shows?

Cases: held-out drawings of the rephraser test set (`vlmsearch train vlm-data`) whose title is a
WordNet noun of one or two words, each with a question phrased in a way training never used
("How does this work?"). Corpus: one passage per case subject (its WordNet card) among the 1,000
ImageNet-class passages of the demo's documents, indexed in a temporary store with the offline
text embedder; search is the product's hybrid (BM25 + dense, RRF). A hit is the subject's passage.

Rows: the raw question; the model-free fallback (pointing words replaced by the tagger's subject);
the old pipeline's text-LLM rephraser (it sees the tagger's subject, not the image); our VLM
rephraser checkpoints (they see the image too); and the reference query (an upper bound). Then
what each pipeline really retrieves: its rephrasing, fallback and raw question fused.

`python -m benchmarks.rephrase CKPT [CKPT ...] [--test rephraser-test.jsonl] [--n 80]`
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from benchmarks.common import percentiles_ms, print_table, write_json
from vlmsearch.config import Settings
from vlmsearch.demo.collection import wordnet_documents
from vlmsearch.engine import Engine
from vlmsearch.images import load_image
from vlmsearch.metrics import recall_and_mrr
from vlmsearch.pipeline.rephrase import Rephraser, fallback_query, retrieval_queries
from vlmsearch.pipeline.retrieve import Retriever
from vlmsearch.pipeline.types import SearchQuery, VisualFacts
from vlmsearch.records import Tag
from vlmsearch.vlm.data import load_conversations
from vlmsearch.vlm.datasets import HELD_OUT_QUESTIONS

_QUESTION = re.compile(r"Question: (.*)\nSearch query:$")
_SHOWS = re.compile(r"^The image shows: (.*?)\.")


def _cases(test: Path, wordnet, n: int) -> list[dict]:
    """Held-out cases whose subject is a clean WordNet noun; the subject comes back out of the
    reference query through the question's template."""
    templates = dict(HELD_OUT_QUESTIONS)
    cases = []
    for c in load_conversations(test):
        user, reference = c.messages[-2]["content"], c.messages[-1]["content"]
        question = _QUESTION.search(user).group(1)
        pattern = re.escape(templates[question]).replace(re.escape("{s}"), "(.+)")
        subject = re.fullmatch(pattern, reference).group(1)
        card = wordnet.noun(subject) if len(subject.split()) <= 2 else None
        if card and all(case["card"].synset != card.synset for case in cases):
            tag = _SHOWS.match(user)
            cases.append({"image": c.image, "question": question, "reference": reference, "card": card,
                          "tag": tag.group(1) if tag else ""})  # fmt: skip
    return cases[:: max(1, len(cases) // n)][:n]


def _corpus(folder: Path, cases: list[dict], wordnet) -> list[Path]:
    """Distractors (the ImageNet classes' WordNet passages) and one passage per case subject."""
    documents = wordnet_documents(folder / "imagenet", wordnet)
    subjects = folder / "drawn-things.md"
    sections = ["# Things drawn in clip art\n"] + [f"## {c['card'].title}\n\n{c['card'].as_text()}\n" for c in cases]
    subjects.write_text("\n".join(sections))
    return [*documents, subjects]


def _scores(rankings: list[list[str]], cases: list[dict]) -> dict:
    """Recall@K and MRR; a passage is the case's when it holds the subject's card."""
    ranks = [next((i + 1 for i, text in enumerate(texts) if c["card"].as_text() in text), None)
             for texts, c in zip(rankings, cases)]  # fmt: skip
    return {k: round(v, 3) for k, v in recall_and_mrr(ranks).items()}


def _texts(hits) -> list[str]:
    return [h.text for h in hits]


def run(checkpoints: list[Path], test: Path, n: int = 80) -> dict:
    from vlmsearch.vlm.chat import OwnVLMChat

    with tempfile.TemporaryDirectory() as root:
        engine = Engine(Settings.create(store=Path(root) / "store", profile="offline"))
        cases = _cases(test, engine.wordnet, n)
        engine.index(_corpus(Path(root) / "docs", cases, engine.wordnet))
        embedder = engine.models.text_embedder

        def ranking(query: str) -> list[str]:
            return _texts(engine.store.passages(query, embedder.embed_texts([query])[0], 10))

        retriever = Retriever(engine.store, embedder, k=10, min_similarity=0.0, fusion_k=engine.settings.answer.query_fusion_k)
        facts = [VisualFacts((Tag(c["tag"], 1.0),), "", None, ()) for c in cases]
        rows, queries = [], {}

        def add(method: str, made: list[SearchQuery], seconds: list[float] | None = None, fused_name: str = ""):
            queries[method] = [q.text for q in made]
            row = {"method": method, **_scores([ranking(q.text) for q in made], cases)}
            rows.append({**row, **(percentiles_ms(seconds) if seconds else {})})
            if fused_name:
                fused = [_texts(retriever(retrieval_queries(c["question"], q))) for c, q in zip(cases, made)]
                rows.append({"method": fused_name, **_scores(fused, cases)})

        add("raw question", [SearchQuery(c["question"]) for c in cases])
        add("fallback: tagger's subject (no model)", [SearchQuery(fallback_query(c["question"], f.subject())) for c, f in zip(cases, facts)])
        for name, model, sees_image in [("LLM rephraser (llm pipeline)", engine.models.chat, False)] + [
            (f"our VLM rephraser ({p.name})", p, True) for p in checkpoints
        ]:
            if isinstance(model, Path):
                model = OwnVLMChat(model, engine.settings.cache_dir)
            rephraser, made, seconds = Rephraser(model, sees_image), [], []
            for c, f in zip(cases, facts):
                started = time.perf_counter()
                query = rephraser(c["question"], f, load_image(c["image"]))
                seconds.append(time.perf_counter() - started)
                made.append(SearchQuery(query.text, fallbacks=query.fallbacks))
            add(name, made, seconds, fused_name=f"  + fallback + question, fused ({'vlm' if sees_image else 'llm'} pipeline)")
            model = None  # free a VLM's LM before the next loads
        add("reference query (upper bound)", [SearchQuery(c["reference"]) for c in cases])
    print_table(f"rephraser query quality ({len(cases)} held-out drawings, held-out question phrasings)", rows)
    examples = [{"image": c["image"].name, "question": c["question"], "tagger": c["tag"], "reference": c["reference"],
                 **{m: q[i] for m, q in queries.items() if m not in ("raw question", "reference query (upper bound)")}}
                for i, c in enumerate(cases[:8])]  # fmt: skip
    for e in examples[:5]:
        print(e)
    return {"rows": rows, "n": len(cases), "examples": examples}


if __name__ == "__main__":
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="*", type=Path)
    parser.add_argument("--test", type=Path, default=Path("out/vlm-data/rephraser-test.jsonl"))
    parser.add_argument("--n", type=int, default=80)
    args = parser.parse_args()
    print(f"results: {write_json('rephrase', run(args.checkpoints, args.test, args.n))}")
