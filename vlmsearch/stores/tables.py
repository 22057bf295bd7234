"""The tables every store holds, and which of their columns are matched by keywords or hold vectors."""

IMAGES, PASSAGES, TOPICS = "images", "passages", "topics"
KEYWORD_COLUMN = {IMAGES: "description", PASSAGES: "text", TOPICS: "topic"}  # what BM25 matches
VECTOR_COLUMNS = {IMAGES: ("features", "text_vector", "joint"), PASSAGES: ("vector",), TOPICS: ("joint",)}
