"""The human judging page in a real browser: Debian's Chromium driven by Playwright, against the
real `vlmsearch eval judge` server on localhost."""

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest
from conftest import free_port, text_image, wait_for_server

from vlmsearch.eval.judge_app import _Pairs
from vlmsearch.eval.judges import CRITERIA

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
PAIRS = [
    {"item": "t-1", "question": "What is this bird a type of?", "a": "A penguin is a seabird [1].", "b": "It is a bird."},
    {"item": "t-2", "question": "How much does this cost?", "a": "It costs 5 euros.", "b": "The documents do not say."},
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Debian's chromium is needed for the browser tests: apt-get install chromium (make setup does it)")
    return path


@pytest.fixture(scope="module")
def sbs_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sbs")
    lines = []
    for pair in PAIRS:
        image = folder / f"{pair['item']}.png"
        text_image(pair["item"].upper()).save(image)
        lines.append(json.dumps({
            "item": pair["item"], "question": pair["question"], "image": str(image), "key": f"key-{pair['item']}",
            "a": {"pipeline": "vlm", "answer": pair["a"], "citations": [{"n": 1, "source": "penguin.md", "text": ""}]},
            "b": {"pipeline": "llm", "answer": pair["b"], "citations": []},
        }))  # fmt: skip
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def server(sbs_folder, tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("judge-server") / "server.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmsearch.cli", "eval", "judge", "--sbs", str(sbs_folder), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    wait_for_server(process, url, log_path, seconds=60)
    yield url
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_a_person_judges_every_pair_with_keys_and_clicks_and_resumes(server, sbs_folder):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 420, "height": 900})  # a phone-sized screen
        page.goto(server)
        page.fill("#judge", "ann")
        page.click("#who button")
        expect(page.locator("#question")).to_have_text(PAIRS[0]["question"])
        expect(page.locator("#progress")).to_have_text("0 of 2 judged")
        # The picture loads after the text: wait for it (up to 10 s) rather than race it.
        page.wait_for_function("document.querySelector('#picture img')?.complete && document.querySelector('#picture img').naturalWidth > 0", timeout=10_000)
        answers = {page.text_content("#left").split("\n")[0], page.text_content("#right").split("\n")[0]}
        assert answers == {PAIRS[0]["a"], PAIRS[0]["b"]}  # both answers, sides hidden
        expect(page.locator("#submit")).to_be_disabled()
        for _ in CRITERIA:  # keyboard: left is better on every criterion
            page.keyboard.press("a")
        expect(page.locator("#submit")).to_be_enabled()
        page.keyboard.press("Enter")
        expect(page.locator("#question")).to_have_text(PAIRS[1]["question"])
        expect(page.locator("#progress")).to_have_text("1 of 2 judged")

        page.reload()  # the judge comes back: the name is remembered, the page resumes at pair 2
        expect(page.locator("#question")).to_have_text(PAIRS[1]["question"])
        for criterion in CRITERIA:  # mouse: a tie everywhere but overall, where the right answer wins
            choice = "right" if criterion == "overall" else "tie"
            page.click(f"tr[data-criterion='{criterion}'] button[data-choice='{choice}']")
        page.click("#submit")
        expect(page.locator("#done")).to_be_visible()
        browser.close()

    saved = [json.loads(line) for line in (sbs_folder / "human" / "ann.jsonl").read_text().splitlines()]
    assert [s["item"] for s in saved] == ["t-1", "t-2"] and all(s["judge"] == "ann" for s in saved)
    first_left = "a" if _Pairs.left_is_a("ann", "t-1") else "b"
    assert saved[0]["verdicts"] == {c: first_left for c in CRITERIA}  # "left" mapped back to the system shown there
    second_right = "b" if _Pairs.left_is_a("ann", "t-2") else "a"
    assert saved[1]["verdicts"] == {**{c: "tie" for c in CRITERIA}, "overall": second_right}
    assert saved[0]["key"] == "key-t-1"


def test_the_api_refuses_bad_verdicts(server):
    bad_name = httpx.get(f"{server}api/next", params={"judge": "../etc"})
    assert bad_name.status_code == 422
    partial = httpx.post(f"{server}api/verdicts", json={"judge": "bob", "item": "t-1", "verdicts": {"overall": "left"}})
    assert partial.status_code == 422 and "each of" in partial.json()["detail"]
    unknown = httpx.post(f"{server}api/verdicts", json={"judge": "bob", "item": "zzz", "verdicts": {c: "tie" for c in CRITERIA}})
    assert unknown.status_code == 404
    assert httpx.get(f"{server}api/image/zzz").status_code == 404
    assert httpx.get(f"{server}api/image/t-1").headers["content-type"] == "image/png"
