"""The runs view, the job view and the alias form in headless Chromium, on a registry filled by two real
training runs (the worker's task code in-process: simple_cnn, 2 short epochs each on PneumoniaMNIST)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from registry.datasets import create_dataset
from registry.jobs import get_job
from registry.records import JobRecord
from tests.app.api.support import make_key
from tests.app.live_server import Registry, Server, start_server, stop_server
from tests.app.web.conftest import CHROMIUM_ARGS
from tests.worker.support import make_context, new_job
from worker.training import run_training_job

pytestmark = pytest.mark.integration

# runs.js's first two colours: the chart draws run i in COLOURS[i]
COLOURS = [(0x1F, 0x6F, 0xEB), (0xD9, 0x53, 0x4F)]


@dataclass
class Bench:
    server: Server
    jobs: list[JobRecord]
    admin_key: str


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Bench]:
    root = tmp_path_factory.mktemp("bench")
    registry = Registry.create(root)
    ctx = make_context(root)  # the same registry file and artifact folder the server reads
    with ctx.db.session() as s:
        dataset = create_dataset(s, name="pneumo", kind="pneumoniamnist",
                                 location=str(data_dir / "pneumoniamnist" / "pneumoniamnist.npz"), options={},
                                 labels=["Pneumonia"], task="binary", splits={"train": 4708, "val": 524, "test": 624})
    jobs = []
    for lr in (2e-3, 5e-4):
        job_id = new_job(ctx, dataset, lr=lr)
        assert run_training_job(ctx, job_id) == "succeeded"
        with ctx.db.session() as s:
            jobs.append(get_job(s, job_id=job_id))
    ctx.close()
    key = make_key(registry.url, "bench-admin", "admin")
    server = start_server(registry, root / "server.log", default_model="pneumo-simple_cnn")
    yield Bench(server=server, jobs=jobs, admin_key=key)
    stop_server(server)
    registry.db.dispose()


def _pixels_of(page: Page, selector: str, rgb: tuple[int, int, int]) -> int:
    """Pixels of the chart's canvas drawn in `rgb` (give or take antialiasing)."""
    return page.locator(f"{selector} canvas").evaluate(
        """(canvas, rgb) => {
            const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) < 12 && Math.abs(data[i + 1] - rgb[1]) < 12
                    && Math.abs(data[i + 2] - rgb[2]) < 12) n++;
            }
            return n;
        }""",
        list(rgb),
    )


def test_the_runs_view_draws_curves_from_real_runs(bench: Bench, chromium_path: Path, artifacts: Path) -> None:
    first, second = (j.run_id for j in bench.jobs)
    series = httpx.get(f"{bench.server.url}/runs/{second}").json()["metrics"]["val"]["mean_auroc"]
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # CSP refusals too
        page.goto(bench.server.url)
        rows = page.locator("#runs-body tr[data-run]")
        expect(rows).to_have_count(2)
        newest = page.locator(f'#runs-body tr[data-run="{second}"]')
        expect(newest).to_contain_text("succeeded")
        expect(newest).to_contain_text("pneumo-simple_cnn:2")
        # the newest run is charted from the start: one line with a point per epoch of its val AUROC
        chart = page.locator("#runs-chart")
        expect(chart.locator("canvas")).to_be_visible()
        expect(chart).to_have_attribute("data-points", str(len(series)))
        assert _pixels_of(page, "#runs-chart", COLOURS[0]) > 50
        # ticking the older run compares both on one chart
        page.locator(f'#runs-body input[data-run="{first}"]').check()
        expect(chart).to_have_attribute("data-series", "2")
        expect(chart.locator(".u-legend")).to_contain_text(f"run {first}")
        assert _pixels_of(page, "#runs-chart", COLOURS[0]) > 50 and _pixels_of(page, "#runs-chart", COLOURS[1]) > 50
        page.select_option("#runs-metric", "train.loss")
        expect(chart).to_have_attribute("data-series", "2")
        # filters
        page.fill("#runs-model", "densenet121")
        page.locator("#runs-filter button").click()
        expect(page.locator("#runs-body")).to_contain_text("no runs match")
        page.screenshot(path=str(artifacts / "runs-view.png"), full_page=True)
        browser.close()
    assert not errors, errors


