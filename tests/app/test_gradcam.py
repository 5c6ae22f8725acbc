"""`/gradcam` through real HTTP for every registered architecture."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from ml.models import list_models
from registry.records import ModelVersionRecord

pytestmark = pytest.mark.integration

SAMPLE = "person1951_bacteria_4882.jpeg"  # a real radiograph, not square


@pytest.fixture(scope="module")
def small_jpeg(samples_dir: Path) -> bytes:
    """The sample at a third of its size (overlays of every model at full size would only cost time)."""
    with Image.open(samples_dir / SAMPLE) as im:
        out = io.BytesIO()
        im.reduce(3).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _upload(data: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", ("xray.jpeg", data, "image/jpeg"))]


def _image_size(data: bytes, fmt: str = "PNG") -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == fmt and im.mode == "RGB"
        return im.size


def _png_size(data: bytes) -> tuple[int, int]:
    return _image_size(data, "PNG")


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("architecture", list_models())
def test_gradcam_for_every_model_gives_an_overlay_of_the_upload_size_that_depends_on_the_target(
    architecture: str, client: httpx.Client, small_jpeg: bytes, published: dict[str, ModelVersionRecord]
) -> None:
    with Image.open(io.BytesIO(small_jpeg)) as im:
        size = im.size
    model = f"zoo-{architecture}"
    labels = published[model].labels

    png = client.post("/gradcam", params={"model": model, "target": labels[0], "format": "png"},
                      files=_upload(small_jpeg))
    assert png.status_code == 200, png.text
    assert png.headers["content-type"] == "image/png"
    assert png.headers["x-model"] == published[model].ref and png.headers["x-target"] == labels[0]
    assert _png_size(png.content) == size

    body = client.post(
        "/gradcam",
        params={"model": model, "target": f"{labels[0]},{labels[2]}", "format": "json", "overlay_format": "png"},
        files=_upload(small_jpeg),
    )
    assert body.status_code == 200, body.text
    result = body.json()
    assert result["model"]["architecture"] == architecture and (result["width"], result["height"]) == size
    assert set(result["probabilities"]) == set(labels)
    assert [t["label"] for t in result["targets"]] == [labels[0], labels[2]]
    first, second = (np.array(t["heatmap"]) for t in result["targets"])
    assert first.shape == second.shape == (16, 16)
    assert first.min() >= 0 and first.max() <= 1
    assert np.abs(first - second).max() > 0.05, "the heat maps of two targets should differ"
    assert all(t["overlay_png_base64"] == t["overlay_base64"] for t in result["targets"])
    assert {t["overlay_media_type"] for t in result["targets"]} == {"image/png"}
    overlays = [base64.b64decode(t["overlay_png_base64"]) for t in result["targets"]]
    assert [_png_size(o) for o in overlays] == [size, size]
    # the same target gives the same overlay in either format (up to rounding: one CAM batch or two)
    assert np.abs(_pixels(overlays[0]) - _pixels(png.content)).max() <= 2
    # a CNN is cut at its CAM layer; the ViT (torch.fx cannot trace it) goes through pytorch-grad-cam's hooks
    [serving] = [v["serving"] for m in client.get("/models").json()["items"] if m["name"] == model
                 for v in m["versions"] if v["serving"]]
    assert serving["gradcam_path"] == ("hooks" if architecture == "vit_tiny" else "split"), serving


def test_top_targets_the_most_probable_label_and_every_method_works(
    client: httpx.Client, small_jpeg: bytes
) -> None:
    for method in ("gradcam", "gradcam++", "xgradcam", "eigencam", "layercam"):
        body = client.post(
            "/gradcam",
            params={"model": "zoo-simple_cnn", "method": method, "format": "json"},
            files=_upload(small_jpeg),
        )
        assert body.status_code == 200, (method, body.text)
        result = body.json()
        top = max(result["probabilities"], key=result["probabilities"].get)
        assert [t["label"] for t in result["targets"]] == [top] and result["method"] == method
        assert np.array(result["targets"][0]["heatmap"]).max() > 0


def test_a_full_size_radiograph_gets_a_jpeg_overlay_of_its_size_by_default(
    client: httpx.Client, samples_dir: Path
) -> None:
    with Image.open(samples_dir / SAMPLE) as im:
        size = im.size
    assert max(size) <= 1024  # within the default max_side: kept at the upload's size
    response = client.post(
        "/gradcam", files=_upload((samples_dir / SAMPLE).read_bytes())
    )  # the default model
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg" and response.headers["vary"] == "Accept"
    assert response.headers["x-target"] == "Pneumonia" and _image_size(response.content, "JPEG") == size
    assert 0 <= float(response.headers["x-probability"]) <= 1


def test_max_side_reduces_the_overlay_and_never_enlarges_it(client: httpx.Client, small_jpeg: bytes) -> None:
    with Image.open(io.BytesIO(small_jpeg)) as im:
        width, height = im.size  # 339 x 219
    params = {"model": "zoo-simple_cnn", "target": "Effusion"}
    reduced = client.post("/gradcam", params={**params, "max_side": 100, "format": "png"},
                          files=_upload(small_jpeg))
    assert reduced.status_code == 200, reduced.text
    assert _png_size(reduced.content) == (100, round(height * 100 / width))
    kept = client.post("/gradcam", params={**params, "max_side": 4096}, files=_upload(small_jpeg))
    assert _image_size(kept.content, "JPEG") == (width, height)
    body = client.post("/gradcam", params={**params, "max_side": 100, "format": "json"}, files=_upload(small_jpeg))
    result = body.json()
    assert (result["width"], result["height"]) == (width, height)  # the upload's size, as before
    [target] = result["targets"]
    assert target["overlay_media_type"] == "image/jpeg" and target["overlay_png_base64"] is None
    assert _image_size(base64.b64decode(target["overlay_base64"]), "JPEG")[0] == 100
    for bad in (0, 4097, "x"):
        refused = client.post("/gradcam", params={**params, "max_side": bad}, files=_upload(small_jpeg))
        assert refused.status_code == 422 and "max_side" in refused.json()["message"], refused.text


def test_the_encoding_follows_the_query_then_accept(client: httpx.Client, small_jpeg: bytes) -> None:
    params = {"model": "zoo-simple_cnn", "target": "Effusion"}

    def post(accept: str | None = None, **query: str) -> httpx.Response:
        headers = {"Accept": accept} if accept else {}
        return client.post("/gradcam", params={**params, **query}, headers=headers, files=_upload(small_jpeg))

    answers = {
        "webp by query": (post(format="webp"), "image/webp", "WEBP"),
        "png by Accept": (post("image/png"), "image/png", "PNG"),
        "webp by Accept": (post("image/webp;q=0.9, image/png;q=0.5"), "image/webp", "WEBP"),
        "the query over Accept": (post("image/webp", format="jpeg"), "image/jpeg", "JPEG"),
    }
    pixels = {}
    for case, (response, media, fmt) in answers.items():
        assert response.status_code == 200, (case, response.text)
        assert response.headers["content-type"] == media, case
        _image_size(response.content, fmt)
        pixels[case] = _pixels(response.content)
    # the same overlay in each encoding, within the lossy encoders' rounding
    for case, values in pixels.items():
        assert np.abs(values - pixels["png by Accept"]).mean() < 3, case
    refused = post("image/*;q=0")
    assert refused.status_code == 406 and refused.json()["error"] == "not_acceptable", refused.text
    conflict = post(format="png", overlay_format="jpeg")
    assert conflict.status_code == 422 and conflict.json()["error"] == "conflicting_formats", conflict.text


def test_gradcam_refuses_what_it_cannot_explain(client: httpx.Client, small_jpeg: bytes) -> None:
    unknown = client.post(
        "/gradcam", params={"model": "zoo-simple_cnn", "target": "Fracture"}, files=_upload(small_jpeg)
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"] == "unknown_target"
    assert "Fracture" in unknown.json()["message"] and "Cardiomegaly" in unknown.json()["message"]

    several_as_png = client.post(
        "/gradcam",
        params={"model": "zoo-simple_cnn", "target": ["Effusion", "top"]},
        files=_upload(small_jpeg),
    )
    assert several_as_png.status_code == 422 and several_as_png.json()["error"] == "too_many_targets"

    method = client.post("/gradcam", params={"method": "scorecam"}, files=_upload(small_jpeg))
    assert method.status_code == 422 and method.json()["error"] == "validation_error"
    assert "method" in method.json()["message"]


def test_a_1x1_upload_gets_a_1x1_overlay(client: httpx.Client) -> None:
    out = io.BytesIO()
    Image.new("L", (1, 1), 128).save(out, format="PNG")
    jpeg = client.post("/gradcam", files=[("file", ("dot.png", out.getvalue(), "image/png"))])
    assert jpeg.status_code == 200, jpeg.text
    assert _image_size(jpeg.content, "JPEG") == (1, 1)
    body = client.post("/gradcam", params={"format": "json", "overlay_format": "png"},
                       files=[("file", ("dot.png", out.getvalue(), "image/png"))])
    assert (body.json()["width"], body.json()["height"]) == (1, 1)
    [target] = body.json()["targets"]
    assert _png_size(base64.b64decode(target["overlay_png_base64"])) == (1, 1)


def test_two_files_are_refused_with_400(client: httpx.Client, small_jpeg: bytes) -> None:
    files = [("file", ("a.jpeg", small_jpeg, "image/jpeg")), ("file", ("b.jpeg", small_jpeg, "image/jpeg"))]
    for fmt in ("png", "json"):
        response = client.post("/gradcam", params={"format": fmt}, files=files)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "too_many_files" and "2" in response.json()["message"]
