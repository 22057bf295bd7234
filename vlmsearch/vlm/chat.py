"""Our trained VLM as a ChatModel (the `vlm` role: captioner and rephraser of the vlm pipeline)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from vlmsearch.config import ModelSpec
from vlmsearch.errors import BadInputError
from vlmsearch.models.bundled import shipped_or_own
from vlmsearch.models.protocols import GenerationOptions, Message
from vlmsearch.models.registry import build_model, register
from vlmsearch.models.serial import FairLock
from vlmsearch.vlm.model import Precision, VisionLanguageModel


class OwnVLMChat:
    accepts_images = True

    def __init__(self, checkpoint: Path, cache_dir: Path, precision: Precision = "auto", max_tokens: int | None = None):
        self._model = VisionLanguageModel.from_pretrained(checkpoint, cache_dir).set_precision(precision)
        self.max_tokens = max_tokens  # a cap on any reply: past what it was trained to say, a small model drifts
        self.name = self._model.config.name
        self._turn = FairLock()
        self._encoder = build_model("image_embedder", self._model.config.encoder, cache_dir)

    def stream(self, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> Iterator[str]:
        images = [image for m in messages for image in m.images]
        if len(images) > 1:
            raise BadInputError(f"{self.name} takes one image per conversation, not {len(images)}")
        grids = self._encoder.feature_maps(images) if images else None
        chat = [{"role": m.role, "content": m.text} for m in messages]
        said = ""
        limit = min(options.max_tokens, self.max_tokens or options.max_tokens)
        with self._turn:  # one generation at a time, in arrival order
            for piece in self._model.stream(grids, chat, limit, options.temperature):
                said += piece
                cut = min((said.find(s) for s in options.stop if s in said), default=-1)
                if cut >= 0:  # a stop string: emit what came before it and end
                    yield piece[: max(0, len(piece) - (len(said) - cut))]
                    return
                yield piece


# Our VLM's adapter shipped in this package, served under the bundled backend (the registry knows
# this module by name; the backend does not import it).
SHIPPED_VLM = {"vlm-clipart-mlp": "vlm-clipart-mlp"}


@register("bundled", "vlm")
def _own_vlm(spec: ModelSpec, cache_dir: Path) -> OwnVLMChat:
    """Our VLM (`vlmsearch train vlm`): the shipped adapter by name, or a checkpoint folder by path."""
    path = shipped_or_own("vlm", spec.model, SHIPPED_VLM, "vlmsearch.vlm", "train one with `vlmsearch train vlm`")
    return OwnVLMChat(path, cache_dir, **spec.options)
