"""Stage 4 (vlm pipeline): a VLM describes the image; the description goes to the generator as context."""

from __future__ import annotations

from PIL import Image

from vlmsearch.models.protocols import GenerationOptions, Message, complete

PROMPT = (
    "Describe this image in two or three sentences: the main objects and what they are doing, "
    "any text you can read, and the setting. Describe only what is visible."
)


class Captioner:
    def __init__(self, model, max_tokens: int = 120):
        self.model, self.max_tokens = model, max_tokens

    @property
    def model_name(self) -> str:
        return self.model.name

    def __call__(self, image: Image.Image) -> str:
        reply = complete(self.model, [Message("user", PROMPT, images=(image,))], GenerationOptions(max_tokens=self.max_tokens))
        return reply.strip()
