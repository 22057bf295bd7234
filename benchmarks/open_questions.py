"""Open questions about photos, the kind the bucket never asks ("how is this drink made?", "what
colours can this animal's coat be?"): does the generator say what the passage says, with its source?

The bucket's questions come in six shapes (name, kind, definition, family, part, other name), and a
generator fine-tuned on them can learn to answer everything in those shapes ("what does this
carry?" -> "It is a missile [3]."). This measures the other questions, on the demo's photos and its
WordNet documents (one passage per ImageNet class, with a visual description). An answer is right
when it says what the case expects (a regex over the passage's own words) and cites a passage about
the photo's subject. The cases were written from the passages, before any model saw them; the
photos are ones visual search recognises (the tagger reads scikit-image's clock as a spotlight, so
it is not among them), so the generator is what is measured.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rich.progress import track

from benchmarks.common import print_table
from vlmsearch.demo import collection
from vlmsearch.engine import Engine


@dataclass(frozen=True)
class Case:
    photo: str
    question: str
    expect: str  # regex the answer must match (case-insensitive)
    subject: str  # regex a cited passage must match: the passage is about the photo's subject


CAT, COFFEE, ROCKET, TRIPOD = r"tabby|Egyptian cat|domestic cat", r"espresso|coffee", r"missile|rocket|space shuttle", r"tripod"
CASES = (
    Case("chelsea", "What colours can this animal's coat be?", r"brown|gr[ae]y|silver|orange|cream|tawny|black", CAT),
    Case("chelsea", "What markings does this cat have?", r"stripe|swirl|ring|mottled|\bM\b", CAT),
    Case("chelsea", "How big is this animal?", r"small|compact", CAT),
    Case("chelsea", "Is this a wild animal or a pet?", r"domestic|pet|house", CAT),
    Case("coffee", "How is this drink made?", r"steam|pressure|forc|brew", COFFEE),
    Case("coffee", "What is this drink made from?", r"coffee|beans|grounds", COFFEE),
    Case("coffee", "What is this usually served in?", r"cup|mug|glass|saucer", COFFEE),
    Case("coffee", "Is this drink strong or mild?", r"strong|concentrated", COFFEE),
    Case("rocket", "What does this carry?", r"warhead|explosive|crew|payload", ROCKET),
    Case("rocket", "What shape is this?", r"slender|cylindric|pointed|long|narrow", ROCKET),
    Case("rocket", "How is this guided?", r"remote control|ballistic|guided", ROCKET),
    Case("rocket", "Where might you see one of these?", r"launcher|museum|aircraft|launch", ROCKET),
    Case("camera", "How many legs does this stand have?", r"three|\b3\b", TRIPOD),
    Case("camera", "What is this stand used for?", r"support|hold|steady|camera|photograph", TRIPOD),
    Case("camera", "What can be attached to the top of this?", r"camera|telescope|imaging", TRIPOD),
    Case("camera", "What sizes does this stand come in?", r"full-size|tabletop|flexible", TRIPOD),
)


def right(case: Case, answer) -> bool:
    cited_subject = any(re.search(case.subject, c.text, re.I) for c in answer.citations)
    return bool(re.search(case.expect, answer.answer, re.I)) and cited_subject


def _ask_all(profile: str | None, store: Path, docs: Path, photos: dict[str, Path], pipeline: str) -> list[dict]:
    engine = Engine.from_config(store=store, profile=profile)
    if not engine.store.count().get("passages"):  # the first profile indexes; the others reuse it
        engine.index(collection.wordnet_documents(docs, engine.wordnet))
    rows = []
    for case in track(CASES, description=f"{profile or 'default'}: asking"):
        answer = engine.ask(case.question, photos[case.photo], pipeline)
        rows.append({"photo": case.photo, "question": case.question, "answer": answer.answer, "right": right(case, answer)})
    return rows


def run(profiles: list[str | None], pipeline: str = "llm") -> dict:
    """Every case on each profile (None: the one in use), one store shared: profiles that differ
    only in the generator see the same passages."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = {p.stem: p for p in collection.photos(root / "photos")}
        results = {str(profile or "default"): _ask_all(profile, root / "store", root / "docs", photos, pipeline) for profile in profiles}
    for label, rows in results.items():
        print_table(f"{label}: {sum(r['right'] for r in rows)} of {len(rows)} right ({pipeline} pipeline)", rows)
    return {"pipeline": pipeline, "cases": len(CASES), "right": {label: sum(r["right"] for r in rows) for label, rows in results.items()}, "answers": results}


if __name__ == "__main__":
    import argparse

    from benchmarks.common import write_json
    from vlmsearch.models.hf import quiet_transformers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", action="append", default=[], help="a profile (name or .toml path) asked the same cases first; repeatable")
    parser.add_argument("--pipeline", default="llm", choices=("llm", "vlm"))
    args = parser.parse_args()
    quiet_transformers()
    print(write_json("open_questions", run([*args.baseline, None], args.pipeline)))
