"""Evaluation: retrieval metrics on any data (side-by-side judging comes later)."""
