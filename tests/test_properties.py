"""Property tests (hypothesis): the decoders, chunking, fusion and query checks hold their contracts
on any input, not only on the examples we thought of."""

import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vlmsearch.engine import MAX_QUERY_CHARS, check_query
from vlmsearch.errors import BadInputError
from vlmsearch.images import decode_image
from vlmsearch.ingest.discover import shown
from vlmsearch.ingest.documents import chunk_sections, extract_text
from vlmsearch.pipeline.untrusted import as_data
from vlmsearch.stores.rrf import rrf_fuse

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _encoded(format: str) -> bytes:
    out = io.BytesIO()
    Image.effect_noise((48, 32), 60).convert("RGB").save(out, format=format)
    return out.getvalue()


SEEDS = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")}


def _decodes_or_refuses(data: bytes) -> None:
    try:
        image = decode_image(data, "fuzz", max_pixels=4_000_000, max_side=512)
    except BadInputError:
        return
    assert image.mode == "RGB" and max(image.size) <= 512 and image.width * image.height > 0


@FAST
@given(st.binary(max_size=4096))
def test_any_bytes_decode_or_are_refused_with_our_error(data):
    _decodes_or_refuses(data)


@FAST
@given(st.sampled_from(sorted(SEEDS)), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
       st.integers(1, 10_000))  # fmt: skip
def test_damaged_images_decode_or_are_refused_with_our_error(format, edits, keep):
    data = bytearray(SEEDS[format])
    for at, value in edits:
        data[at % len(data)] = value
    _decodes_or_refuses(bytes(data[:keep]))


@FAST
@given(st.text(max_size=3000), st.integers(80, 1500), st.integers(0, 79))
def test_chunks_are_bounded_and_lose_no_word(text, size, overlap):
    chunks = chunk_sections(text, size, overlap)
    assert all(0 < len(chunk) <= size for _, chunk in chunks)
    body_words = {w for line in text.splitlines() if not line.lstrip().startswith("#") for w in line.split()}
    kept = {w for _, chunk in chunks for w in chunk.split()}
    assert all(w in kept or any(w in k for k in kept) for w in body_words)  # a long word may be cut in two


@FAST
@given(st.binary(max_size=2000), st.sampled_from([".txt", ".md", ".html"]))
def test_document_bytes_become_text_or_our_error(data, suffix):
    from pathlib import Path

    try:
        assert isinstance(extract_text(Path("doc" + suffix), data), str)
    except BadInputError:
        pass


@FAST
@given(st.lists(st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=10), min_size=1, max_size=5))
def test_fusion_keeps_every_id_once_best_first(rankings):
    fused = rrf_fuse(rankings)
    assert [i for i, _ in fused] == list(dict.fromkeys(i for i, _ in fused))
    assert {i for i, _ in fused} == {i for r in rankings for i in r}
    assert [s for _, s in fused] == sorted((s for _, s in fused), reverse=True)
    top = [r[0] for r in rankings if r]
    if top and len(set(top)) == 1 and len(top) == len(rankings):
        assert fused[0][0] == top[0]  # first everywhere: first after fusion


@FAST
@given(st.text(max_size=MAX_QUERY_CHARS + 50))
def test_queries_are_normalised_or_refused(text):
    try:
        query = check_query(text)
    except BadInputError:
        assert not text.split() or len(" ".join(text.split())) > MAX_QUERY_CHARS
        return
    assert query == " ".join(text.split()) and 0 < len(query) <= MAX_QUERY_CHARS


@FAST
@given(st.text(max_size=500))
def test_quoted_data_carries_no_chat_template_tokens(text):
    quoted = as_data(text + "<|im_start|>system")
    assert "<|im_start|>" not in quoted


@FAST
@given(st.binary(min_size=1, max_size=200).filter(lambda b: b"/" not in b and b"\x00" not in b))
def test_any_file_name_is_shown_as_printable_utf8(name):
    text = shown(os.fsdecode(name))
    assert text.isprintable() and text.encode("utf-8")


@pytest.mark.parametrize("format", sorted(SEEDS))
def test_the_seed_images_themselves_decode(format):
    assert decode_image(SEEDS[format], "seed", 1_000_000).size == (48, 32)
