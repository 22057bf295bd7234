"""The hand-written evaluation set (eval/natural) rendered into buckets: its data hold together (every
answer in its own document, subjects in one split only, the forms and shares the set promises), the
pictures show what the question points at, and bad sets fail with a clear error."""

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from vlmsearch.errors import BadInputError
from vlmsearch.eval.bucket.canvas import CELL
from vlmsearch.eval.bucket.items import load_bucket
from vlmsearch.eval.bucket.written import build_written, load_written

SET = Path(__file__).resolve().parent.parent / "eval" / "natural"
OPENCLIPART = Path("/usr/share/openclipart/png")


def test_the_set_is_what_it_promises():
    subjects, questions = load_written(SET)
    docs = sorted(p.name for p in (SET / "docs").glob("*.md"))
    assert len(docs) >= 80 and len(questions) >= 240
    assert len({q.form for q in questions}) >= 12
    unanswerable = sum(q.expect is None for q in questions) / len(questions)
    assert 0.15 <= unanswerable <= 0.25
    assert {q.img for q in questions} == {"single", "composite", "sign", "photo"}
    for question in questions:  # each answer is stated by the subject's own document
        if question.expect is not None:
            text = (SET / "docs" / subjects[question.s].doc).read_text()
            assert re.search(question.expect, text, re.IGNORECASE), (question.s, question.q)
    # A subject's document sits beside its sibling's: more documents than subjects asked about.
    asked_docs = {subjects[q.s].doc for q in questions if subjects[q.s].doc}
    assert len(asked_docs) < len(docs)


def test_no_subject_is_in_both_splits():
    subjects, questions = load_written(SET)
    by_split = {split: [s for s in subjects.values() if s.split == split] for split in ("dev", "test")}
    assert Counter(subjects[q.s].split for q in questions)["test"] >= 150
    for field in ("drawing", "doc", "sign", "photo"):
        dev, test = ({getattr(s, field) for s in by_split[split]} - {None} for split in ("dev", "test"))
        assert not dev & test, field


@pytest.mark.skipif(not OPENCLIPART.is_dir(), reason="needs Debian's openclipart-png (make setup installs it)")
def test_built_buckets_load_with_every_picture(tmp_path):
    written = build_written(SET, OPENCLIPART, tmp_path)
    _, questions = load_written(SET)
    test, dev = load_bucket(written["test"]), load_bucket(written["dev"])
    assert len(test.items) + len(dev.items) == len(questions)
    assert not {i.shows[0] for i in test.items if i.type == "single"} & {i.shows[0] for i in dev.items if i.type == "single"}
    for item in test.items:
        image = test.image_path(item)
        assert image.is_file()
        if item.type == "composite":  # the subject among 1-3 others, none of its kind
            assert 2 <= len(item.shows) <= 4
        assert item.form and item.cluster
        assert (item.source is None) == (item.expect is None)
        if item.source:
            assert (test.default_docs / item.source).is_file()
    composite = next(i for i in test.items if i.type == "composite")
    from PIL import Image

    assert Image.open(test.image_path(composite)).width >= 2 * CELL
    # Rebuilt from the same set: the same pictures.
    again = build_written(SET, OPENCLIPART, tmp_path / "again")
    assert (written["test"].parent / "images" / "0002.png").read_bytes() == (again["test"].parent / "images" / "0002.png").read_bytes()


def test_bad_sets_fail_clearly(tmp_path):
    shutil.copytree(SET, tmp_path / "set")
    questions = tmp_path / "set" / "questions.jsonl"
    questions.write_text(questions.read_text() + json.dumps({"s": "unicorn", "img": "single", "form": "diet", "q": "What does it eat?", "expect": "x"}) + "\n")
    with pytest.raises(BadInputError, match="unknown subject 'unicorn'"):
        load_written(tmp_path / "set")
    questions.write_text(json.dumps({"s": "camel", "img": "single", "form": "diet", "q": "What does it eat?", "expect": "grass"}) + "\n")
    with pytest.raises(BadInputError, match="has no document"):
        load_written(tmp_path / "set")
    questions.write_text(json.dumps({"s": "lemon", "img": "single", "form": "diet", "q": "What is it?", "expect": "(unclosed"}) + "\n")
    with pytest.raises(BadInputError, match="not a valid regex"):
        load_written(tmp_path / "set")
    with pytest.raises(BadInputError, match="not a hand-written set"):
        load_written(tmp_path / "nothing")
