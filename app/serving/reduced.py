"""Admitted reduced-precision variants of a served model version, offered to its runtime trial.

`cxr quantize` records, with a model version, which variants (int8 in ONNX Runtime or OpenVINO, bf16) kept every
label's test AUROC within 0.005 of fp32 (`registry.reduced_precision`). When the version loads, the model cache reads each admitted
variant (the int8 ONNX model through the artifact store, checked against its sha256); once the exact
runtimes' trial has chosen, `ServedModel.choose_runtime` times these too and serves the fastest. Their
agreement with eager is not the trial's 1e-4 (it is the admission's bound), so a variant never serves a
model that no admission covers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ml.inference import LoadedModel
from ml.runtime import Runtime
from registry.artifacts import LocalArtifactStore
from registry.errors import RegistryError
from registry.records import ModelVersionRecord
from registry.reduced_precision import admitted_variants

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    runtime: str  # int8_static | int8_openvino | bf16
    onnx: bytes | None  # the int8 model
    admission: dict[str, object]

    def build(self, loaded: LoadedModel, threads: int | None) -> Runtime:
        from ml.quantize import (
            INT8_CANDIDATES,
            bf16_available,
            bf16_runtime,
            int8_runtime,
            openvino_available,
        )

        if loaded.device.type == "cuda":  # a GPU server (app.serving.device): the admission holds for bf16
            if self.runtime == "bf16":
                import torch

                from ml.gpu_runtimes import cuda_autocast

                return Runtime("bf16", cuda_autocast(loaded.model, torch.bfloat16))
            raise ValueError(f"variant {self.runtime} runs on the CPU, not on a GPU server")
        if self.runtime in INT8_CANDIDATES and self.onnx is not None:
            if self.runtime == "int8_openvino" and not openvino_available():
                raise ValueError("variant int8_openvino needs OpenVINO, which is not installed")
            return int8_runtime(self.runtime, self.onnx, threads)
        if self.runtime == "bf16" and bf16_available():
            return bf16_runtime(loaded.model)
        raise ValueError(f"variant {self.runtime} cannot run here")

    @property
    def summary(self) -> str:
        a = self.admission
        return (f"admitted by cxr quantize on {a.get('dataset')}: AUROC within {a.get('max_auroc_change')}, "
                f"probabilities within {a.get('max_probability_diff')}")


def load_variants(record: ModelVersionRecord, artifacts: LocalArtifactStore) -> list[Variant]:
    """The admitted variants of `record` that can be read; one that cannot is logged and left out."""
    from ml.quantize import INT8_CANDIDATES

    out = []
    for name, entry in admitted_variants(record).items():
        onnx = None
        if entry.get("artifact_uri"):
            try:
                onnx = artifacts.read_bytes(str(entry["artifact_uri"]), sha256=entry.get("sha256"))
            except (RegistryError, OSError, ValueError) as exc:
                log.error("%s: the %s variant is refused: %s", record.ref, name, exc)
                continue
        elif name in INT8_CANDIDATES:  # an int8 variant without its model
            continue
        out.append(Variant(name, onnx, entry))
    return out
