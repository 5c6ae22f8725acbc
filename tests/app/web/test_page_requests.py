"""The page keeps what it shows tied to the last thing the user did, works on a phone's width, and shows
DICOM uploads through the server's preview."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect, sync_playwright

from tests.app.inputs.corpus import dicom
from tests.app.live_server import ZOO_LABELS, Server
from tests.app.web.conftest import CHROMIUM_ARGS

pytestmark = pytest.mark.integration


def _wait_until(page: Page, condition, what: str, timeout: float = 30.0) -> None:
    """Let the page run (and Playwright dispatch its events) until `condition()` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        page.wait_for_timeout(25)


def test_two_uploads_in_quick_succession_show_the_second(
    web_server: Server, chromium_path: Path, data_dir: Path
) -> None:
    """The first upload's /predict is held until the second one's bars are drawn, then let through: the
    page keeps the second image's bars, size and caption."""
    first = data_dir / "samples" / "person1951_bacteria_4882.jpeg"
    second = data_dir / "samples" / "nih_cxr_1024.png"
    with Image.open(first) as im:
        first_size = f"{im.width}×{im.height}"
    held: list[Route] = []
    ended: list = []

    def hold_the_first(route: Route) -> None:
        if not held:
            held.append(route)  # answered below, once the second upload's answer is on the page
        else:
            route.continue_()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.route(lambda url: urlsplit(url).path == "/predict", hold_the_first)
        page.on("requestfinished", lambda request: ended.append(request))
        page.on("requestfailed", lambda request: ended.append(request))
        page.goto(web_server.url)
        expect(page.locator("#models li")).to_contain_text("chest")

        page.set_input_files("#file", str(first))
        _wait_until(page, lambda: bool(held), "the first /predict to be sent")
        page.set_input_files("#file", str(second))
        expect(page.locator("#model-used")).to_contain_text("1024×1024")
        expect(page.locator("#bars .bar")).to_have_count(len(ZOO_LABELS))

        late = held[0]
        try:
            late.continue_()  # the page aborted it when the second upload began: continuing may fail
        except PlaywrightError:
            pass
        _wait_until(page, lambda: any(r is late.request for r in ended), "the first /predict to end")
        page.wait_for_function("() => document.querySelectorAll('#bars .bar').length > 0")
        expect(page.locator("#model-used")).to_contain_text("1024×1024")
        expect(page.locator("#model-used")).not_to_contain_text(first_size)
        expect(page.locator("#caption")).to_have_text("nih_cxr_1024.png")
        assert "Done" in page.locator("#status").inner_text()
        browser.close()


def test_a_rejected_file_clears_the_previous_result(web_server: Server, chromium_path: Path, data_dir: Path,
                                                     tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # a PNG signature and nothing readable after it
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(web_server.url)
        page.set_input_files("#file", str(data_dir / "samples" / "nih_cxr_1024.png"))
        expect(page.locator("#model-used")).to_contain_text("1024×1024")
        page.set_input_files("#file", str(bad))
        expect(page.locator("#status")).to_have_class("error")
        expect(page.locator("#bars .bar")).to_have_count(0)
        expect(page.locator("#model-used")).to_have_text("")
        browser.close()


def test_bars_and_percentages_are_visible_at_360_px(
    web_server: Server, chromium_path: Path, data_dir: Path, artifacts: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.goto(web_server.url)
        page.set_input_files("#file", str(data_dir / "samples" / "nih_cxr_1024.png"))
        bars = page.locator("#bars .bar")
        expect(bars).to_have_count(len(ZOO_LABELS))
        boxes = bars.evaluate_all("""els => els.map(bar => {
            const box = (sel) => bar.querySelector(sel).getBoundingClientRect();
            return {name: box('.name'), track: box('.track'), value: box('.value'),
                    text: bar.querySelector('.value').textContent};
        })""")
        for b in boxes:
            assert b["track"]["width"] >= 40, b  # the bar itself is drawn
            assert b["value"]["width"] > 0 and b["value"]["right"] <= 360, b  # the percentage is on screen
            assert b["name"]["width"] > 30, b
            assert b["text"].endswith("%")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scrolling
        page.screenshot(path=str(artifacts / "page-360px.png"), full_page=True)
        browser.close()


def test_a_dicom_upload_is_previewed_by_the_server(
    web_server: Server, chromium_path: Path, tmp_path: Path
) -> None:
    rows, cols = 300, 200
    pixels = (np.add.outer(np.arange(rows), np.arange(cols)) * 8 % 4096).astype(np.uint16)
    path = tmp_path / "study.dcm"
    path.write_bytes(dicom(pixels, bits=12))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(web_server.url)
        page.set_input_files("#file", str(path))
        expect(page.locator("#caption")).to_contain_text("preview rendered by the server")
        expect(page.locator("#caption")).to_contain_text(f"{cols}×{rows}")
        preview = page.locator("#preview")
        expect(preview).to_be_visible()
        assert preview.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [cols, rows]
        expect(page.locator("#model-used")).to_contain_text(f"{cols}×{rows}")
        browser.close()


def test_a_model_switch_drops_the_overlay_of_the_previous_answer(
    web_server: Server, chromium_path: Path, data_dir: Path
) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(web_server.url)
        expect(page.locator('#model option[value="chest:1"]')).to_have_count(1)
        page.set_input_files("#file", str(data_dir / "samples" / "nih_cxr_1024.png"))
        expect(page.locator("#model-used")).to_contain_text("@production")
        page.locator("#bars .bar").first.click()
        expect(page.locator("#overlay")).to_be_visible(timeout=30_000)
        page.select_option("#model", "chest:1")  # the same weights by version: a new answer all the same
        expect(page.locator("#overlay")).to_be_hidden()
        expect(page.locator("#overlay-controls")).to_be_hidden()
        expect(page.locator("#caption")).to_have_text("nih_cxr_1024.png")
        expect(page.locator("#model-used")).not_to_contain_text("@production")
        expect(page.locator("#model-used")).to_contain_text("chest:1")
        expect(page.locator("#bars .bar[aria-pressed=true]")).to_have_count(0)
        browser.close()
