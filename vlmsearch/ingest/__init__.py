"""Turning folders of images and documents into store records."""

from vlmsearch.ingest.indexer import Failure, Indexer, IngestReport

__all__ = ["Failure", "IngestReport", "Indexer"]
