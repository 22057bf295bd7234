"""Screenshots of the web page for README, taken by Debian's Chromium against a running server:

    vlmsearch serve --store out/demo-store &
    python scripts/screenshot_page.py http://127.0.0.1:8000 IMAGE "QUESTION" --out docs/images/

Writes page-ask.png (desktop, after the answer has streamed in, trace open) and page-phone.png."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"]


def main(
    url: str,
    image: Path,
    question: str,
    out: Annotated[Path, typer.Option()] = Path("docs"),
    chromium: Annotated[str, typer.Option()] = "/usr/bin/chromium",
) -> None:
    from playwright.sync_api import expect, sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=180_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        for name, viewport in (("page-ask.png", {"width": 1100, "height": 900}), ("page-phone.png", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport, device_scale_factor=1)
            page.goto(url + "/")
            page.set_input_files("#ask-image", str(image))
            page.fill("#ask-question", question)
            page.click("#ask-submit")
            expect(page.locator("#ask-submit")).to_be_enabled()
            expect(page.locator("#ask-result .answer")).not_to_be_empty()
            if page.locator("#ask-result .cite").count():
                page.locator("#ask-result .cite").first.click()
            page.screenshot(path=str(out / name), full_page=name == "page-ask.png")
            print(out / name)
        browser.close()


if __name__ == "__main__":
    typer.run(main)
