"""Joint image-text embedding on held-out openclipart: trained heads (CLIP and SigLIP loss) against
untrained baselines, and the fused search the product runs, all in one run.

- hard tags + OCR: the search the offline profile had before (BM25 + dense text over tags, OCR
  text and info cards; file names not searchable), on a real store;
- soft labels: ImageNet class probabilities times the text embeddings of the class names, a
  zero-shot joint space made from the same two towers with no training;
- clip / siglip: heads trained here by `vlmsearch.joint.train` (same data, seed and split);
- fused: the shipped model's vectors fused with tags + OCR by RRF (what `vlmsearch search` does).

Groups (variants of one drawing) never cross the split; a query is one group's title, and any image
of that group is a hit.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.common import RESULTS, print_table, write_json
from vlmsearch.config import Settings, default_cache_dir
from vlmsearch.eval.metrics import first_relevant_ranks, recall_and_mrr
from vlmsearch.joint.evaluate import gallery, queries, retrieval_metrics, zero_shot_accuracy
from vlmsearch.joint.pairs import load_pairs, split_pairs

OPENCLIPART = Path("/usr/share/openclipart/png")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _soft_label_space(images: list, labels_text: list[str], engine):
    """Image -> probability-weighted mean of class-name embeddings; text -> its own embedding."""
    tower = engine.models.tagger
    class_names = _unit(engine.models.text_embedder.embed_texts(tower._labels))
    probs = np.concatenate([tower.class_probabilities(images[s : s + 32]) for s in range(0, len(images), 32)])
    return _unit(probs @ class_names), engine.models.text_embedder.embed_texts(labels_text)


def _search_ranks(engine, asked, shown, fused: bool, k: int = 10) -> list[int | None]:
    group_of = {str(p.image.resolve()): p.group for p in shown}
    ranks = []
    for pair in asked:
        if fused:
            hits = engine.search_images(pair.text, k=k)
        else:  # the same store and query without the joint ranking
            vector = engine.models.text_embedder.embed_texts([pair.text])[0]
            hits = engine.store.images_by_text(pair.text, vector, k)
        relevant = np.array([[group_of.get(h.path) == pair.group for h in hits]])
        ranks.append(first_relevant_ranks(-np.arange(len(hits))[None, :].astype(float), relevant)[0] if hits else None)
    return ranks


def run(data: Path = OPENCLIPART, shipped: str = "joint-openclipart-siglip", progress=None) -> dict:
    from vlmsearch.engine import Engine
    from vlmsearch.images import load_image
    from vlmsearch.joint.train import ContrastiveSettings, train

    pairs = split_pairs(load_pairs(data))
    shown, asked = gallery(pairs["test"]), queries(pairs["test"])
    rows, results = [], {}

    # Trained heads, CLIP and SigLIP loss, same seed and split (features come from the cache).
    cache = default_cache_dir()
    heads = {}
    for loss in ("clip", "siglip"):
        out = RESULTS / f"joint-{loss}"
        report = train(ContrastiveSettings(data=data, out=out, loss=loss, seed=0), cache, progress)
        heads[loss] = out
        results[f"train_{loss}"] = {
            "best_epoch": report.best_epoch, "epochs": report.epochs, "train_seconds": report.train_seconds,
            "feature_seconds": report.feature_seconds, "peak_rss_mb": report.peak_rss_mb, "pairs": report.pairs,
        }  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="vlmsearch-bench-") as store:
        settings = Settings.create(store=store)
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"index_file_names": False})})
        engine = Engine(settings)
        images = [load_image(p.image) for p in shown]
        topics = sorted({p.topic for p in pairs["test"] if p.topic})

        spaces = {"soft labels (untrained)": _soft_label_space(images, [p.text for p in asked] + topics, engine)}
        from vlmsearch.joint.embedder import JointEmbedder

        for loss, path in heads.items():
            model = JointEmbedder(path, cache)
            spaces[f"{loss} heads"] = (model.embed_images(images), model.embed_texts([p.text for p in asked] + topics))
        for method, (image_vectors, text_vectors) in spaces.items():
            metrics = retrieval_metrics(image_vectors, shown, text_vectors[: len(asked)], asked)
            zero_shot = zero_shot_accuracy(image_vectors, shown, text_vectors[len(asked) :], topics)
            results[method] = {**metrics, "zero_shot_topic_accuracy": zero_shot}

        engine.index([p.image for p in shown], progress=progress)
        results["hard tags + OCR (search)"] = {"text_to_image": recall_and_mrr(_search_ranks(engine, asked, shown, False))}
        results[f"fused search ({shipped})"] = {"text_to_image": recall_and_mrr(_search_ranks(engine, asked, shown, True))}

    for method, r in results.items():
        if method.startswith("train_"):
            continue
        t2i, i2t = r["text_to_image"], r.get("image_to_text", {})
        rows.append({
            "method": method, **{f"t2i {k}": v for k, v in t2i.items()},
            "i2t R@1": i2t.get("recall@1", float("nan")), "i2t mrr": i2t.get("mrr", float("nan")),
            "zero-shot acc": r.get("zero_shot_topic_accuracy", float("nan")),
        })  # fmt: skip
    print_table(f"held-out openclipart: {len(asked)} queries, {len(shown)} images, {len(topics)} topics", rows)
    train_rows = [{"method": k.removeprefix("train_"), **{x: v for x, v in r.items() if x != "pairs"}} for k, r in results.items() if k.startswith("train_")]
    print_table("training (2 CPU cores; features cached before this run)", train_rows)
    results["split"] = {"queries": len(asked), "gallery": len(shown), "topics": len(topics), **{k: len(v) for k, v in pairs.items()}}
    return results


if __name__ == "__main__":
    from vlmsearch.models.hf import quiet_transformers

    quiet_transformers()
    print(f"results: {write_json('joint', run())}")
