"""Structured extraction: an image (and, asked, passages about it) -> an object following a schema.

The evidence is what the image shows in words: its text in reading order (OCR), the tagger's labels,
the VLM's caption in the vlm pipeline, and with `docs` the passages retrieved for it. A chat model
fills the schema from the evidence under constrained decoding (models/structured.py). A value the
evidence does not contain is then set to null: a small model under a grammar must still write
*something* for a string, and an invented shop name is worse than none. Each value kept names the
evidence it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from PIL import Image

from vlmsearch.extract.reading import Page, reading_order
from vlmsearch.extract.schema import ExtractSchema
from vlmsearch.models.protocols import GenerationOptions, Message
from vlmsearch.models.structured import structured_reply
from vlmsearch.pipeline.untrusted import as_data

SYSTEM = (
    "You fill a JSON object with facts about an image, taken from the evidence below. Copy each value "
    "exactly as the evidence writes it. When the evidence does not give a field, its value is null: "
    "never guess a value."
)
IMAGE_TEXT, IMAGE_TAGS, IMAGE_CAPTION = "image:text", "image:tags", "image:caption"
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


@dataclass(frozen=True)
class Evidence:
    source: str  # IMAGE_TEXT, IMAGE_TAGS, IMAGE_CAPTION, or a passage id
    heading: str
    text: str


@dataclass(frozen=True)
class Extraction:
    data: dict
    sources: dict[str, str]  # field -> the evidence its value came from
    evidence: tuple[Evidence, ...] = ()
    dropped: tuple[str, ...] = ()  # fields whose written value the evidence did not contain (set to null)
    page: Page | None = field(default=None, repr=False)

    def to_json(self, path: str | None = None) -> dict:
        out = {"data": self.data, "sources": self.sources}
        return {"path": path, **out} if path is not None else out


class Extractor:
    """`writer`: the chat model that fills the schema; `captioner` (vlm pipeline) and `retriever`
    (documents) are optional evidence."""

    def __init__(self, models, writer, settings, captioner=None, retriever=None):
        self.models, self.writer, self.settings = models, writer, settings
        self.captioner, self.retriever = captioner, retriever

    def __call__(self, image: Image.Image, schema: ExtractSchema) -> Extraction:
        page = reading_order(self.models.ocr.read(image))
        extraction = fill(self.writer, self._evidence(image, page, schema), schema, self.settings)
        return replace(extraction, page=page)

    def _evidence(self, image: Image.Image, page: Page, schema: ExtractSchema) -> list[Evidence]:
        out = []
        if page.text:
            out.append(Evidence(IMAGE_TEXT, "Text in the image, in reading order", page.text))
        tags = [t for t in self.models.tagger.tag([image], top_k=self.settings.max_tags)[0] if t.score >= self.settings.min_tag_score]
        if tags:
            out.append(Evidence(IMAGE_TAGS, "What the image looks like (a classifier's labels)", ", ".join(t.label for t in tags)))
        if self.captioner is not None:
            out.append(Evidence(IMAGE_CAPTION, "A description of the image", self.captioner(image)))
        if self.retriever is not None:
            query = " ".join([page.text.replace("\n", " "), *(t.label for t in tags[:1]), *schema.fields])
            for hit in self.retriever([(query, 1.0)])[: self.settings.passages]:
                out.append(Evidence(hit.id, f"Passage {hit.id} from {hit.source}", hit.text))
        return out


def fill(writer, evidence: list[Evidence], schema: ExtractSchema, settings) -> Extraction:
    """`schema` filled by `writer` from `evidence`, each value the evidence does not hold set to null."""
    reply = structured_reply(
        writer, _messages(evidence, schema), schema.nullable,
        GenerationOptions(max_tokens=settings.max_tokens), retries=settings.retries,
    )  # fmt: skip
    written = schema.empty() if reply is None else {name: reply.get(name) for name in schema.fields}
    data, sources, dropped = grounded(written, evidence, schema)
    schema.validate(data)  # nulls and kept values: what the model wrote, less what it invented
    return Extraction(data, sources, tuple(evidence), tuple(dropped))


def _messages(evidence: list[Evidence], schema: ExtractSchema) -> list[Message]:
    shown = "\n\n".join(f"[{e.heading}]\n{as_data(e.text)}" for e in evidence) or "(nothing: the image shows no text and nothing recognisable)"
    fields = "\n".join(f"- {name}: {_described(schema.given['properties'][name])}" for name in schema.fields)
    return [Message("system", SYSTEM), Message("user", f"Evidence:\n{shown}\n\nFields to fill:\n{fields}")]


def _described(spec: dict) -> str:
    kind = spec.get("type", "value")
    about = spec.get("description") or spec.get("title") or ""
    return f"{kind}{', ' + about if about else ''}"


def grounded(written: dict, evidence: list[Evidence], schema: ExtractSchema) -> tuple[dict, dict[str, str], list[str]]:
    """`written` with each value the evidence does not contain set to null; where each kept one is."""
    data, sources, dropped = {}, {}, []
    for name, value in written.items():
        data[name] = None if value == [] else value
        if data[name] is None or not _checkable(value, schema.given["properties"][name]):
            continue
        source = next((piece.source for piece in evidence if _contains(piece.text, value)), None)
        if source is None:
            data[name] = None
            dropped.append(name)
        else:
            sources[name] = source
    return data, sources, dropped


def _checkable(value, spec: dict) -> bool:
    """Written strings and numbers are looked for in the evidence; a choice among the schema's own
    words (enum, const) or a yes/no cannot be."""
    if "enum" in spec or "const" in spec or isinstance(value, bool):
        return False
    if isinstance(value, list):
        return any(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value) and "enum" not in spec.get("items", {})
    return isinstance(value, str | int | float | dict)


def _contains(text: str, value) -> bool:
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int | float):
        return any(abs(float(n.replace(",", "")) - value) < 1e-9 for n in _NUMBER.findall(text) if _is_float(n.replace(",", "")))
    if isinstance(value, str):
        wanted = _squeezed(value)
        return bool(wanted) and wanted in _squeezed(text)
    if isinstance(value, list):
        return all(_contains(text, v) for v in value)
    if isinstance(value, dict):
        return all(_contains(text, v) for v in value.values() if v is not None)
    return False


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _squeezed(text: str) -> str:
    """Compared without case, spaces or punctuation: OCR drops spaces ("OPEN9AM") and models add them."""
    return "".join(c for c in text.casefold() if c.isalnum())
