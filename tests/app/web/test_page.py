"""The web page in headless Chromium: upload an X-ray, see a bar per label, click one, see its overlay."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.app.live_server import ZOO_LABELS, Server
from tests.app.web.conftest import CHROMIUM_ARGS

pytestmark = pytest.mark.integration


def test_upload_shows_bars_and_a_click_shows_the_overlay(
    web_server: Server, chromium_path: Path, artifacts: Path, data_dir: Path
) -> None:
    samples_dir = data_dir / "samples"
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(web_server.url)

        # the side panel: the registry's model, and no training jobs yet
        expect(page.locator("#models li")).to_contain_text("chest")
        expect(page.locator("#jobs")).to_contain_text("no training jobs")
        expect(page.locator("#samples button")).to_have_count(3)

        page.set_input_files("#file", str(samples_dir / "person1951_bacteria_4882.jpeg"))
        bars = page.locator("#bars .bar")
        expect(bars).to_have_count(len(ZOO_LABELS))
        assert set(bars.evaluate_all("els => els.map(e => e.dataset.label)")) == set(ZOO_LABELS)
        widths = bars.locator(".fill").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
        assert all(w > 0 for w in widths)  # every probability drawn
        expect(page.locator("#model-used")).to_contain_text("chest:1")

        bars.filter(has_text="Effusion").click()
        overlay = page.locator("#overlay")
        expect(overlay).to_be_visible(timeout=30_000)
        expect(page.locator("#caption")).to_contain_text("gradcam for Effusion")
        natural = overlay.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        # the overlay lies exactly over the upload, with its colour scale, opacity and a way back
        preview_box, overlay_box = page.locator("#preview").bounding_box(), overlay.bounding_box()
        assert preview_box and overlay_box
        assert all(abs(preview_box[k] - overlay_box[k]) < 1.5 for k in ("x", "y", "width", "height"))
        expect(page.locator("#overlay-controls .legend .scale")).to_be_visible()
        page.locator("#opacity").fill("40")
        assert overlay.evaluate("img => getComputedStyle(img).opacity") == "0.4"
        page.locator("#show-original").check()
        expect(overlay).to_be_hidden()
        expect(page.locator("#preview")).to_be_visible()
        page.locator("#show-original").uncheck()
        expect(overlay).to_be_visible()
        page.screenshot(path=str(artifacts / "page-upload-overlay.png"), full_page=True)

        # a bundled sample goes through the same path, and the old overlay and caption go with the old image
        page.locator("#samples button", has_text="nih_cxr_1024.png").click()
        expect(page.locator("#model-used")).to_contain_text("1024×1024")
        expect(overlay).to_be_hidden()
        expect(page.locator("#overlay-controls")).to_be_hidden()
        expect(page.locator("#caption")).to_have_text("nih_cxr_1024.png")
        browser.close()

    from PIL import Image

    with Image.open(samples_dir / "person1951_bacteria_4882.jpeg") as im:
        assert natural == list(im.size)  # the overlay is at the upload's own size
    assert not errors, errors


JOBS = {
    "items": [
        {
            "id": 7,
            "status": "running",
            "model": "densenet121",
            "dataset": "nih-sample",
            "device": "cpu",
            "progress": {"phase": "training", "epoch": 2, "epochs": 5, "step": 10, "steps": 40, "fraction": 0.45,
                         "elapsed_s": 300.0, "eta_s": 420.0},
            "heartbeat_at": "2026-01-05T10:01:35Z", "lease_expires_at": "2026-01-05T10:03:35Z", "stalled": True,
            "stop_reason": None,
        },
        {
            "id": 6,
            "status": "succeeded",
            "model": "simple_cnn",
            "dataset": "pneumoniamnist",
            "device": "cuda:0",
            "progress": {"phase": None, "epoch": 3, "epochs": 3, "step": 40, "steps": 40, "fraction": 1.0,
                         "elapsed_s": 75.0, "eta_s": None},
            "heartbeat_at": "2026-01-05T09:01:35Z", "lease_expires_at": None, "stalled": False, "stop_reason": None,
        },
        {
            "id": 5, "status": "cancelled", "model": "simple_cnn", "dataset": "pneumoniamnist", "device": "cpu",
            "progress": {"phase": None, "epoch": 1, "epochs": 3, "step": 0, "steps": 40, "fraction": 0.32,
                         "elapsed_s": 40.0, "eta_s": None},
            "heartbeat_at": None, "lease_expires_at": None, "stalled": False,
            "stop_reason": "cancelled on request after 1 of 3 epochs",
        },
    ],
    "total": 3,
    "limit": 10,
    "offset": 0,
}


def test_training_jobs_show_their_progress(web_server: Server, chromium_path: Path) -> None:
    """`GET /training-jobs` belongs to the training service, absent from this server: the browser answers it
    with the list shape that service documents, to check the page draws it."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/training-jobs?*", lambda route: route.fulfill(json=JOBS))
        page.goto(web_server.url)
        running = page.locator('#jobs li[data-job="7"]')
        expect(running).to_contain_text("densenet121")
        expect(running).to_contain_text("running")
        expect(running).to_contain_text("training · epoch 2/5, step 10/40 · 5 min 0 s elapsed · about 7 min 0 s left")
        expect(running).to_contain_text("worker seen")
        expect(running.locator(".badge.stalled")).to_have_text("stalled")
        bar = running.locator(".progress div")
        fraction = bar.evaluate(
            "el => el.getBoundingClientRect().width / el.parentElement.getBoundingClientRect().width"
        )
        assert abs(fraction - 0.45) < 0.02
        done = page.locator('#jobs li[data-job="6"]')
        expect(done).to_contain_text("succeeded")
        expect(done).to_contain_text("1 min 15 s elapsed")
        expect(done).not_to_contain_text("worker seen")
        expect(done.locator(".badge.stalled")).to_have_count(0)
        expect(page.locator('#jobs li[data-job="5"]')).to_contain_text("cancelled on request after 1 of 3 epochs")
        browser.close()


def test_a_service_that_asks_for_a_key_gets_it_from_the_key_field(
    tmp_path_factory, chromium_path: Path, data_dir: Path
) -> None:
    """With `open_predict` off the page says what is wrong until a key with scope predict is given."""
    from tests.app.api.support import make_key
    from tests.app.live_server import Registry, start_server, stop_server, zoo_checkpoint

    root = tmp_path_factory.mktemp("closed")
    registry = Registry.create(root)
    registry.publish(zoo_checkpoint("simple_cnn", root), "chest")
    key = make_key(registry.url, "page-user", "predict")
    server = start_server(registry, root / "server.log", default_model="chest", open_predict="false")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(server.url)
            sample = str(data_dir / "samples" / "person1951_bacteria_4882.jpeg")
            page.set_input_files("#file", sample)
            expect(page.locator("#status")).to_contain_text("API key")
            page.fill("#api-key", key)
            page.set_input_files("#file", [])
            page.set_input_files("#file", sample)
            expect(page.locator("#bars .bar")).to_have_count(len(ZOO_LABELS))
            browser.close()
    finally:
        stop_server(server)
        registry.db.dispose()
