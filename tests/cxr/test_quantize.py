"""`cxr quantize NAME:VERSION` on the shipped 28 px model: int8 calibrated on its training split is admitted by
its test split and recorded with the version (the model as an artifact), and serving offers it to the runtime
trial, which serves it when it is the fastest."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.services.bootstrap import import_shipped_models, register_shipped_datasets
from app.serving.metrics import ServiceMetrics
from app.serving.reduced import load_variants
from app.serving.served import ServedModel
from bench.server import wait_runtime_chosen
from cxr.cli import main
from ml.imaging import read_image
from ml.inference import LoadedModel
from ml.quantize import (
    AUROC_TOLERANCE,
    MEAN_PROBABILITY_BOUND,
    PROBABILITY_BOUND,
    bf16_available,
    int8_weight_type,
)
from registry.artifacts import LocalArtifactStore
from registry.db import Database
from registry.migrate import upgrade
from registry.reduced_precision import admitted_variants
from registry.versions import resolve
from tests.app.live_server import Registry, start_server, stop_server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Database, LocalArtifactStore]:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    upgrade(url)
    db, store = Database(url), LocalArtifactStore(tmp_path / "artifacts")
    with db.session() as session:
        register_shipped_datasets(session, REPO / "data" / "datasets.toml", [REPO / "data"])
        import_shipped_models(session, store, REPO / "models" / "manifest.toml")
    monkeypatch.setenv("CXR_DATABASE_URL", url)
    monkeypatch.setenv("CXR_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    yield db, store
    db.dispose()


def test_quantize_records_the_admitted_int8_model_and_serving_offers_it(
    registry: tuple[Database, LocalArtifactStore], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db, store = registry
    assert main(["quantize", "pneumonia:1", "--calibration-images", "128"]) == 0
    out = capsys.readouterr().out
    assert "pneumonia:1 int8_static: ADMITTED" in out, out
    with db.session() as session:
        record = resolve(session, "pneumonia:1")
    variants = record.metrics["reduced_precision"]
    int8 = variants["int8_static"]
    assert int8["admitted"] and int8["dataset"] == "pneumoniamnist" and int8["calibration_images"] == 128
    assert int8["test_images"] == 624 and int8["max_auroc_change"] <= AUROC_TOLERANCE
    assert int8["max_probability_diff"] <= PROBABILITY_BOUND and int8["mean_probability_diff"] <= MEAN_PROBABILITY_BOUND
    assert int8["artifact_uri"].endswith(".onnx") and len(int8["sha256"]) == 64
    # signed weights only where VNNI adds their products without saturating (see ml.quantize)
    assert int8["weight_type"] == int8_weight_type() in ("int8", "uint8")
    assert set(admitted_variants(record)) >= {"int8_static"}
    # the same quantization with signed weights in OpenVINO: measured and recorded either way, its model stored
    # when admitted (the 28 px model is admitted on the CPUs measured so far; see ml.quantize)
    openvino = variants["int8_openvino"]
    assert openvino["weight_type"] == "int8" and openvino["calibration_images"] == 128
    assert openvino["admitted"] == (openvino["max_auroc_change"] <= AUROC_TOLERANCE
                                    and openvino["max_probability_diff"] <= PROBABILITY_BOUND
                                    and openvino["mean_probability_diff"] <= MEAN_PROBABILITY_BOUND)
    assert (openvino["artifact_uri"] is not None) == openvino["admitted"]
    assert f"pneumonia:1 int8_openvino: {'ADMITTED' if openvino['admitted'] else 'refused'}" in out
    assert ("bf16" in variants) and (variants["bf16"]["admitted"] or not bf16_available()
                                     or "AUROC" in variants["bf16"]["reason"] or "probabilit" in variants["bf16"]["reason"])

    # serving: the admitted int8 model is read (sha256 checked) and timed by the runtime trial
    loaded = LoadedModel.from_checkpoint(store.read_bytes(record.checkpoint.uri))
    served = ServedModel(record, loaded, 0.0, ServiceMetrics())
    served.variants = load_variants(record, store)
    assert {v.runtime for v in served.variants} == set(admitted_variants(record))
    served.choose_runtime(["onnxruntime"], threads=1)
    trials = {t["name"]: t for t in served.runtime_info.trials}
    for name in {"int8_static", "int8_openvino"} & set(admitted_variants(record)):
        assert trials[name]["accepted"] and "admitted by cxr quantize" in trials[name]["reason"], trials[name]
        assert trials[name]["max_abs_diff"] <= PROBABILITY_BOUND
    fastest = min((t for t in trials.values() if t["accepted"]), key=lambda t: t["median_ms"])
    assert served.runtime_info.name == fastest["name"] == served.runtime.name
    assert served.runtime_info.state == "chosen"

    # and a real API process: the variant is loaded with the version and its trial shows in GET /models
    server = start_server(Registry(url=str(db.engine.url), db=db, store=store), tmp_path / "server.log",
                          default_model="pneumonia", runtime_candidates='["onnxruntime"]')
    try:
        serving = wait_runtime_chosen(server.url, "pneumonia", timeout=240)
        sample = (REPO / "data" / "samples" / "nih_cxr_1024.png").read_bytes()
        answer = httpx.post(server.url + "/predict", files=[("file", ("x.png", sample, "image/png"))], timeout=60)
    finally:
        stop_server(server)
    assert serving is not None and serving["runtime_state"] == "chosen", serving
    trial = {t["name"]: t for t in serving["runtime_trials"]}["int8_static"]
    assert trial["accepted"] and "admitted by cxr quantize" in trial["reason"], serving
    assert answer.status_code == 200, answer.text
    expected = loaded.predict_images([read_image(sample)])[0][0]
    assert abs(answer.json()["probabilities"]["Pneumonia"] - expected) <= PROBABILITY_BOUND


def test_a_changed_int8_artifact_is_refused_and_the_exact_runtimes_serve(
    registry: tuple[Database, LocalArtifactStore],
) -> None:
    db, store = registry
    assert main(["quantize", "pneumonia:1", "--calibration-images", "128", "--candidates", "int8_static"]) == 0
    with db.session() as session:
        record = resolve(session, "pneumonia:1")
    path = store.path_of(record.metrics["reduced_precision"]["int8_static"]["artifact_uri"])
    path.write_bytes(path.read_bytes() + b"\0")
    assert load_variants(record, store) == []
