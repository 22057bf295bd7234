"""What people build on a VLM besides answers: typed fields off an image (extract), its text in
reading order (ocr), and the objects in it with their boxes (detect)."""

from vlmsearch.extract.detect import Detection, Detector
from vlmsearch.extract.extractor import Extraction, Extractor
from vlmsearch.extract.reading import Page, reading_order
from vlmsearch.extract.schema import ExtractSchema, from_fields, from_json_schema, load_schema

__all__ = [
    "Detection", "Detector", "ExtractSchema", "Extraction", "Extractor", "Page",
    "from_fields", "from_json_schema", "load_schema", "reading_order",
]  # fmt: skip
