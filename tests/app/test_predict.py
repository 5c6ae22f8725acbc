"""`/predict`, `/models`, health and metrics over real HTTP, on a registry filled by a real training run."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ml.decoding import read_image_for
from ml.imaging import read_image
from ml.inference import LoadedModel
from registry.records import ModelVersionRecord
from tests.app.conftest import SERVER_LIMITS
from tests.app.live_server import Registry, Server, start_server, stop_server

pytestmark = pytest.mark.integration


def _file(path: Path, content_type: str = "image/png") -> tuple[str, tuple[str, bytes, str]]:
    return ("file", (path.name, path.read_bytes(), content_type))


def test_predict_answers_every_label_of_the_default_model_as_it_computes_in_process(
    client: httpx.Client,
    samples_dir: Path,
    trained_checkpoint: Path,
    published: dict[str, ModelVersionRecord],
) -> None:
    sample = samples_dir / "nih_cxr_1024.png"
    response = client.post("/predict", files=[_file(sample)])
    assert response.status_code == 200, response.text
    body = response.json()
    version = published["pneumonia"]
    assert body["model"] == {
        "name": "pneumonia",
        "version": version.version,
        "ref": version.ref,
        "alias": "production",
        "architecture": "simple_cnn",
        "task": "binary",
    }
    assert body["filename"] == sample.name and (body["width"], body["height"]) == (1024, 1024)
    assert set(body["probabilities"]) == set(body["thresholds"]) == {"Pneumonia"}
    # the same numbers as the library gives in this process for the same checkpoint and file, decoded for the
    # model's input (the 1024 px PNG reduced to 128 px block means, `ml.decoding`); within the tolerance of the
    # full decode (read_image: what training reads)
    loaded = LoadedModel.from_checkpoint(trained_checkpoint)
    decoded = read_image_for(sample.read_bytes(), short_side=loaded.preprocess.source_side)
    assert decoded.reduction == 8
    expected = loaded.explain_probabilities(loaded.predict_images([decoded.image])[0])
    assert body["probabilities"]["Pneumonia"] == pytest.approx(expected.probabilities["Pneumonia"], abs=1e-5)
    full = loaded.predict_images([read_image(sample)])[0][0]
    assert body["probabilities"]["Pneumonia"] == pytest.approx(float(full), abs=0.02)
    assert body["thresholds"] == pytest.approx(expected.thresholds)
    assert body["positive"] == expected.positive
    timing = body["timing_ms"]
    assert 0 < timing["inference"] <= timing["total"] and 0 < timing["decode"] <= timing["total"]


@pytest.fixture(scope="module")
def exact_server(
    registry: Registry, published: dict[str, ModelVersionRecord], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The API with `CXR_REDUCED_DECODING=false`: every upload decoded in full."""
    running = start_server(registry, tmp_path_factory.mktemp("exact") / "server.log", reduced_decoding="false",
                           runtime_candidates="[]", **SERVER_LIMITS)
    yield running
    stop_server(running)


def test_with_reduced_decoding_off_every_upload_decodes_in_full_as_training_reads_it(
    exact_server: Server, samples_dir: Path, trained_checkpoint: Path
) -> None:
    loaded = LoadedModel.from_checkpoint(trained_checkpoint)
    names = ["nih_cxr_1024.png", "person1951_bacteria_4882.jpeg", "NORMAL2-IM-1438-0001.jpeg"]
    with httpx.Client(base_url=exact_server.url, timeout=120) as client:
        for name in names:
            response = client.post("/predict", files=[_file(samples_dir / name)])
            assert response.status_code == 200, response.text
            full = float(loaded.predict_images([read_image(samples_dir / name)])[0][0])
            assert response.json()["probabilities"]["Pneumonia"] == pytest.approx(full, abs=1e-5), name
            gradcam = client.post("/gradcam", files=[_file(samples_dir / name)])
            assert gradcam.status_code == 200, gradcam.text


def test_several_files_answer_a_list_in_request_order(client: httpx.Client, samples_dir: Path) -> None:
    names = ["person1951_bacteria_4882.jpeg", "nih_cxr_1024.png", "NORMAL2-IM-1438-0001.jpeg"]
    files = [_file(samples_dir / n, "image/jpeg" if n.endswith("jpeg") else "image/png") for n in names]
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["filename"] for r in body] == names
    singles = [client.post("/predict", files=[f]).json()["probabilities"] for f in files]
    for result, single in zip(body, singles, strict=True):
        assert result["probabilities"] == pytest.approx(single, abs=1e-5)  # batching changes nothing
    assert body[0]["probabilities"] != body[2]["probabilities"]


def test_a_model_is_chosen_by_name_alias_or_version(
    client: httpx.Client, samples_dir: Path, published: dict[str, ModelVersionRecord]
) -> None:
    zoo = published["zoo-vgg_small"]
    for reference, alias in (
        ("zoo-vgg_small", "production"),
        ("zoo-vgg_small@production", "production"),
        (zoo.ref, None),
    ):
        body = client.post(
            "/predict", params={"model": reference}, files=[_file(samples_dir / "nih_cxr_1024.png")]
        )
        assert body.status_code == 200, body.text
        model = body.json()["model"]
        assert (model["ref"], model["alias"], model["architecture"]) == (zoo.ref, alias, "vgg_small")
        assert set(body.json()["probabilities"]) == set(zoo.labels)


