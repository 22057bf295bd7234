"""Joint image-text embedding on held-out openclipart: trained heads (CLIP and SigLIP loss) against
untrained baselines, and the fused search the product runs, all in one run.

- hard tags + OCR: the search the offline profile had before (BM25 + dense text over tags, OCR
  text and info cards; file names not searchable), on a real store;
- soft labels: ImageNet class probabilities times the text embeddings of the class names, a
  zero-shot joint space made from the same two towers with no training;
- clip / siglip: heads trained here by `vlmsearch.joint.train` (same data, seed and split), one
  member on the centre crop (the first recipe);
- shipped heads: the package's checkpoint (`make train-joint`: padded images, 4 augmented views,
  3 members merged), read as shipped;
- fused: the shipped model's vectors with tags + OCR, by RRF (the previous default) and by a weighted
  sum of scores (what `vlmsearch search` does now).

Fifteen photos with plain queries share the gallery: the heads never saw a photo, so their rows
show what the joint ranking does off its training domain.

Groups (variants of one drawing) never cross the split; a query is one group's title, and any image
of that group is a hit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, print_table, write_json
from vlmsearch.config import Settings, default_cache_dir
from vlmsearch.errors import BadInputError
from vlmsearch.images import load_image
from vlmsearch.joint.evaluate import (
    gallery,
    queries,
    retrieval_metrics,
    zero_shot_accuracy,
)
from vlmsearch.joint.pairs import Pair, load_pairs, split_pairs
from vlmsearch.metrics import recall_and_mrr
from vlmsearch.stores.rrf import rrf_fuse

OPENCLIPART = Path("/usr/share/openclipart/png")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _soft_label_space(images: list, labels_text: list[str], engine):
    """Image -> probability-weighted mean of class-name embeddings; text -> its own embedding."""
    tower = engine.models.tagger
    class_names = _unit(engine.models.text_embedder.embed_texts(tower.class_names))
    probs = np.concatenate([tower.class_probabilities(images[s : s + 32]) for s in range(0, len(images), 32)])
    return _unit(probs @ class_names), engine.models.text_embedder.embed_texts(labels_text)


# Photos (scikit-image's, bundled) with a plain query each: the heads were trained on clip art only,
# so these show what the joint ranking does off its training domain, mixed into the same gallery.
PHOTOS = {
    "astronaut": "astronaut", "camera": "photographer with a camera", "chelsea": "cat", "clock": "clock",
    "coffee": "cup of coffee", "coins": "coins", "horse": "horse", "moon": "surface of the moon",
    "page": "page of a book", "rocket": "rocket", "hubble_deep_field": "galaxies in deep space",
    "retina": "retina of the eye", "brick": "brick wall", "grass": "grass", "gravel": "gravel",
}  # fmt: skip


def _photo_pairs(folder: Path) -> list[Pair]:
    from PIL import Image
    from skimage import data as skimage_data

    pairs = []
    for name, query in PHOTOS.items():
        path = folder / f"{name}.png"
        Image.fromarray(getattr(skimage_data, name)()).save(path)
        pairs.append(Pair(path, (query,), f"photo:{name}"))
    return pairs


def _readable(pair: Pair) -> bool:
    try:
        load_image(pair.image)
        return True
    except BadInputError:
        return False


def _rrf_search(engine, text: str, k: int, joint: bool) -> list:
    """The earlier defaults, reproduced: BM25 and dense rankings fused by RRF; the joint ranking joined
    them when the heads came (`joint`), and before that there were only tags + OCR."""
    store, depth = engine.store, max(3 * k, 30)
    rankings = [[row["id"] for row, _ in store._keyword("images", text, depth, None)]]
    models = {"text_vector": engine.models.text_embedder, **({"joint": engine.models.image_text} if joint else {})}
    for column, model in models.items():
        rankings.append([row["id"] for row, _ in store._dense("images", column, model.embed_texts([text])[0], depth, None)])
    return [store.image(image_id) for image_id, _ in rrf_fuse(rankings)[:k]]


def _search_ranks(engine, asked, shown, method: str, k: int = 10) -> list[int | None]:
    group_of = {str(p.image.resolve()): p.group for p in shown}
    ranks = []
    for pair in asked:
        if method == "default":
            hits = engine.search_images(pair.text, k=k)
        else:
            hits = _rrf_search(engine, pair.text, k, joint=method == "rrf")
        ranks.append(next((i for i, h in enumerate(hits, 1) if group_of.get(h.path) == pair.group), None))
    return ranks


def run(data: Path = OPENCLIPART, progress=None) -> dict:
    from vlmsearch.engine import Engine
    from vlmsearch.joint.embedder import JointEmbedder
    from vlmsearch.joint.train import ContrastiveSettings, train

    splits = split_pairs(load_pairs(data))
    test = [p for p in splits["test"] if _readable(p)]
    cache = default_cache_dir()
    results: dict = {}
    heads = {}
    for loss in ("clip", "siglip"):  # same seed, data and split; features come from the cache
        out = RESULTS / f"joint-{loss}"
        report = train(ContrastiveSettings(data=data, out=out, loss=loss, seed=0), cache, progress)
        heads[loss] = out
        results[f"train_{loss}"] = {
            "best_epoch": report.best_epoch, "epochs": report.epochs, "correction_scale": report.correction_scale,
            "train_seconds": report.train_seconds, "feature_seconds": report.feature_seconds, "peak_rss_mb": report.peak_rss_mb,
        }  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="vlmsearch-bench-") as tmp:
        photos = _photo_pairs(Path(tmp))
        shown, clip_queries = gallery(test) + photos, queries(test)
        asked = {"clip art": clip_queries, "photos": photos}
        settings = Settings.create(store=Path(tmp) / "store")
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"index_file_names": False})})
        engine = Engine(settings)
        images = [load_image(p.image) for p in shown]
        topics = sorted({p.topic for p in test if p.topic})
        texts = [p.text for p in clip_queries] + [p.text for p in photos] + topics

        spaces = {"soft labels (untrained)": _soft_label_space(images, texts, engine)}
        for label, model in [*((f"{loss} heads", JointEmbedder(path, cache)) for loss, path in heads.items()),
                             (f"shipped heads ({engine.models.image_text.name})", engine.models.image_text)]:  # fmt: skip
            spaces[label] = (model.embed_images(images), model.embed_texts(texts))
        n_clip, n_photo = len(clip_queries), len(photos)
        for method, (image_vectors, text_vectors) in spaces.items():
            results[method] = {
                "clip art": retrieval_metrics(image_vectors, shown, text_vectors[:n_clip], clip_queries),
                "photos": retrieval_metrics(image_vectors, shown, text_vectors[n_clip : n_clip + n_photo], photos),
                "zero_shot_topic_accuracy": zero_shot_accuracy(image_vectors, shown, text_vectors[n_clip + n_photo :], topics),
            }  # fmt: skip

        engine.index([p.image for p in shown], progress=progress)
        searches = {"hard tags + OCR (search)": "tags", "fused by RRF (previous default)": "rrf",
                    "fused by weighted score sum (default)": "default"}  # fmt: skip
        for method, search in searches.items():
            results[method] = {
                kind: {"text_to_image": recall_and_mrr(_search_ranks(engine, pairs, shown, search))}
                for kind, pairs in asked.items()
            }  # fmt: skip

    rows = []
    for method, r in results.items():
        if method.startswith("train_"):
            continue
        clip, photo = r["clip art"], r["photos"]
        rows.append({
            "method": method, **{f"t2i {k}": v for k, v in clip["text_to_image"].items()},
            "i2t mrr": clip.get("image_to_text", {}).get("mrr", float("nan")),
            "topic acc": r.get("zero_shot_topic_accuracy", float("nan")),
            "photos t2i R@1": photo["text_to_image"]["recall@1"], "photos t2i mrr": photo["text_to_image"]["mrr"],
        })  # fmt: skip
    print_table(f"held-out openclipart ({len(clip_queries)} queries) + {len(photos)} photos, one gallery of {len(shown)} images", rows)
    train_rows = [{"method": k.removeprefix("train_"), **r} for k, r in results.items() if k.startswith("train_")]
    print_table("training (2 CPU cores; tower features cached before this run)", train_rows)
    results["split"] = {"clip_art_queries": len(clip_queries), "photo_queries": len(photos), "gallery": len(shown), "topics": len(topics)}
    return results


if __name__ == "__main__":
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    print(f"results: {write_json('joint', run())}")
