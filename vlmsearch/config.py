"""Configuration in one place: frozen pydantic models, built once (CLI or caller) and passed down.

Profiles are data files (profiles/*.toml) naming a backend and model for each role; a user's own
TOML file works the same way. Overrides go through `model_copy(update=...)`, never globals.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlmsearch.errors import ConfigError

ROLES = ("tagger", "image_embedder", "image_text", "ocr", "text_embedder", "chat", "generator", "vlm")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSpec(_Frozen):
    backend: str  # registry name: bundled | transformers | openai | llamacpp
    model: str  # a backend's model name, a Hugging Face id, a local path or a served model name
    options: dict[str, Any] = Field(default_factory=dict)  # backend keyword arguments


class PipelineSpec(_Frozen):
    """A pipeline is data: which stages run, and which role rephrases."""

    stages: tuple[str, ...]
    rephraser_role: str = "chat"  # "chat" (a text LLM) or "vlm" (sees the image)
    captioner_role: str = "vlm"
    generator_role: str = "generator"  # a text LLM in both designs, as in the reference system (default: the chat model)


STAGES = ("visual_search", "rephrase", "retrieve", "caption", "generate")
DEFAULT_PIPELINES = {
    # The old design: the image reaches the text models only as visual-search facts.
    "llm": PipelineSpec(stages=("visual_search", "rephrase", "retrieve", "generate")),
    # The new design: a VLM rephraser that sees the image, plus a VLM captioner.
    "vlm": PipelineSpec(stages=STAGES, rephraser_role="vlm"),
}


class Profile(_Frozen):
    name: str
    description: str = ""
    roles: dict[str, ModelSpec]
    pipeline: str | None = None  # the default pipeline; unset: `vlm` when there is a VLM, else `llm`
    pipelines: dict[str, PipelineSpec] = Field(default_factory=dict)  # added to (or replacing) the built-in ones

    @classmethod
    def load(cls, name_or_path: str) -> Profile:
        """A bundled profile by name (`offline`, `hf-cpu`) or a user's TOML file by path."""
        path = Path(name_or_path)
        if path.suffix == ".toml" and path.is_file():
            text, name = path.read_text(), path.stem
        else:
            bundled = resources.files("vlmsearch.profiles") / f"{name_or_path}.toml"
            if not bundled.is_file():
                raise ConfigError(f"unknown profile {name_or_path!r}; bundled: {', '.join(available_profiles())} (or give a path to a .toml file)")
            text, name = bundled.read_text(), name_or_path
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"profile {name_or_path!r} is not valid TOML: {exc}") from exc
        unknown = set(data.get("roles", {})) - set(ROLES)
        if unknown:
            raise ConfigError(f"profile {name!r} names unknown roles {sorted(unknown)}; roles: {', '.join(ROLES)}")
        unknown = set(data) - {"description", "roles", "pipeline", "pipelines"}
        if unknown:
            raise ConfigError(f"profile {name!r} has unknown keys {sorted(unknown)}; keys: description, roles, pipeline, pipelines")
        try:
            return cls(name=name, **{k: v for k, v in data.items() if k != "name"})
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ConfigError(f"profile {name!r}: {'.'.join(map(str, error['loc']))}: {error['msg']}") from None

    def spec(self, role: str) -> ModelSpec | None:
        # The answer writer is the chat model unless the profile gives it its own (a task fine-tune).
        return self.roles.get(role) or (self.roles.get("chat") if role == "generator" else None)


