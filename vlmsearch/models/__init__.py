"""Model roles (protocols), the backend registry, and the backends themselves."""

from vlmsearch.models.protocols import (
    OCR,
    ChatModel,
    ImageEmbedder,
    ImageTextEmbedder,
    Message,
    Tagger,
    TextEmbedder,
    complete,
)
from vlmsearch.models.registry import Models, build_model, known_backends

__all__ = [
    "OCR",
    "ChatModel",
    "ImageEmbedder",
    "ImageTextEmbedder",
    "Message",
    "Models",
    "Tagger",
    "TextEmbedder",
    "build_model",
    "complete",
    "known_backends",
]
