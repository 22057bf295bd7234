"""Backends register a factory per role; `Models` builds what a profile names, once, on first use."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmsearch.config import ModelSpec, Profile
from vlmsearch.errors import ConfigError, UnknownModelError

Factory = Callable[[ModelSpec, Path], Any]

# Backend modules are imported only when a profile names them, so heavy imports stay lazy.
_BACKEND_MODULES = {
    "bundled": "vlmsearch.models.bundled",
    "transformers": "vlmsearch.models.hf",
    "openai": "vlmsearch.models.openai_chat",
    "llamacpp": "vlmsearch.models.llamacpp",
}
# Models trained here serve themselves: their packages register under the bundled backend, and the
# registry is told where they are, by name (a backend never imports a training package).
_TRAINED_MODULES = {("bundled", "image_text"): "vlmsearch.joint.embedder", ("bundled", "vlm"): "vlmsearch.vlm.chat"}
_ALIASES = {"hf": "transformers", "huggingface": "transformers", "llama.cpp": "llamacpp", "gguf": "llamacpp"}
_FACTORIES: dict[tuple[str, str], Factory] = {}


def register(backend: str, *roles: str) -> Callable[[Factory], Factory]:
    def wrap(factory: Factory) -> Factory:
        for role in roles:
            _FACTORIES[(backend, role)] = factory
        return factory

    return wrap


def known_backends() -> list[str]:
    return sorted(_BACKEND_MODULES)


def build_model(role: str, spec: ModelSpec, cache_dir: Path) -> Any:
    backend = _ALIASES.get(spec.backend, spec.backend)
    if backend not in _BACKEND_MODULES:
        raise ConfigError(f"unknown backend {spec.backend!r} for role {role}; known: {', '.join(known_backends())}")
    importlib.import_module(_BACKEND_MODULES[backend])
    if (backend, role) in _TRAINED_MODULES:
        importlib.import_module(_TRAINED_MODULES[(backend, role)])
    factory = _FACTORIES.get((backend, role))
    if factory is None:
        roles = sorted({r for b, r in [*_FACTORIES, *_TRAINED_MODULES] if b == backend})
        raise ConfigError(f"backend {backend!r} has no {role} models; it serves: {', '.join(roles)}")
    return factory(spec, cache_dir)


def check_model_name(role: str, name: str, known: dict[str, Any]) -> Any:
    """Look a name up in a backend's table of models, case-insensitively, or fail listing them."""
    try:
        return known[name.lower()]
    except KeyError:
        raise UnknownModelError(role, name, list(known)) from None


class Models:
    """The models of one profile, built lazily and kept: never reloaded per request."""

    def __init__(self, profile: Profile, cache_dir: Path):
        self.profile = profile
        self.cache_dir = cache_dir
        self._built: dict[str, Any] = {}
        self._building = threading.RLock()  # re-entrant: a model may build the models it rests on

    def has(self, role: str) -> bool:
        return self.profile.spec(role) is not None

    def get(self, role: str) -> Any:
        spec = self.profile.spec(role)
        if spec is None:
            raise ConfigError(f"profile {self.profile.name!r} has no {role} model")
        # Keyed by spec, not role: roles naming the same model (SigLIP as image embedder, tagger and
        # image_text) share one loaded copy.
        key = spec.model_dump_json()
        if key not in self._built:
            with self._building:  # a server's concurrent first requests must not load a model twice
                if key not in self._built:
                    self._built[key] = build_model(role, spec, self.cache_dir)
        return self._built[key]

    @property
    def tagger(self):
        return self.get("tagger")

    @property
    def image_embedder(self):
        return self.get("image_embedder")

    @property
    def image_text(self):
        return self.get("image_text")

    @property
    def text_embedder(self):
        return self.get("text_embedder")

    @property
    def ocr(self):
        return self.get("ocr")

    @property
    def chat(self):
        return self.get("chat")
