"""Turning folders of images and documents into store records."""

from vlmsearch.ingest.indexer import Failure, IngestReport, Indexer

__all__ = ["Failure", "IngestReport", "Indexer"]
