"""People as judges: a page that shows one pair at a time (image, question, two answers on sides
chosen at random per judge and item, so nobody learns which pipeline is which) and records one
verdict per criterion. Verdicts go to <sbs folder>/human/<judge>.jsonl in the format the SBS report
reads; a judge who comes back resumes at the first pair they have not judged.

`judge_router(folder)` is a FastAPI router with relative URLs, so the server can mount it anywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel

from vlmsearch.errors import BadInputError
from vlmsearch.eval.judges import CRITERIA
from vlmsearch.eval.sbs import Judgement, human_agreement, read_judgements

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
DESCRIPTIONS = {
    "grammar": "fewer grammar and spelling mistakes",
    "readability": "clearer, easier to read",
    "comprehensiveness": "answers the whole question",
    "relevance": "stays on what was asked",
    "errors": "fewer logical or factual errors",
    "hallucinations": "invents less",
    "overall": "the better answer for you",
}


class Verdicts(BaseModel):
    judge: str
    item: str
    verdicts: dict[str, str]  # criterion -> "left" | "right" | "tie"


class _Pairs:
    def __init__(self, folder: Path):
        path = folder / "pairs.jsonl"
        if not path.is_file():
            raise BadInputError(f"{folder}: no pairs.jsonl; run `vlmsearch eval sbs` first, which writes it")
        self.folder = folder
        self.pairs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        self.by_item = {p["item"]: p for p in self.pairs}

    def human_file(self, judge: str) -> Path:
        return self.folder / "human" / f"{judge}.jsonl"

    def judged(self, judge: str) -> set[str]:
        current = {p["item"]: p["key"] for p in self.pairs}
        return {j.item for j in read_judgements(self.human_file(judge)) if current.get(j.item) == j.key}

    @staticmethod
    def left_is_a(judge: str, item: str) -> bool:
        """The side each system gets: fixed per judge and item (a reload shows the same page), random across them."""
        return hashlib.sha256(f"{judge}\0{item}".encode()).digest()[0] % 2 == 0


def _judge_name(name: str) -> str:
    if not _NAME.match(name):
        raise HTTPException(422, "a judge name is 1-40 letters, digits, '.', '_' or '-'")
    return name


def judge_router(folder: Path) -> APIRouter:
    pairs = _Pairs(folder)
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (resources.files("vlmsearch.eval.judge_app") / "page.html").read_text(encoding="utf-8")

    @router.get("/api/next")
    def next_pair(judge: str) -> dict:
        judge = _judge_name(judge)
        done = pairs.judged(judge)
        remaining = [p for p in pairs.pairs if p["item"] not in done]
        status = {"judged": len(done), "total": len(pairs.pairs), "criteria": [{"name": c, "description": DESCRIPTIONS[c]} for c in CRITERIA]}
        if not remaining:
            return {**status, "pair": None}
        pair = remaining[0]
        left, right = (pair["a"], pair["b"]) if pairs.left_is_a(judge, pair["item"]) else (pair["b"], pair["a"])
        shown = {
            "item": pair["item"], "question": pair["question"], "image": f"api/image/{pair['item']}" if pair["image"] else None,
            "left": {"answer": left["answer"], "citations": left["citations"]},
            "right": {"answer": right["answer"], "citations": right["citations"]},
        }  # fmt: skip
        return {**status, "pair": shown}

    @router.get("/api/image/{item}")
    def image(item: str) -> FileResponse:
        pair = pairs.by_item.get(item)
        if pair is None or not pair["image"]:
            raise HTTPException(404, f"no image for item {item!r}")
        return FileResponse(pair["image"])

    @router.post("/api/verdicts")
    def record(body: Verdicts) -> dict:
        judge = _judge_name(body.judge)
        pair = pairs.by_item.get(body.item)
        if pair is None:
            raise HTTPException(404, f"unknown item {body.item!r}")
        if set(body.verdicts) != set(CRITERIA) or not set(body.verdicts.values()) <= {"left", "right", "tie"}:
            raise HTTPException(422, f"give left, right or tie for each of: {', '.join(CRITERIA)}")
        a_side = "left" if pairs.left_is_a(judge, body.item) else "right"
        verdicts = {c: "tie" if v == "tie" else "a" if v == a_side else "b" for c, v in body.verdicts.items()}
        path = pairs.human_file(judge)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(Judgement(body.item, judge, "-", verdicts, pair["key"]).to_json()) + "\n")
        return {"saved": body.item}

    @router.get("/api/agreement")
    def agreement() -> dict:
        judgements = [j for path in sorted((folder / "human").glob("*.jsonl")) for j in read_judgements(path)]
        return human_agreement(judgements) or {"judges": [], "pairs": []}

    return router


def judge_app(folder: Path) -> FastAPI:
    app = FastAPI(title="vlmsearch: judge answers side by side")
    app.include_router(judge_router(folder))
    return app
