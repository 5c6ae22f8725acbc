"""The page shows each finding in words and the warnings (issue 17), in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from tests.app.live_server import ZOO_LABELS, Registry, Server, start_server, stop_server, zoo_checkpoint
from tests.app.web.conftest import CHROMIUM_ARGS

pytestmark = pytest.mark.integration


def test_findings_read_in_words_and_warnings_are_shown(
    web_server: Server, chromium_path: Path, artifacts: Path, data_dir: Path, tmp_path: Path
) -> None:
    xray = data_dir / "samples" / "nih_cxr_1024.png"
    inverted = tmp_path / "inverted.png"
    Image.fromarray(255 - np.asarray(Image.open(xray).convert("L"))).save(inverted)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(web_server.url)

        page.set_input_files("#file", str(xray))
        rows = page.locator("#findings tr[data-label]")
        expect(rows).to_have_count(len(ZOO_LABELS))
        decisions = rows.locator("td:nth-child(4)").all_inner_texts()
        assert all(d.startswith(("positive (", "negative (")) for d in decisions), decisions
        expect(page.locator("#reading")).to_contain_text("Input check: looks like a chest X-ray")
        expect(page.locator("#reading")).to_contain_text("The model sees")
        expect(page.locator("#reading")).not_to_contain_text("views")  # this model answers on the image alone
        # the test model has no recorded test AUROC: every finding is marked unreliable, in words
        warnings = page.locator("#warnings li")
        expect(warnings).to_have_count(len(ZOO_LABELS))
        expect(warnings.first).to_contain_text("unreliable for this finding")
        expect(rows.first.locator("td:nth-child(5)")).to_contain_text("unknown (unreliable for this finding)")

        page.set_input_files("#file", str(inverted))
        expect(page.locator("#warnings li").first).to_contain_text("may not be a chest X-ray")
        expect(page.locator("#warnings li").first).to_contain_text("inverted")
        expect(page.locator("#reading .flagged")).to_contain_text("FLAGGED")
        assert page.locator("#warnings").get_attribute("role") == "alert"
        page.screenshot(path=str(artifacts / "page-reading-flagged.png"), full_page=True)
        browser.close()
    assert not errors, errors


def test_a_model_answering_over_several_views_says_so(
    chromium_path: Path, data_dir: Path, tmp_path: Path
) -> None:
    from ml.checkpoint import load_checkpoint, save_checkpoint

    registry = Registry.create(tmp_path)
    ckpt = load_checkpoint(zoo_checkpoint("simple_cnn", tmp_path))
    ckpt["tta"] = "crops"
    registry.publish(save_checkpoint(ckpt, tmp_path / "crops.pt"), "chest-crops")
    server = start_server(registry, tmp_path / "server.log", default_model="chest-crops")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(server.url)
            page.set_input_files("#file", str(data_dir / "samples" / "nih_cxr_1024.png"))
            expect(page.locator("#reading")).to_contain_text(
                "Each probability averages six views: the whole image and five crops of 90% of its side.")
            browser.close()
    finally:
        stop_server(server)
        registry.db.dispose()
