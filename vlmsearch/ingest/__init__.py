"""Turning folders of images and documents into store records."""

from vlmsearch.ingest.indexer import Indexer
from vlmsearch.ingest.report import Failure, IngestReport

__all__ = ["Failure", "IngestReport", "Indexer"]
