"""Micro-batching, the inference queue bound and the runtime choice in a real API process.

A registry of its own (two small models with seeded weights) and a server that waits up to a second for
company, so that concurrent requests are batched whatever the machine's speed.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ml.decoding import read_image_for
from ml.explain.gradcam import compute_cams, heatmap_grid
from ml.inference import LoadedModel
from tests.app.live_server import Registry, Server, start_server, stop_server, zoo_checkpoint
from tests.waiting import SETTLE_SECONDS

pytestmark = pytest.mark.integration
SAMPLES = ["nih_cxr_1024.png", "person1951_bacteria_4882.jpeg", "NORMAL2-IM-1438-0001.jpeg"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("batching-zoo")
    return {"small": zoo_checkpoint("simple_cnn", folder), "dense": zoo_checkpoint("densenet121", folder)}


@pytest.fixture(scope="module")
def batching_server(checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    registry = Registry.create(tmp_path_factory.mktemp("batching-registry"))
    registry.publish(checkpoints["small"], "small")
    registry.publish(checkpoints["dense"], "dense")
    server = start_server(
        registry, tmp_path_factory.mktemp("batching-server") / "server.log", default_model="small",
        batch_max_size=8, batch_max_wait_ms=1000, inference_queue_limit=6, max_files_per_request=8,
        runtime_candidates='["channels_last", "onnxruntime"]',
    )
    yield server
    stop_server(server)
    registry.db.dispose()
    assert "Traceback" not in server.log_path.read_text(), server.log_tail(20000)


def _serving(client: httpx.Client, name: str) -> dict:
    [model] = [m for m in client.get("/models").json()["items"] if m["name"] == name]
    [version] = model["versions"]
    return version["serving"]


def _chosen(client: httpx.Client, name: str) -> dict:
    """The model's serving info once its background runtime trial is over (loading it if need be)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        serving = _serving(client, name)
        if serving and serving["runtime_state"] != "choosing":
            return serving
        assert time.monotonic() < deadline, serving
        time.sleep(0.2)


def _post(url: str, name: str, sample: Path) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=60) as c:
        return c.post("/predict", params={"model": name}, files=[("file", (sample.name, sample.read_bytes()))])


@pytest.mark.parametrize("name", ["small", "dense"])
def test_concurrent_requests_are_batched_and_answer_what_each_alone_would(
    batching_server: Server, checkpoints: dict[str, Path], samples_dir: Path, name: str
) -> None:
    url = batching_server.url
    with httpx.Client(base_url=url, timeout=60) as client:
        assert _post(url, name, samples_dir / SAMPLES[0]).status_code == 200  # loads it
        _chosen(client, name)
        alone = [_post(url, name, samples_dir / s).json()["probabilities"] for s in SAMPLES]
        before = _serving(client, name)
        # six clients, connected beforehand, send at once: on a busy machine, clients that connect as they go
        # can arrive one at a time, each finding the model idle or the queue empty
        start = threading.Barrier(6)

        def send(i: int) -> httpx.Response:
            sample = samples_dir / SAMPLES[i % 3]
            with httpx.Client(base_url=url, timeout=60) as c:
                assert c.get("/health/live").status_code == 200
                start.wait(timeout=60)
                files = [("file", (sample.name, sample.read_bytes()))]
                return c.post("/predict", params={"model": name}, files=files)

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(send, range(6)))
        after = _serving(client, name)
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    for i, response in enumerate(responses):
        assert response.json()["probabilities"] == pytest.approx(alone[i % 3], abs=1e-5)
    assert after["images"] - before["images"] == 6
    assert after["batches"] - before["batches"] < 6  # some requests shared a forward pass
    # and what the library computes in this process (eager), within the runtime tolerance, from the image
    # decoded as serving decodes it (a JPEG far larger than the model's input: reduced, `ml.decoding`)
    loaded = LoadedModel.from_checkpoint(checkpoints[name])
    side = loaded.preprocess.source_side
    images = [read_image_for((samples_dir / s).read_bytes(), short_side=side).image for s in SAMPLES]
    expected = loaded.predict_images(images)
    for row, probs in zip(expected, alone, strict=True):
        assert list(probs.values()) == pytest.approx(row.tolist(), abs=1e-4)


