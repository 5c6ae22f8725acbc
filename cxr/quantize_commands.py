"""`cxr quantize NAME:VERSION`: try int8 and bf16 for a registered model version and record what is admitted."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quantize",
        help="try int8 (static, calibrated on the training split; in ONNX Runtime and in OpenVINO) and bf16 for a "
             "model version against fp32 on its test split; record each with the version (admitted when every "
             "label's AUROC stays within 0.005 and probabilities within the stated bound), an int8 model as an "
             "artifact",
    )
    p.add_argument("ref", help="NAME:VERSION (or NAME@ALIAS)")
    p.add_argument("--dataset", help="a registered dataset (default: the one the version was trained on)")
    p.add_argument("--candidates", default="int8_static,int8_openvino,bf16",
                   help="comma-separated (default int8_static,int8_openvino,bf16)")
    p.add_argument("--calibration-images", type=int, default=256, help="training images for int8's ranges")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for the timings (serving's: 1)")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args: argparse.Namespace) -> int:
    import tempfile
    import uuid
    from pathlib import Path

    from ml.data import create_dataset
    from ml.errors import CXRError
    from ml.inference import LoadedModel
    from ml.quantize import trial
    from registry.artifacts import LocalArtifactStore
    from registry.datasets import get_dataset
    from registry.db import Database
    from registry.reduced_precision import record_variant
    from registry.settings import RegistrySettings
    from registry.versions import resolve

    settings = RegistrySettings()
    db, store = Database(settings.database_url), LocalArtifactStore(settings.artifact_root)
    with db.session() as session:
        record = resolve(session, args.ref)
        if args.dataset:
            dataset = get_dataset(session, name=args.dataset)
        elif record.dataset_id is not None:
            dataset = get_dataset(session, dataset_id=record.dataset_id)
        else:
            raise CXRError(f"{record.ref} records no dataset: name its test data with --dataset")
    assert record.checkpoint is not None
    loaded = LoadedModel.from_checkpoint(store.read_bytes(record.checkpoint.uri, sha256=record.checkpoint.sha256))
    ds = create_dataset(dataset.kind, dataset.location, **dataset.options)
    if ds.pathologies != loaded.labels:
        raise CXRError(f"dataset {dataset.name}'s labels {ds.pathologies} differ from {record.ref}'s {loaded.labels}")
    result = trial(loaded, ds.split("train"), ds.split("test"), candidates=args.candidates.split(","),
                   calibration_images=args.calibration_images, threads=args.threads,
                   progress=lambda message: print(f"{record.ref}: {message}", flush=True))
    with db.session() as session:
        for admission in result.admissions:
            uri = sha = None
            model = result.models.get(admission.runtime)
            if admission.admitted and model is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    local = Path(tmp) / "model.int8.onnx"
                    local.write_bytes(model)
                    stored = store.put_file(
                        local, f"models/{record.name}/{record.version}/{admission.runtime}-{uuid.uuid4().hex}.onnx")
                uri, sha = stored.uri, stored.sha256
            record_variant(session, version_id=record.id, runtime=admission.runtime,
                           admission={**admission.as_dict(), "dataset": dataset.name}, artifact_uri=uri, sha256=sha)
            verdict = "ADMITTED" if admission.admitted else f"refused ({admission.reason})"
            print(f"{record.ref} {admission.runtime}: {verdict}")
            print(json.dumps({k: v for k, v in admission.as_dict().items() if k not in ("auroc", "auroc_fp32")}))
    db.dispose()
    return 0