def test_models_lists_versions_aliases_labels_and_metrics(
    client: httpx.Client, samples_dir: Path, published: dict[str, ModelVersionRecord]
) -> None:
    client.post("/predict", files=[_file(samples_dir / "nih_cxr_1024.png")])  # the default model is in use
    body = client.get("/models").json()
    assert body["default_model"] == "pneumonia"
    by_name = {m["name"]: m for m in body["items"]}
    assert set(published) <= set(by_name)
    pneumonia = by_name["pneumonia"]
    assert pneumonia["default"] is True and pneumonia["labels"] == ["Pneumonia"]
    first = pneumonia["versions"][0]
    assert first["architecture"] == "simple_cnn" and first["input_size"] == 28
    assert first["metrics"]["test"]["mean_auroc"] > 0.7  # evaluated on the real test split while training
    # `quality`: the AUROC part from the run's own test evaluation; the calibration part from the temperatures
    # fitted on validation while training, measured on the same test split
    production = next(v for v in pneumonia["versions"] if "production" in v["aliases"])
    quality = pneumonia["quality"]
    assert quality == production["quality"]
    assert quality["per_label_auroc"] == production["metrics"]["test"]["auroc"]
    assert quality["mean_auroc"] == production["metrics"]["test"]["mean_auroc"]
    assert quality["test_set"] == "the test split of its training dataset"
    calibration = production["metrics"]["test"]
    for key in ("ece_before", "ece_after", "brier_before", "brier_after"):
        assert 0.0 <= quality[key] <= 1.0 and quality[key] == calibration[key]
    assert by_name["zoo-densenet121"]["labels"] == published["zoo-densenet121"].labels
    assert any(v["loaded"] for v in pneumonia["versions"])  # held in the serving cache


def test_readiness_reports_the_default_model_loaded(client: httpx.Client) -> None:
    body = client.get("/health/ready").json()
    assert body["ready"] is True
    assert body["checks"]["default model loaded"] is True
    assert body["messages"]["default model loaded"].startswith("pneumonia -> pneumonia:")


def test_metrics_count_requests_by_route_template_and_time_models(
    client: httpx.Client, samples_dir: Path
) -> None:
    client.get("/samples/nih_cxr_1024.png")
    client.get("/samples/no-such-file.png")
    client.post("/predict", files=[_file(samples_dir / "nih_cxr_1024.png")])
    text = client.get("/metrics").text
    assert 'cxr_http_requests_total{method="GET",route="/samples/{name}",status="200"}' in text
    assert 'cxr_http_requests_total{method="GET",route="/samples/{name}",status="404"}' in text
    assert "no-such-file" not in text  # raw paths never become labels
    assert 'cxr_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/predict"}' in text
    version = next(m for m in client.get("/models").json()["items"] if m["name"] == "pneumonia")["aliases"]["production"]
    assert f'cxr_model_load_seconds_count{{model="pneumonia",version="{version}"}}' in text
    assert f'cxr_inference_seconds_count{{kind="predict",model="pneumonia",version="{version}"}}' in text


def test_inference_does_not_block_the_event_loop(client: httpx.Client, samples_dir: Path, server) -> None:
    """While CAMs of a large image keep both pool workers busy, liveness still answers at once.

    Judged against the CAMs' own duration, not a fixed time, so a busy machine slows both alike: a loop
    blocked by CAM work would keep a liveness request waiting for a good part of a CAM (half of one on
    average), while a free loop answers in a small fraction of it."""
    big = samples_dir / "person1951_bacteria_4882.jpeg"

    def cam() -> tuple[int, float]:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            start = time.perf_counter()
            status = c.post(
                "/gradcam",
                params={"model": "zoo-densenet121", "method": "gradcam++"},
                files=[_file(big, "image/jpeg")],
            ).status_code
            return status, time.perf_counter() - start

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        busy = [pool.submit(cam) for _ in range(4)]
        time.sleep(0.3)
        latencies = []
        while not all(f.done() for f in busy):
            start = time.perf_counter()
            assert client.get("/health/live").status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.05)
        results = [f.result() for f in busy]
    assert [status for status, _ in results] == [200] * 4
    shortest_cam = min(seconds for _, seconds in results)
    assert latencies and np.median(latencies) < shortest_cam / 20, (shortest_cam, latencies)


def test_a_model_with_test_time_views_answers_the_views_averaged_in_predict_and_gradcam(
    client: httpx.Client, registry: Registry, samples_dir: Path, trained_checkpoint: Path, tmp_path: Path
) -> None:
    from ml.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(trained_checkpoint)
    ckpt["tta"] = "crops"
    path = save_checkpoint(ckpt, tmp_path / "crops.pt")
    version = registry.publish(path, "pneumonia-crops")
    sample = samples_dir / "person1951_bacteria_4882.jpeg"
    body = client.post("/predict", params={"model": version.ref}, files=[_file(sample, "image/jpeg")]).json()
    assert body["test_time_views"] == "crops"
    views, plain = LoadedModel.from_checkpoint(path), LoadedModel.from_checkpoint(trained_checkpoint)
    assert views.tta == "crops" and plain.tta == "none"
    decoded = read_image_for(sample.read_bytes(), short_side=views.preprocess.source_side).image
    averaged, alone = float(views.predict_images([decoded])[0][0]), float(plain.predict_images([decoded])[0][0])
    assert abs(averaged - alone) > 1e-4  # the views change the answer, so the comparison below can fail
    assert body["probabilities"]["Pneumonia"] == pytest.approx(averaged, abs=1e-5)
    cam = client.post("/gradcam", params={"model": version.ref, "format": "json"},
                      files=[_file(sample, "image/jpeg")])
    assert cam.status_code == 200, cam.text
    assert cam.json()["probabilities"]["Pneumonia"] == pytest.approx(averaged, abs=1e-5)  # the same answer as /predict
    assert len(cam.json()["targets"]) == 1
