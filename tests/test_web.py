"""The web page in a real browser (Debian's Chromium through Playwright) against the real server:
ask with an image and watch the answer stream in, open a citation and the trace, search by text and
by image, compare two pipelines, index an upload."""

import io
import os
from pathlib import Path

import pytest
from conftest import skimage_photo
from test_judge_page import CHROMIUM_ARGS, chromium

# Where the page's screenshots go: the docs' pictures are made here (VLMSEARCH_SCREENSHOTS=docs/images).
SCREENSHOTS = Path(os.environ.get("VLMSEARCH_SCREENSHOTS", "out/screenshots"))
SCREENSHOTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # an answer on 2 busy cores takes seconds, not expect's default 5
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(server + "/")
        yield page
        browser.close()


def png(name: str) -> dict:
    buffer = io.BytesIO()
    skimage_photo(name).save(buffer, format="PNG")
    return {"name": f"{name}.png", "mimeType": "image/png", "buffer": buffer.getvalue()}


def test_ask_with_an_image_streams_an_answer_with_citations_and_a_trace(page):
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_contain_text("images")
    expect(page.locator("#ask-pipeline option")).to_have_count(3)  # llm, llm-plain, vlm
    page.select_option("#ask-pipeline", "llm")
    page.set_input_files("#ask-image", png("chelsea"))
    expect(page.locator("#ask-preview")).to_be_visible()
    page.fill("#ask-question", "how long do animals like this live?")
    page.click("#ask-submit")
    turn = page.locator("#ask-thread .turn").last
    expect(turn.locator(".answer")).to_contain_text("12 to 18")
    expect(turn.locator(".stage")).to_have_count(4)  # one chip per finished stage
    turn.locator(".cite").first.click()
    source = turn.locator(".sources li").first
    expect(source).to_have_class("open")
    expect(source.locator(".text")).to_contain_text("Domestic cats")
    turn.locator("summary").first.click()
    expect(turn.locator(".trace details")).to_have_count(4)
    expect(turn.locator(".trace summary").first).to_contain_text("visual_search")
    expect(turn.locator(".visual .chip").first).to_contain_text("cat")


def test_the_ask_tab_holds_a_conversation_that_survives_a_reload(page):
    from playwright.sync_api import expect

    page.click("#ask-new")
    expect(page.locator("#ask-thread .turn")).to_have_count(0)
    page.select_option("#ask-pipeline", "llm")
    page.set_input_files("#ask-image", png("chelsea"))
    page.fill("#ask-question", "what kind of animal is this?")
    page.click("#ask-submit")
    turns = page.locator("#ask-thread .turn")
    expect(turns.nth(0).locator(".answer")).to_contain_text("cat")
    expect(page.locator("#ask-submit")).to_be_enabled()
    expect(page.locator("#ask-preview")).to_be_visible()  # the image stays pinned for the follow-up
    page.fill("#ask-question", "how long do they usually live?")
    page.click("#ask-submit")
    expect(turns).to_have_count(2)
    expect(turns.nth(1).locator(".answer")).to_contain_text("12 to 18")
    expect(turns.nth(1).locator(".trace summary").first).to_contain_text("conversation")
    expect(turns.nth(1).locator(".question img")).to_have_count(0)  # the picture went once, with turn one
    # the thread is stored once the answer event has been read, a moment after its words show
    page.wait_for_function("JSON.parse(localStorage.getItem('vlmsearch-thread') || '[]').length === 2")
    page.reload()
    expect(page.locator("#ask-thread .turn")).to_have_count(2)
    expect(page.locator("#ask-thread .turn").nth(1).locator(".answer")).to_contain_text("12 to 18")
    expect(page.locator("#ask-preview")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "page-thread.png"), full_page=True)
    page.click("#ask-new")
    expect(page.locator("#ask-thread .turn")).to_have_count(0)
    assert page.evaluate("localStorage.getItem('vlmsearch-thread')") is None


