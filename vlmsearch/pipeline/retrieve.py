"""Stage 3: queries -> passages. Each query runs hybrid search (BM25 + dense); the lists are fused
again by RRF, so a weak rephrasing cannot hide what the plain question would have found. Passages
whose meaning is far from every query are dropped: a store always has *some* nearest passage, and a
small generator will happily borrow numbers from an unrelated one."""

from __future__ import annotations

from vlmsearch.records import PassageHit
from vlmsearch.stores import rrf_fuse


class Retriever:
    # No defaults here: the profile's AnswerSettings holds them (k = passages, min_passage_similarity,
    # query_fusion_k), so they are written once.
    def __init__(self, store, text_embedder, k: int, min_similarity: float, fusion_k: int):
        self.store, self.text_embedder, self.k, self.min_similarity, self.fusion_k = store, text_embedder, k, min_similarity, fusion_k

    @property
    def model_name(self) -> str:
        return f"BM25 + {self.text_embedder.name}, RRF"

    def __call__(self, queries: list[tuple[str, float]]) -> list[PassageHit]:
        """Passages for weighted queries [(text, weight)], best first."""
        queries = [(q, w) for q, w in queries if q.strip()]
        if not queries:
            return []
        vectors = self.text_embedder.embed_texts([q for q, _ in queries])
        rankings = [self.store.passages(q, v, 2 * self.k) for (q, _), v in zip(queries, vectors)]
        hits = {h.id: h for ranking in rankings for h in ranking}
        fused = rrf_fuse([[h.id for h in ranking] for ranking in rankings], k=self.fusion_k, weights=[w for _, w in queries])
        fused = [hits[doc_id] for doc_id, _ in fused]
        candidates = fused[: 2 * self.k]
        if not candidates:
            return []
        similarity = (self.text_embedder.embed_texts([h.text for h in candidates]) @ vectors.T).max(axis=1)
        return [h for h, s in zip(candidates, similarity) if s >= self.min_similarity][: self.k]
