"""README's tour runs as written: every block marked `<!-- runnable -->` is run in order, in a fresh folder
holding what `make demo` leaves there (the sample collection, a smaller slice of its drawings) and the
project's .venv, as a new user would type it. A block marked `<!-- runnable: background URL -->` is started,
waited for at URL and left running for the blocks after it (the server for the OpenAI client)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import wait_for_server

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- runnable(?::\s*background\s+(?P<ready>\S+))?\s*-->\n```(?P<lang>bash|python)\n(?P<code>.*?)\n```", re.S)


def runnable_blocks(markdown: str) -> list[dict]:
    return [match.groupdict() for match in BLOCK.finditer(markdown)]


def test_readme_marks_its_tour_runnable():
    blocks = runnable_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    kinds = [(b["lang"], b["ready"] is not None) for b in blocks]
    assert ("bash", False) in kinds and ("bash", True) in kinds and ("python", False) in kinds, kinds
    tour = "\n".join(b["code"] for b in blocks)
    for command in ("vlmsearch index", "vlmsearch search", "vlmsearch ask --image", "serve", "OpenAI(", "Engine.from_config"):
        assert command in tour, command


@pytest.fixture()
def demo_folder(tmp_path: Path) -> Path:
    """A folder as `make demo` leaves it: out/demo/collection, and .venv beside it."""
    from vlmsearch.demo import collection
    from vlmsearch.knowledge.wordnet import WordNet

    base = tmp_path / "out" / "demo" / "collection"
    collection.photos(base / "photos")
    collection.clipart(base / "clipart", 6)
    collection.wordnet_documents(base / "docs", WordNet())
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    return tmp_path


@pytest.mark.slow  # ~135 s on 2 cores (seven model loads, an index of 1,000 passages): `make test-slow`
def test_readme_tour_runs_as_written(demo_folder: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMSEARCH_")} | {"HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    python = str(demo_folder / ".venv" / "bin" / "python")
    background, outputs = [], []
    try:
        for block in runnable_blocks((ROOT / "README.md").read_text(encoding="utf-8")):
            command = ["bash", "-euo", "pipefail", "-c", block["code"]] if block["lang"] == "bash" else [python, "-c", block["code"]]
            if block["ready"]:
                log_path = demo_folder / f"background-{len(background)}.log"
                log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
                background.append((subprocess.Popen(command, cwd=demo_folder, env=env, stdout=log, stderr=subprocess.STDOUT), log))
                wait_for_server(background[-1][0], block["ready"], log_path, seconds=180)
                continue
            result = subprocess.run(command, cwd=demo_folder, env=env, capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, f"README block failed:\n{block['code']}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            outputs.append(result.stdout)
    finally:
        for process, log in background:
            process.terminate()
            process.wait(timeout=30)
            log.close()
    shell, client, python_api = outputs
    assert re.search(r"added \d+, .* failed 0", shell) and "Egyptian cat 0." in shell and "espresso maker" in shell  # index, searches
    assert "Egyptian cat [1]" in shell and "Sources" in shell  # the tour's ask, with its source listed
    assert "Region-based segmentation" in shell  # ocr of the page photo
    assert client.count("[1]") >= 2 and "cat" in client.lower()  # both turns answered, each with its source
    assert "cat" in python_api.lower() and "Citation(" in python_api
