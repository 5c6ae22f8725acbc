"""The API process's settings: read once from `CXR_*` environment variables, overridable in tests."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from registry.settings import REPO_ROOT, RegistrySettings


class AppSettings(RegistrySettings):
    host: str = Field("127.0.0.1", description="address the API listens on")
    port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes (each loads its own models)")
    shutdown_grace_seconds: int = Field(
        30, ge=1, description="on SIGTERM, how long requests in flight may take to finish before the API exits"
    )
    # replicas behind a proxy (issue 22): see app/drain.py and deploy/haproxy/haproxy.cfg
    drain_seconds: float = Field(
        0.0, ge=0, le=300,
        description="on SIGTERM, how long /health/ready answers 503 while requests are still served, so a "
                    "proxy stops sending new ones before the API stops accepting (0: stop at once)"
    )
    replica_id: str = Field(
        default_factory=socket.gethostname, min_length=1, max_length=128,
        description="names this replica in /metrics (cxr_replica_info); default: the host name (a "
                    "container's id, a pod's name)"
    )
    default_model: str = Field("pneumonia", description="model served when a request names none (its production alias)")
    warm_models: list[str] = Field(default_factory=list, description="more model references to load at start-up")
    model_cache_size: int = Field(4, ge=1, le=64, description="loaded models kept in memory")
    max_upload_bytes: int = Field(32 * 2**20, ge=1024, description="largest accepted upload, per file")
    max_request_bytes: int = Field(
        64 * 2**20, ge=1024, description="largest request body (files and framing), refused while read"
    )
    # 40M: the decoding budget of one upload (docs/security.md, "Upload decoding budget") holds for the costliest
    # legal image at this size (a 40M-pixel RGBA PNG: ~330 MB above idle); the largest chest detectors
    # give ~18M pixels (4320 x 4320)
    max_image_pixels: int = Field(
        40_000_000, ge=1024, description="largest decoded image (width x height; DICOM also counts frames and "
                                         "colour samples)"
    )
    reduced_decoding: bool = Field(
        True, description="decode an upload far larger than the model's input reduced (a JPEG in the DCT domain, a "
                          "gray PNG to block means; the model input within 0.03 of the full decode's); false: in "
                          "full, exactly as training reads it"
    )
    max_files_per_request: int = Field(16, ge=1, le=256, description="files one /predict or /gradcam request may carry")
    inference_threads: int | None = Field(
        None, ge=1, description="torch intra-op threads per pool worker (default: the cores divided among them)"
    )
    inference_workers: int = Field(
        2, ge=1, le=64, description="threads that decode, preprocess and run models at once (inference pool)"
    )
    # performance (issue 7): micro-batching, the inference queue bound and the choice of runtime per model
    # 4: on the CPU image, DenseNet-121@224 under 16 clients served 39.7 req/s with p99 699 ms at 4, against
    # 33.8 req/s and 1126 ms at 16 (39.1 req/s, p99 547 ms unbatched); a GPU gains from larger batches
    batch_max_size: int = Field(
        4, ge=1, le=256, description="images one forward pass may gather from concurrent requests (1: no batching)"
    )
    batch_max_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="how long a batch waits for requests already being decoded to join it"
    )
    inference_queue_limit: int = Field(
        64, ge=1, description="images waiting for a model beyond which /predict answers 503 with Retry-After"
    )
    runtime_candidates: list[str] = Field(
        default_factory=lambda: ["channels_last", "onnxruntime"],
        description="runtimes tried against eager in the background when a model loads ([]: serve eager)",
    )
    # GPU serving (issue 22): see app/serving/device.py
    serve_device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="where models are served: cpu, cuda (refused at start-up without a GPU), or auto (the "
                           "GPU when there is one)"
    )
    gpu_batch_max_size: int = Field(
        32, ge=1, le=256, description="on a GPU: images one forward pass may gather (replaces batch_max_size)"
    )
    gpu_batch_max_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="on a GPU: how long a batch waits for more requests (replaces "
                                        "batch_max_wait_ms)"
    )
    gpu_runtime_candidates: list[str] = Field(
        default_factory=lambda: ["channels_last", "cuda_graphs", "onnxruntime_tensorrt", "onnxruntime_cuda"],
        description="on a GPU: runtimes tried against eager when a model loads (those the machine lacks are "
                    "listed as skipped, with the reason); bf16 autocast serves when `cxr quantize` admitted a "
                    "bf16 variant",
    )
    alias_refresh_seconds: float = Field(5.0, gt=0, description="how often served aliases are re-resolved")
    samples_dir: Path = Field(REPO_ROOT / "data" / "samples", description="X-rays the web page offers")
    # issue 17: what happens to an upload the input gate (ml/trust) flags as not a chest X-ray. warn: the
    # answer carries input_check and a warning (the gate flags ~1-2% of real radiographs from the sets it
    # was measured on, more from hospitals it never saw, and a refusal would leave no way round); reject: 422
    input_gate: Literal["warn", "reject"] = Field(
        "warn", description="warn: answer with input_check and a warning when an upload does not look like a "
                            "chest X-ray; reject: refuse it with 422 not_a_chest_xray and the reasons"
    )
    # access control and overload
    open_predict: bool = Field(
        True, description="POST /predict and /gradcam need no API key (the local web page works); false: a key "
                          "with scope predict"
    )
    max_in_flight: int = Field(
        64, ge=1, description="requests without a valid API key one API process handles at once; beyond it 503 "
                              "with Retry-After at once"
    )
    max_in_flight_keyed: int = Field(
        32, ge=1, description="requests with a valid API key handled at once, counted apart from anonymous ones "
                              "(so stalled anonymous uploads cannot crowd out keyed callers); health and metrics "
                              "are never counted"
    )
    failed_key_limit: int = Field(
        20, ge=1, description="wrong or revoked API keys one client address may present per minute; then 429 with "
                              "Retry-After for any request that presents a key"
    )
    # slow clients: every phase of reading a request is bounded (see app.api.protocol and app.api.limits)
    max_header_bytes: int = Field(32 * 1024, ge=1024, description="largest request head (request line and "
                                                                 "headers); beyond it 431")
    max_headers: int = Field(100, ge=8, le=10_000, description="most header fields in a request; beyond it 431")
    header_timeout_seconds: float = Field(10.0, gt=0, description="time a request head may take to arrive "
                                                                  "from its first byte; then 408")
    body_timeout_seconds: float = Field(120.0, gt=0, description="time a request body may take to arrive in "
                                                                 "all; then 408")
    body_min_rate_bytes: int = Field(16 * 1024, ge=1, description="slowest average rate (bytes/s) a request "
                                                                  "body may arrive at, after the grace below; "
                                                                  "then 408")
    body_rate_grace_seconds: float = Field(5.0, ge=0, description="time before the minimum body rate applies")


class BootstrapSettings(RegistrySettings):
    """`cxr bootstrap`'s settings (the compose `migrate` service): the registry's, and the first admin key."""

    bootstrap_admin_key: SecretStr | None = Field(
        None, description="the admin API key `cxr bootstrap` installs (at least 24 characters); empty: one is "
                          "generated and printed once"
    )
