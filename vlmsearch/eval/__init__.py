"""Evaluation: retrieval metrics, answer buckets, reference scoring and side-by-side judging."""