def test_models_report_the_runtime_chosen_in_the_background_and_its_timings(batching_server: Server) -> None:
    with httpx.Client(base_url=batching_server.url, timeout=60) as client:
        serving = _chosen(client, "small")  # the default model, loaded at start-up
        [detail] = client.get("/models/small/versions").json()["items"]
    assert detail["serving"]["runtime"] == serving["runtime"]  # the model's detail says the same
    assert serving["runtime_state"] == "chosen", serving
    trials = {t["name"]: t for t in serving["runtime_trials"]}
    assert set(trials) == {"eager", "channels_last", "onnxruntime"}
    accepted = [t for t in trials.values() if t["accepted"]]
    assert all(t["median_ms"] > 0 and t["max_abs_diff"] <= 1e-4 for t in accepted)
    assert serving["runtime"] == min(accepted, key=lambda t: t["median_ms"])["name"]
    assert serving["batch_max_size"] == 8


def test_a_full_inference_queue_answers_503_with_retry_after(batching_server: Server, samples_dir: Path) -> None:
    sample = samples_dir / SAMPLES[0]
    files = [("file", (f"{i}.png", sample.read_bytes(), "image/png")) for i in range(7)]  # over the limit of 6
    response = httpx.post(f"{batching_server.url}/predict", files=files, timeout=60)
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["error"] == "overloaded" and "limit 6" in body["message"]
    assert httpx.post(f"{batching_server.url}/predict", files=files[:6], timeout=60).status_code == 200


def _cam_settled(client: httpx.Client, name: str) -> dict:
    """Serving info once the runtime trial has also tried the chosen runtime for the Grad-CAM trunk."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        serving = _chosen(client, name)
        if serving["gradcam_path"] != "not built" and not serving["gradcam_message"].startswith("trying"):
            return serving
        assert time.monotonic() < deadline, serving
        time.sleep(0.2)


@pytest.mark.parametrize("name", ["small", "dense"])
def test_gradcam_runs_the_trunk_in_the_chosen_runtime_and_gives_the_hooks_map(
    batching_server: Server, checkpoints: dict[str, Path], samples_dir: Path, name: str
) -> None:
    sample = samples_dir / SAMPLES[0]
    files = [("file", (sample.name, sample.read_bytes(), "image/png"))]
    with httpx.Client(base_url=batching_server.url, timeout=60) as client:
        predicted = client.post("/predict", params={"model": name}, files=files)
        assert predicted.status_code == 200, predicted.text
        serving = _cam_settled(client, name)
        params = {"model": name, "format": "json", "target": "top"}
        response = client.post("/gradcam", params=params, files=files)
    assert response.status_code == 200, response.text
    assert serving["gradcam_path"] == "split" and serving["runtime"] != "eager"
    assert serving["gradcam_trunk_runtime"] == serving["runtime"], serving  # the trunk agreed with eager
    body = response.json()
    assert body["probabilities"] == pytest.approx(predicted.json()["probabilities"], abs=1e-4)
    # the map pytorch-grad-cam's hooks give on the whole eager model in this process, for the same class and
    # the same model input (decoded for the model as /predict decodes it)
    [target] = body["targets"]
    loaded = LoadedModel.from_checkpoint(checkpoints[name])
    x = loaded.preprocess.batch([read_image_for(sample.read_bytes(), short_side=loaded.preprocess.source_side).image])
    [expected] = compute_cams(loaded.model, x, [loaded.labels.index(target["label"])])
    assert np.abs(np.array(target["heatmap"]) - np.array(heatmap_grid(expected))).max() <= 1e-3
