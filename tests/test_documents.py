import re

import pytest

from benchmarks.fuzz import text_pdf
from vlmsearch.errors import BadInputError
from vlmsearch.ingest.documents import chunk_text, extract_text


def test_pdf_text(tmp_path):  # text_pdf: a real PDF written by hand (no PDF writer is installed)
    assert "Cats sleep a lot" in extract_text(tmp_path / "a.pdf", text_pdf("Cats sleep a lot"))


def test_broken_pdf(tmp_path):
    with pytest.raises(BadInputError, match="broken PDF"):
        extract_text(tmp_path / "a.pdf", b"%PDF-1.4\n this is not really a pdf")


def test_html_keeps_text_and_drops_scripts(tmp_path):
    html = b"<html><head><style>p{}</style><script>steal()</script></head><body><p>Cats purr.</p></body></html>"
    text = extract_text(tmp_path / "a.html", html)
    assert "Cats purr." in text and "steal" not in text and "p{}" not in text


def test_binary_content_in_a_text_file(tmp_path):
    with pytest.raises(BadInputError, match="binary content"):
        extract_text(tmp_path / "a.txt", b"\x89PNG\r\n\x1a\n\x00\x00")


def test_chunks_cover_everything_within_size_and_overlap():
    sentences = [f"Sentence number {i} says something about topic {i % 7}." for i in range(120)]
    chunks = chunk_text(" ".join(sentences), size=300, overlap=80)
    assert len(chunks) > 10
    assert all(len(c) <= 300 for c in chunks)
    joined = " ".join(chunks)
    assert all(s in joined for s in sentences)  # nothing lost
    for first, second in zip(chunks, chunks[1:]):  # neighbours share their boundary sentence
        last_sentence = re.findall(r"Sentence number \d+ [^.]*\.", first)[-1]
        assert last_sentence in second


def test_a_sentence_longer_than_a_chunk_is_split():
    chunks = chunk_text("word " * 500, size=200, overlap=20)
    assert all(len(c) <= 200 for c in chunks) and sum(c.count("word") for c in chunks) >= 500


def test_overlap_must_be_smaller_than_size():
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("text", size=100, overlap=100)


def test_headings_are_boundaries_and_travel_with_their_text():
    text = "Intro line.\n\n# Minivan\nA minivan has sliding doors.\n\n## missile\nA missile carries a warhead.\n"
    assert chunk_text(text, size=300, overlap=50) == ["Intro line.", "Minivan: A minivan has sliding doors.", "missile: A missile carries a warhead."]
    long_section = "# Cats\n" + " ".join(f"Cat fact number {i}." for i in range(40))
    chunks = chunk_text(long_section, size=200, overlap=40)
    assert len(chunks) > 3 and all(c.startswith("Cats: ") and len(c) <= 200 for c in chunks)


def test_html_headings_become_sections(tmp_path):
    html = b"<html><body><h2>Espresso</h2><p>Brewed under pressure.</p><h2>Crema</h2><p>The foam on top.</p></body></html>"
    assert chunk_text(extract_text(tmp_path / "a.html", html)) == ["Espresso: Brewed under pressure.", "Crema: The foam on top."]
