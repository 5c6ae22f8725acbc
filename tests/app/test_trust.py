"""The input gate, the reader's view and calibration through a real server (issue 17)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from ml.imaging import read_image
from registry.records import ModelVersionRecord
from tests.app.live_server import Registry, start_server, stop_server

pytestmark = pytest.mark.integration

SAMPLE = "nih_cxr_1024.png"


def _png(image: np.ndarray | Image.Image) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _not_xrays(samples_dir: Path) -> dict[str, bytes]:
    xray = read_image(samples_dir / SAMPLE)
    rng = np.random.default_rng(0)
    return {
        "dot.png": _png(np.zeros((1, 1))),
        "inverted.png": _png(1 - xray),
        "rotated.png": _png(np.rot90(xray).copy()),
        "noise.png": _png(rng.random((256, 256))),
        "photo.png": _png(Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), "RGB")),
    }


def _files(name: str, data: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "image/png"))]


def test_a_radiograph_passes_and_every_finding_reads_in_words(
    client: httpx.Client, samples_dir: Path, published: dict[str, ModelVersionRecord]
) -> None:
    body = client.post("/predict", files=_files(SAMPLE, (samples_dir / SAMPLE).read_bytes())).json()
    check = body["input_check"]
    assert check["in_distribution"] is True and check["reasons"] == [] and check["score"] >= check["threshold"]
    assert body["input_size"] == [28, 28] and body["calibrated"] is True  # fit calibrates on validation
    [finding] = body["findings"]
    test_auroc = published["pneumonia"].metrics["test"]["auroc"]["Pneumonia"]
    assert finding["label"] == "Pneumonia" and finding["test_auroc"] == pytest.approx(test_auroc, abs=1e-4)
    assert finding["probability"] == pytest.approx(body["probabilities"]["Pneumonia"], abs=1e-5)
    assert finding["threshold"] == pytest.approx(body["thresholds"]["Pneumonia"], abs=1e-5)
    assert finding["decision"] == ("positive" if "Pneumonia" in body["positive"] else "negative")
    assert finding["reliable"] == (test_auroc >= 0.75)
    assert not any(w.startswith("This image may not be") for w in body["warnings"])


def test_what_is_not_a_chest_xray_is_flagged_with_reasons_and_a_warning(client: httpx.Client, samples_dir: Path) -> None:
    for name, data in _not_xrays(samples_dir).items():
        response = client.post("/predict", files=_files(name, data))
        assert response.status_code == 200, (name, response.text)  # warn: the default
        body = response.json()
        assert body["input_check"]["in_distribution"] is False, (name, body["input_check"])
        assert body["input_check"]["reasons"], name
        assert body["warnings"][0].startswith("This image may not be a chest X-ray"), name
    reasons = {name: " ".join(client.post("/predict", files=_files(name, data)).json()["input_check"]["reasons"])
               for name, data in _not_xrays(samples_dir).items()}
    assert "too small" in reasons["dot.png"] and "colour" in reasons["photo.png"]
    assert "inverted" in reasons["inverted.png"] and "rotated" in reasons["rotated.png"]


def test_gradcam_says_whether_the_input_passed(client: httpx.Client, samples_dir: Path) -> None:
    good = client.post("/gradcam", files=_files(SAMPLE, (samples_dir / SAMPLE).read_bytes()))
    assert good.status_code == 200 and good.headers["x-input-check"] == "pass"
    noise = _not_xrays(samples_dir)["noise.png"]
    bad = client.post("/gradcam", files=_files("noise.png", noise))
    assert bad.status_code == 200 and bad.headers["x-input-check"] == "flag"
    body = client.post("/gradcam", params={"format": "json"}, files=_files("noise.png", noise))
    assert body.headers["x-input-check"] == "flag"
    assert body.json()["input_check"]["in_distribution"] is False and body.json()["findings"]


def test_models_report_quality_with_calibration(client: httpx.Client) -> None:
    [model] = [m for m in client.get("/models").json()["items"] if m["name"] == "pneumonia"]
    quality = model["versions"][0]["quality"]
    assert set(quality["per_label_auroc"]) == {"Pneumonia"} and "test split" in quality["test_set"]
    for key in ("ece_before", "ece_after", "brier_before", "brier_after"):
        assert 0 <= quality[key] <= 1, key


@pytest.fixture(scope="module")
def rejecting(registry: Registry, published: dict[str, ModelVersionRecord],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = start_server(registry, tmp_path_factory.mktemp("reject") / "server.log", input_gate="reject",
                          runtime_candidates="[]")
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c
    stop_server(server)


def test_reject_mode_refuses_with_422_and_the_reasons(rejecting: httpx.Client, samples_dir: Path) -> None:
    not_xrays = _not_xrays(samples_dir)
    for route in ("/predict", "/gradcam"):
        response = rejecting.post(route, files=_files("inverted.png", not_xrays["inverted.png"]))
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["error"] == "not_a_chest_xray" and "inverted.png" in body["message"]
        [detail] = body["details"]
        assert detail["file"] == "inverted.png" and detail["in_distribution"] is False and detail["reasons"]
    # one flagged file among several refuses the request; a radiograph alone still passes
    xray = (samples_dir / SAMPLE).read_bytes()
    mixed = rejecting.post("/predict", files=_files(SAMPLE, xray) + _files("noise.png", not_xrays["noise.png"]))
    assert mixed.status_code == 422 and "noise.png" in mixed.json()["message"]
    assert rejecting.post("/predict", files=_files(SAMPLE, xray)).status_code == 200
