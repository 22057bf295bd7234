"""The Python entry point: one object holding the settings, the profile's models and the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from PIL import Image

from vlmsearch.config import Settings
from vlmsearch.errors import BadInputError, ConfigError
from vlmsearch.images import load_image
from vlmsearch.ingest import Indexer, IngestReport
from vlmsearch.models.protocols import label_scores, top_tags
from vlmsearch.models.registry import Models
from vlmsearch.pipeline.conversation import SeenImages
from vlmsearch.pipeline.types import Turn
from vlmsearch.records import ImageHit, PassageHit, Tag
from vlmsearch.stores import Store, StoreInfo, open_store
from vlmsearch.stores.protocol import TextImageWeights

MAX_QUERY_CHARS = 4000


def check_query(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise BadInputError("the query is empty: give some words to search for")
    if len(text) > MAX_QUERY_CHARS:
        raise BadInputError(f"the query is {len(text):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    return text


def zero_shot_labels(labels: Sequence[str]) -> list[str]:
    """Labels as the user typed them, each once, blanks dropped; none left is a clear error."""
    cleaned = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if not cleaned:
        raise BadInputError("no labels given: pass a comma-separated list, e.g. 'cat, dog, car'")
    return cleaned


class Engine:
    """The settings, the profile's models (each loaded on first use) and the store (opened on first use)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.models = Models(settings.profile, settings.cache_dir)
        self._store: Store | None = None
        self._wordnet = None
        self.seen = SeenImages()  # what visual search and the captioner found in recent images

    @classmethod
    def from_config(cls, store: Path | str | None = None, profile: str | None = None, overrides: Sequence[str] = ()) -> Engine:
        """`store`: a folder or a Milvus URI (default `$VLMSEARCH_STORE`, else a per-user data dir); `profile`:
        offline, hf-cpu or a TOML file; `overrides`: "SECTION.KEY=VALUE" strings, as the CLI's `--set`."""
        return cls(Settings.create(store=store, profile=profile, overrides=overrides))

    @property
    def store(self) -> Store:
        """The store, opened with this profile's embedders (a store built by other embedders is refused)."""
        if self._store is None:
            image, text = self.models.image_embedder, self.models.text_embedder
            joint = self.models.image_text if self.models.has("image_text") else None
            info = StoreInfo(
                image_embedder=image.name, image_dim=image.dim, text_embedder=text.name, text_dim=text.dim,
                joint_embedder=joint.name if joint else None, joint_dim=joint.dim if joint else None,
            )  # fmt: skip
            search = self.settings.search
            self._store = open_store(
                self.settings.store, info, ann_min_rows=search.ann_min_rows, ann_refine_factor=search.ann_refine_factor, ann_index=search.ann_index
            )
        return self._store

    @property
    def wordnet(self):
        if self._wordnet is None:
            from vlmsearch.knowledge.wordnet import DEFAULT_DATA_NOUN, WordNet

            self._wordnet = WordNet() if DEFAULT_DATA_NOUN.is_file() else False  # cards are optional
        return self._wordnet or None

    def index(self, paths: Sequence[Path | str], progress=None, engine: str = "local", address: str | None = None) -> IngestReport:
        """`engine`: "local" (this process) or "ray" (Ray Data: a local Ray, or the cluster at `address`)."""
        if engine not in ("local", "ray"):
            raise ConfigError(f"unknown ingest engine {engine!r}; engines: local, ray")
        if address and engine != "ray":
            raise ConfigError("--address names a Ray cluster: it needs --engine ray")
        if engine == "ray":
            from vlmsearch.ingest.ray_engine import index_with_ray, start_ray

            start_ray(address)
            indexer = Indexer(self.models, self.store, self.settings.ingest, self.wordnet)
            self.seen.clear()  # visual facts name similar stored images and matched topics: they change
            return index_with_ray(indexer, self.settings, [Path(p) for p in paths], address=address, progress=progress)
        indexer = Indexer(self.models, self.store, self.settings.ingest, self.wordnet)
        try:
            return indexer.run([Path(p) for p in paths], progress=progress)
        finally:
            self.seen.clear()

    def search_images(self, text: str, k: int | None = None, where: str | None = None) -> list[ImageHit]:
        """Text -> images: keyword and dense matching of tags, OCR text and info cards, plus the query in
        the joint image-text space when the profile has an image_text model, as a weighted sum of scores."""
        text = check_query(text)
        vector = self.models.text_embedder.embed_texts([text])[0]
        joint, joint_weight = None, 0.0
        search = self.settings.search
        if self.models.has("image_text"):
            # In logits (the model's logit_scale x cosine): joint models learn very different scales
            # (ours 12.5; a hub SigLIP's is several times that), and the weight should carry over.
            joint = self.models.image_text.embed_texts([text])[0]
            joint_weight = search.joint_weight * self.models.image_text.logit_scale
        weights = TextImageWeights(keyword=search.keyword_weight, text=search.text_weight, joint=joint_weight)
        return self.store.images_by_text(text, vector, k or search.k, where, joint, weights)

    def similar_images(self, image: Path | str | Image.Image, k: int | None = None, where: str | None = None) -> list[ImageHit]:
        """Image -> images: the indexed images that look most like `image` (cosine of image features)."""
        image = self.open_image(image)
        vector = self.models.image_embedder.embed_images([image])[0]
        return self.store.images_by_vector(vector, k or self.settings.search.k, where)

    def tag(self, image: Path | str | Image.Image, labels: Sequence[str] | None = None, top_k: int = 5) -> list[Tag]:
        """The image's best labels: the tagger's own classes, or zero-shot over `labels` with the
        profile's joint image-text model (any labels, no training)."""
        picture = self.open_image(image)
        if not labels:
            return self.models.tagger.tag([picture], top_k=top_k)[0]
        labels = zero_shot_labels(labels)
        model = self.models.image_text
        scores = label_scores(model, model.embed_images([picture]), model.embed_texts(labels))
        return top_tags(scores, labels, [None] * len(labels), top_k)[0]

    def caption(self, image: Path | str | Image.Image) -> str:
        """A description of the image by the profile's VLM (the vlm pipeline's captioner)."""
        from vlmsearch.pipeline.caption import Captioner

        if not self.models.has("vlm"):
            raise ConfigError(
                f"profile {self.settings.profile.name!r} has no VLM to caption with: use --profile offline (our VLM), "
                "hf-cpu, an OpenAI-compatible VLM, or a checkpoint from `vlmsearch train vlm` as the vlm role"
            )
        return Captioner(self.models.get("vlm"), self.settings.answer.max_caption_tokens)(self.open_image(image))

    def extract(self, image: Path | str | Image.Image, schema, pipeline: str = "llm", docs: bool = False):
        """An object following `schema` (an ExtractSchema, a JSON Schema dict, or a field list such as
        "name, price: number") filled from what the image shows: its text, labels, in the vlm pipeline
        the VLM's caption, and with `docs` the passages retrieved for it; null where none says."""
        from vlmsearch.extract import Extractor, ExtractSchema, from_fields, from_json_schema
        from vlmsearch.pipeline.caption import Captioner
        from vlmsearch.pipeline.retrieve import Retriever

        if pipeline not in ("llm", "vlm"):
            raise ConfigError(f"unknown extraction pipeline {pipeline!r}; pipelines: llm (visual facts), vlm (and the VLM's caption)")
        if not isinstance(schema, ExtractSchema):
            schema = from_fields(schema) if isinstance(schema, str) else from_json_schema(schema)
        picture = self.open_image(image)
        captioner = Captioner(self.models.get("vlm"), self.settings.answer.max_caption_tokens) if pipeline == "vlm" else None
        answer = self.settings.answer
        retriever = Retriever(self.store, self.models.text_embedder, answer.passages, answer.min_passage_similarity, answer.query_fusion_k) if docs else None
        writer = self.models.get(self.settings.extract.role)
        return Extractor(self.models, writer, self.settings.extract, captioner, retriever)(picture, schema)

    def answer_as_json(self, question: str, answer, schema):
        """A pipeline's Answer recast as an object following `schema` (a JSON Schema dict): filled
        from the question, the answer and its cited passages, null where they do not say (the
        OpenAI endpoint's `response_format`)."""
        from vlmsearch.extract import from_json_schema
        from vlmsearch.extract.extractor import Evidence, fill

        wanted = schema if not isinstance(schema, dict) else from_json_schema(schema)
        evidence = [Evidence("question", "The question", question), Evidence("answer", "The answer", answer.answer)]
        evidence += [Evidence(c.id or f"[{c.n}]", f"Passage [{c.n}] from {c.source}", c.text) for c in answer.citations]
        return fill(self.models.get(self.settings.extract.role), evidence, wanted, self.settings.extract)

    def ocr(self, image: Path | str | Image.Image):
        """The image's text lines (boxes, scores) in reading order, and the text as a person reads it."""
        from vlmsearch.extract import reading_order

        return reading_order(self.models.ocr.read(self.open_image(image)))

    def detect(self, image: Path | str | Image.Image, labels: Sequence[str] | None = None):
        """The objects in the image with their boxes: the tagger's classes, or zero-shot `labels`."""
        from vlmsearch.extract import Detector

        if labels is not None:
            labels = zero_shot_labels(labels)
            if not self.models.has("image_text"):
                raise ConfigError(f"profile {self.settings.profile.name!r} has no image_text model for zero-shot labels")
        options = self.settings.extract
        detector = Detector(self.models, options.min_region_score, options.min_region_label_score, options.max_objects)
        return detector(self.open_image(image), labels)

    def pipeline(self, name: str | None = None):
        """A named pipeline; by default the profile's, else `vlm` when the profile has a VLM, else `llm`."""
        from vlmsearch.pipeline import Pipeline

        name = name or self.settings.profile.pipeline or ("vlm" if self.models.has("vlm") else "llm")
        specs = self.settings.pipeline_specs()
        if name not in specs:
            raise ConfigError(f"unknown pipeline {name!r}; known: {', '.join(sorted(specs))}")
        spec = specs[name]
        return Pipeline(name, spec, self.settings, self.models, self.store, self.wordnet, self.seen)

    def ask(self, question: str, image: Path | str | Image.Image | None = None, pipeline: str | None = None, history: Sequence[Turn] = ()):
        """Answer a question, optionally about an image, citing indexed passages. `history`: the
        conversation's earlier turns, oldest first (their images as paths or pictures); a follow-up
        about "it" is answered about what the last answer named, and about the last image sent."""
        return self.pipeline(pipeline).run(check_query(question), self.open_image(image), self._turns(history))

    def ask_stream(self, question: str, image: Path | str | Image.Image | None = None, pipeline: str | None = None, history: Sequence[Turn] = ()):
        """Like ask(), as events: StageEvent per finished stage, DraftEvent (the unfinished sentence) and
        TokenEvent (each checked sentence) as the answer is written, then AnswerEvent."""
        return self.pipeline(pipeline).stream(check_query(question), self.open_image(image), self._turns(history))

    def _turns(self, history: Sequence[Turn]) -> tuple[Turn, ...]:
        return tuple(replace(turn, image=self.open_image(turn.image)) if turn.image is not None else turn for turn in history)

    def open_image(self, image: Path | str | Image.Image | None) -> Image.Image | None:
        """A picture as the engine reads it: a path loaded within the pixel limit, a picture as is."""
        if image is None or isinstance(image, Image.Image):
            return image
        return load_image(image, self.settings.ingest.max_image_pixels)

    def search_passages(self, text: str, k: int | None = None, where: str | None = None) -> list[PassageHit]:
        """Text -> passages: keyword (BM25) and dense search over the indexed documents, fused by RRF."""
        text = check_query(text)
        vector = self.models.text_embedder.embed_texts([text])[0]
        return self.store.passages(text, vector, k or self.settings.search.k, where)
