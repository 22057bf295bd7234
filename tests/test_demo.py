"""`vlmsearch demo` end to end, offline: builds the collection, indexes, searches, writes the report."""

import re

import pytest
from conftest import run_cli


@pytest.mark.slow  # ~130 s on CI's 2 cores; every stage it runs is tested on its own in the default run, and `make demo` is this command
def test_demo_writes_a_report_with_real_results(tmp_path):
    out = tmp_path / "demo"
    result = run_cli("--store", str(tmp_path / "store"), "demo", "--out", str(out), "--images", "8", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "text -> images 'rocket': rocket.png" in result.stdout
    assert "text -> passages 'what is espresso made of'" in result.stdout and "espresso" in result.stdout.split("espresso made of")[1][:300]
    # Both pipelines answer: the offline profile's VLM (ours) rephrases and captions in the vlm one.
    assert "ask (llm) chelsea.png 'what kind of animal is this?'" in result.stdout
    assert "ask (vlm) chelsea.png 'what kind of animal is this?'" in result.stdout
    assert result.stdout.count("caption ") >= 6
    html = (out / "report.html").read_text()
    assert "Answers (llm and vlm pipeline)" in html and "visual_search" in html and "vlm-clipart-mlp" in html
    assert "Captions by the profile" in html
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) > 20 and all((out / s).is_file() for s in sources)  # every picture resolves
    assert len(list((out / "collection" / "clipart").glob("*.png"))) == 8
    assert len(list((out / "collection" / "docs").glob("*.md"))) == 20