def available_profiles() -> list[str]:
    folder = resources.files("vlmsearch.profiles")
    return sorted(p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml"))


class IngestSettings(_Frozen):
    batch_size: int = 16  # images per model batch and per store commit
    chunk_chars: int = 1200  # passage length, in characters
    chunk_overlap: int = 200  # characters shared by neighbouring passages, so no fact is cut in two
    max_image_pixels: int = 64_000_000  # larger: a JPEG is decoded reduced, others refused (images.py)
    max_file_bytes: int = 200 * 1024 * 1024
    max_ocr_pages: int = 50  # scanned PDF pages read by OCR per document (~1-3 s each on 2 cores)
    top_tags: int = 5
    index_file_names: bool = True  # file names are searchable text (off for evaluation on named files)


class SearchSettings(_Frozen):
    k: int = 10
    ann_min_rows: int = 5000  # below this, exact vector search is fast enough and exact
    ann_refine_factor: int = 4  # re-rank 4k ANN candidates with full vectors: recall@10 0.90 -> 0.999 at 100k
    # The embedded store's vector index, for tables of ann_min_rows or more: "ivf_hnsw_sq" (fast, recall@10
    # 0.89-0.95 at 1M rows) or "ivf_flat" (recall 1.000 at 1M, 2.3x the time, 1.6x the disk): stores/lance.py.
    ann_index: Literal["ivf_hnsw_sq", "ivf_flat"] = "ivf_hnsw_sq"
    # Text -> image search sums weighted scores (stores.protocol.TextImageWeights), chosen on the val split
    # of openclipart plus photos for the offline towers (docs: the lab notebook): BM25 over the query's
    # best, the text embedding's cosine, and the joint model's logit (its logit_scale x cosine).
    keyword_weight: float = 0.2
    text_weight: float = 1.25
    joint_weight: float = 0.08  # per logit: x 12.5 (our heads' scale) = 1 per cosine


class AnswerSettings(_Frozen):
    passages: int = 5  # passages given to the generator
    # Cosine floor between a passage and the closest query. Calibrated for all-MiniLM-L6-v2 on a small
    # probe: answering passages scored 0.55-0.72, unrelated ones -0.11-0.23.
    min_passage_similarity: float = 0.3
    # RRF's k when the query variants' lists are fused (rephrasing, fallbacks, the question). Each list
    # is short (2 x passages), so a small k lets a passage that tops a list beat one that is
    # middling in all of them; 60 (the usual, for long lists) did not. Chosen on the dev bucket.
    query_fusion_k: int = 5
    similar_images: int = 3
    similar_min_score: float = 0.5  # weaker look-alikes would mislead more than help
    topic_matches: int = 6  # document topics the image's regions look like, for visual search (0: off)
    max_answer_tokens: int = 400
    # Passage text given to the generator, focused on the query's closest sentences: prompt processing
    # is most of a small CPU model's latency (Qwen 0.5B: ~200 tokens/s on 2 cores).
    max_source_chars: int = 2400
    # When the generator declines but a passage answers plainly, that passage is quoted if it scores
    # this much (cosine + 0.5 x shared words, against the query). Chosen on the dev bucket: no
    # unanswerable item's closest passage scored above 1.01 there; declined answerable ones up to 1.39.
    min_quote_score: float = 1.1
    max_rephrase_tokens: int = 40
    max_caption_tokens: int = 120
    # Earlier turns of a conversation that reach the rephraser's and generator's prompts: each costs
    # prompt tokens, and the last answer is what a follow-up's pronouns stand for.
    conversation_turns: int = Field(default=3, ge=0, le=20)


class ExtractSettings(_Frozen):
    """`vlmsearch extract` / `detect` / `ocr` (vlmsearch/extract)."""

    # The plain chat model fills schemas: the generator's LoRA learned cited sentences, not JSON.
    role: str = "chat"
    max_tokens: int = Field(default=384, ge=16, le=4096)
    retries: int = Field(default=2, ge=0, le=5)  # re-asks of a model that cannot constrain its decoding
    passages: int = Field(default=3, ge=1, le=20)  # retrieved for `--docs`
    max_tags: int = 3  # the tagger's labels given as evidence (what the image looks like)
    min_tag_score: float = 0.2
    # On a photo (no plain background) a fixed region is an object only when a label scores this
    # much: the tagger's probability, or the joint model's zero-shot score, which runs lower (on
    # scikit-image's photos the right label of a region scored 0.03-0.07, wrong ones under 0.005).
    min_region_score: float = 0.3
    min_region_label_score: float = 0.02
    max_objects: int = 20


def default_store() -> str:
    return os.environ.get("VLMSEARCH_STORE") or str(platformdirs.user_data_path("vlmsearch") / "store")


def default_cache_dir() -> Path:
    return Path(os.environ.get("VLMSEARCH_CACHE") or platformdirs.user_cache_path("vlmsearch"))


class Settings(_Frozen):
    store: str = Field(default_factory=default_store)  # a folder (LanceDB) or a Milvus URI (stores/location.py)
    cache_dir: Path = Field(default_factory=default_cache_dir)
    profile: Profile = Field(default_factory=lambda: Profile.load("offline"))
    ingest: IngestSettings = IngestSettings()
    search: SearchSettings = SearchSettings()
    answer: AnswerSettings = AnswerSettings()
    extract: ExtractSettings = ExtractSettings()
    pipelines: dict[str, PipelineSpec] = Field(default_factory=lambda: dict(DEFAULT_PIPELINES))

    def pipeline_specs(self) -> dict[str, PipelineSpec]:
        """The built-in pipelines and any set here, with the profile's own added (same name: the profile's)."""
        return {**self.pipelines, **self.profile.pipelines}

    @classmethod
    def create(cls, store: Path | str | None = None, profile: str | None = None, overrides: Sequence[str] = ()) -> Settings:
        """Settings from the usual sources: arguments first, then VLMSEARCH_* variables, then defaults.

        `overrides` are "section.key=value" strings (`--set ingest.max_image_pixels=300000000`)."""
        values: dict[str, Any] = {}
        if store is not None:
            values["store"] = str(store)
        profile = profile or os.environ.get("VLMSEARCH_PROFILE")
        if profile:
            values["profile"] = Profile.load(profile)
        settings = cls(**values)
        for override in overrides:
            settings = settings.with_override(override)
        return settings

    def with_override(self, override: str) -> Settings:
        sections = [name for name, field in type(self).model_fields.items() if isinstance(getattr(self, name), _Frozen)
                    and name != "profile"]  # fmt: skip
        key, sep, value = override.partition("=")
        section, _, name = key.strip().partition(".")
        if not sep or section not in sections or not name:
            raise ConfigError(f"--set wants SECTION.KEY=VALUE with SECTION one of {', '.join(sections)}; got {override!r}")
        current = getattr(self, section)
        if name not in type(current).model_fields:
            raise ConfigError(f"unknown setting {key!r}; {section} has: {', '.join(type(current).model_fields)}")
        try:
            updated = type(current).model_validate({**current.model_dump(), name: value.strip()})
        except ValidationError as exc:
            raise ConfigError(f"bad value for {key}: {exc.errors()[0]['msg']}") from None
        return self.model_copy(update={section: updated})