def test_the_job_view_shows_progress_links_and_cancels(bench: Bench, chromium_path: Path) -> None:
    job = bench.jobs[0]
    real = httpx.get(f"{bench.server.url}/training-jobs/{job.id}").json()
    live = {**real, "status": "running", "finished_at": None, "model_version": None, "cancel_requested": False,
            "progress": {**real["progress"], "phase": "training", "epoch": 2, "epochs": 5, "fraction": 0.4,
                         "elapsed_s": 75, "eta_s": 130}}
    cancels: list[dict[str, str]] = []

    def answer_cancel(route) -> None:
        cancels.append(route.request.headers)
        route.fulfill(json={**live, "status": "cancelling", "cancel_requested": True})

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(bench.server.url)
        # a finished job, opened from the side panel: its facts, its run and model version, its curves
        page.locator(f'#jobs li[data-job="{job.id}"]').click()
        panel = page.locator("#job-panel")
        expect(panel).to_be_visible()
        expect(panel.locator('[data-fact="status"]')).to_have_text("succeeded")
        expect(panel.locator('a[data-link="run"]')).to_have_attribute("href", f"#run/{job.run_id}")
        expect(panel.locator('a[data-link="version"]')).to_contain_text("pneumo-simple_cnn:1")
        expect(page.locator("#job-loss")).to_have_attribute("data-series", "2")
        expect(page.locator("#job-cancel")).to_be_hidden()
        page.locator("#job-close").click()
        expect(panel).to_be_hidden()

        # the same job as a running one (the worker's fields as the jobs API gives them), whose run gains an
        # epoch of metrics between two looks: the curves grow while it trains
        run = httpx.get(f"{bench.server.url}/runs/{job.run_id}").json()
        looks: list[int] = []

        def growing_run(route) -> None:
            looks.append(1)
            epochs = 1 if len(looks) == 1 else 2
            metrics = {split: {name: points[:epochs] for name, points in names.items()}
                       for split, names in run["metrics"].items()}
            route.fulfill(json={**run, "status": "running", "metrics": metrics})

        page.route(f"**/training-jobs/{job.id}", lambda route: route.fulfill(json=live))
        page.route(f"**/runs/{job.run_id}", growing_run)
        page.route(f"**/training-jobs/{job.id}/cancel", answer_cancel)
        page.evaluate(f"location.hash = '#job/{job.id}'")
        expect(panel.locator('[data-fact="status"]')).to_have_text("running")
        expect(panel.locator('[data-fact="phase"]')).to_have_text("training")
        expect(panel.locator('[data-fact="epoch"]')).to_have_text("2 of 5")
        expect(panel.locator('[data-fact="elapsed"]')).to_have_text("1 min 15 s")
        expect(panel.locator('[data-fact="ETA"]')).to_have_text("2 min 10 s")
        expect(page.locator("#job-loss")).to_have_attribute("data-points", "2")  # train and val, one epoch
        expect(page.locator("#job-loss")).to_have_attribute("data-points", "4", timeout=15_000)  # polled again
        page.fill("#api-key", bench.admin_key)
        page.locator("#job-cancel").click()
        expect(page.locator("#status")).to_contain_text(f"Cancel requested for job {job.id}")
        browser.close()
    assert cancels and cancels[0].get("x-api-key") == bench.admin_key


def test_an_alias_moves_from_the_page_with_an_admin_key(bench: Bench, chromium_path: Path) -> None:
    def production() -> int | None:
        body = httpx.get(f"{bench.server.url}/models").json()
        [model] = [m for m in body["items"] if m["name"] == "pneumo-simple_cnn"]
        return model["aliases"].get("production")

    before = production()
    assert before != 1
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(bench.server.url)
        expect(page.locator("#alias-version option")).to_have_count(2)
        page.select_option("#alias-version", "1")
        page.locator("#alias-form button").click()
        expect(page.locator("#alias-status")).to_contain_text("scope admin")  # no key given
        assert production() == before
        page.fill("#api-key", bench.admin_key)
        page.locator("#alias-form button").click()
        expect(page.locator("#alias-status")).to_have_text("pneumo-simple_cnn@production now points at version 1.")
        expect(page.locator("#models li")).to_contain_text("production→v1")
        browser.close()
    assert production() == 1
