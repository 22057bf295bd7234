"""`vlmsearch demo`: build the sample collection, index it, search it three ways, write an HTML report."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from vlmsearch.demo import collection
from vlmsearch.engine import Engine
from vlmsearch.errors import VlmsearchError

TEXT_QUERIES = ("cat", "a cup of coffee", "rocket", "car", "flower", "clock", "text on a page")
PASSAGE_QUERIES = ("what is espresso made of", "which animals are domestic cats related to", "a vehicle for space travel")
SIMILAR_TO = ("chelsea.png", "coffee.png")
CAPTIONED = 6  # clip-art images the profile's VLM describes
QUESTIONS = (  # (photo, question): the subject is only in the image
    ("chelsea.png", "what kind of animal is this?"),
    ("coffee.png", "how is this drink made?"),
    ("rocket.png", "what is this used for?"),
)


def run_demo(engine: Engine, out_dir: Path, openclipart_images: int = 60, progress=None, console=None) -> Path:
    wordnet = engine.wordnet
    if wordnet is None:
        raise VlmsearchError("the demo needs WordNet: apt-get install wordnet-base (make setup does it)")
    base = out_dir / "collection"
    photos = collection.photos(base / "photos")
    collection.clipart(base / "clipart", openclipart_images)
    collection.wordnet_documents(base / "docs", wordnet)
    report = engine.index([base], progress=progress)
    counts = engine.store.count()

    def src(path: str) -> str:
        return os.path.relpath(path, out_dir.resolve())

    def image_row(hit) -> dict:
        return {
            "src": src(hit.path), "score": hit.score, "ocr": hit.ocr_text.replace("\n", " ")[:80],
            "tags": ", ".join(t.label.split(",")[0] for t in hit.tags[:2]),
            "card": hit.card.as_text()[:140] if hit.card else "",
        }  # fmt: skip

    text_queries = [{"query": q, "hits": [image_row(h) for h in engine.search_images(q, k=6)]} for q in TEXT_QUERIES]
    by_name = {p.name: p for p in photos}
    image_queries = [
        {"name": name, "src": src(str(by_name[name].resolve())), "hits": [image_row(h) for h in engine.similar_images(by_name[name], k=6)]}
        for name in SIMILAR_TO
    ]
    passage_queries = [{"query": q, "hits": [dict(h.to_json(), source=Path(h.source).name) for h in engine.search_passages(q, k=3)]} for q in PASSAGE_QUERIES]
    # Both designs side by side when the profile has a VLM (offline: ours), as in the reference system's SBS.
    pipelines = ("llm", "vlm") if engine.models.has("vlm") else ("llm",)
    answers = []
    for name, question in QUESTIONS:
        for pipeline in pipelines:
            answer = engine.ask(question, by_name[name], pipeline=pipeline)
            answers.append({
                "src": src(str(by_name[name].resolve())), "question": question, "answer": answer.answer, "pipeline": pipeline,
                "citations": [{"n": c.n, "source": Path(c.source).name, "text": c.text[:200]} for c in answer.citations],
                "trace": [{"stage": t.stage, "model": t.model, "ms": t.ms, "output": t.output} for t in answer.trace],
            })  # fmt: skip
    clipart = sorted((base / "clipart").glob("*.png"))[:CAPTIONED]
    captions = [{"src": src(str(p.resolve())), "caption": engine.caption(p)} for p in clipart] if "vlm" in pipelines else []
    if console:
        _print_summary(console, text_queries, image_queries, passage_queries, answers, captions)
    env = Environment(loader=PackageLoader("vlmsearch.demo", "."), autoescape=select_autoescape(["j2", "html"]))
    html = env.get_template("report.html.j2").render(
        profile=engine.settings.profile.name, counts=counts, report=report,
        text_queries=text_queries, image_queries=image_queries, passage_queries=passage_queries, answers=answers,
        captions=captions,
    )  # fmt: skip
    target = out_dir / "report.html"
    target.write_text(html)
    return target


def _print_summary(console, text_queries, image_queries, passage_queries, answers, captions) -> None:
    for q in text_queries:
        names = ", ".join(Path(h["src"]).name for h in q["hits"][:3])
        console.print(f"[bold]text -> images[/] {q['query']!r}: {names}", highlight=False)
    for q in image_queries:
        names = ", ".join(Path(h["src"]).name for h in q["hits"][1:4])
        console.print(f"[bold]image -> images[/] {q['name']}: {names}", highlight=False)
    for q in passage_queries:
        top = q["hits"][0]["text"][:100] if q["hits"] else "(none)"
        console.print(f"[bold]text -> passages[/] {q['query']!r}: {top}", highlight=False)
    for a in answers:
        sources = ", ".join(f"[{c['n']}] {c['source']}" for c in a["citations"]) or "no sources cited"
        console.print(f"[bold]ask ({a['pipeline']})[/] {Path(a['src']).name} {a['question']!r}: {a['answer']} ({sources})",
                      highlight=False)  # fmt: skip
    for c in captions:
        console.print(f"[bold]caption[/] {Path(c['src']).name}: {c['caption']}", highlight=False)
