"""Evaluation buckets: questions about images whose answers are in known documents."""