def test_objects_are_boxed_on_the_image(page):
    from playwright.sync_api import expect

    page.click("#ask-new")
    page.set_input_files("#ask-image", png("chelsea"))
    page.click("#ask-objects")
    figure = page.locator("#ask-thread .objects")
    expect(figure.locator("svg rect").first).to_be_attached()
    expect(figure.locator("figcaption")).to_contain_text("cat")
    assert figure.locator("svg").get_attribute("viewBox") == "0 0 451 300"  # the image's pixels: boxes scale with it
    assert figure.locator("svg rect").count() == figure.locator("svg text").count() >= 1
    page.fill("#ask-labels", "cat, dog, car")
    page.click("#ask-objects")
    expect(page.locator("#ask-thread .objects")).to_have_count(2)
    expect(page.locator("#ask-thread .objects").nth(1).locator("svg text").first).to_contain_text("cat")
    page.screenshot(path=str(SCREENSHOTS / "page-objects.png"), full_page=True)
    page.fill("#ask-labels", "")
    page.click("#ask-new")


def test_search_by_text_then_by_clicking_an_image(page):
    from playwright.sync_api import expect

    page.click("nav [data-tab=search]")
    page.fill("#search-text", "cup of coffee")
    page.click("#search-form button")
    first = page.locator("#search-results figure").first
    expect(first.locator("figcaption")).to_be_visible()
    expect(first.locator("img")).to_have_attribute("src", __import__("re").compile("^blob:"))
    page.wait_for_function("document.querySelector('#search-results img').naturalWidth > 0")  # the thumbnail decoded
    first.click()  # search by this image
    expect(page.locator("#search-note")).to_contain_text("images like")
    expect(page.locator("#search-results figure")).not_to_have_count(0)
    page.select_option("#search-kind", "passages")
    page.fill("#search-text", "espresso")
    page.click("#search-form button")
    expect(page.locator("#search-results .passage").first).to_contain_text("Espresso")


def test_compare_answers_every_pipeline_side_by_side(page):
    from playwright.sync_api import expect

    page.click("nav [data-tab=compare]")
    page.fill("#compare-question", "what is espresso made of?")
    page.click("#compare-submit")
    columns = page.locator("#compare-results > div")
    # Every pipeline the profile serves: the two designs and the llm pipeline with the plain generator.
    expect(columns).to_have_count(3)
    for i, name in enumerate(("llm", "llm-plain", "vlm")):
        expect(columns.nth(i).locator("h2")).to_have_text(name)
    for i in range(3):
        expect(columns.nth(i).locator(".answer")).not_to_be_empty(timeout=240_000)
    for i in (0, 2):
        expect(columns.nth(i).locator(".answer")).to_contain_text("[", timeout=240_000)
    expect(page.locator("#compare-submit")).to_be_enabled(timeout=240_000)
    # The same follow-up to all, each pipeline continuing its own answer.
    page.fill("#compare-question", "how is it made?")
    page.click("#compare-submit")
    for i in range(3):
        expect(columns.nth(i).locator(".turn")).to_have_count(2)
    for i in (0, 2):
        expect(columns.nth(i).locator(".turn").nth(1).locator(".answer")).to_contain_text("pressure", timeout=240_000)
    expect(page.locator("#compare-submit")).to_be_enabled(timeout=240_000)


def test_index_an_upload_and_see_the_report(page):
    from playwright.sync_api import expect

    page.click("nav [data-tab=index]")
    note = {"name": "kiwis.md", "mimeType": "text/markdown", "buffer": b"# Kiwis\nThe kiwi is a flightless bird of New Zealand."}
    page.set_input_files("#index-files", [note, png("astronaut")])
    expect(page.locator("#index-drop-text")).to_have_text("2 files chosen")
    page.click("#index-upload")
    expect(page.locator("#index-state")).to_contain_text("done: 2 added")
    assert page.evaluate("document.querySelector('#index-progress').value") == 2
