"""The API process's settings: read once from `CXR_*` environment variables, overridable in tests."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from registry.settings import REPO_ROOT, RegistrySettings


class AppSettings(RegistrySettings):
    host: str = Field("127.0.0.1", description="address the API listens on")
    port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes (each loads its own models)")
    shutdown_grace_seconds: int = Field(
        30, ge=1, description="on SIGTERM, how long requests in flight may take to finish before the API exits"
    )
    default_model: str = Field("pneumonia", description="model served when a request names none (its production alias)")
    warm_models: list[str] = Field(default_factory=list, description="more model references to load at start-up")
    model_cache_size: int = Field(4, ge=1, le=64, description="loaded models kept in memory")
    max_upload_bytes: int = Field(32 * 2**20, ge=1024, description="largest accepted upload, per file")
    max_request_bytes: int = Field(
        64 * 2**20, ge=1024, description="largest request body (files and framing), refused while read"
    )
    # 40M: the decoding budget of one upload (README, "Upload decoding budget") holds for the costliest
    # legal image at this size (a 40M-pixel RGBA PNG: ~330 MB above idle); the largest chest detectors
    # give ~18M pixels (4320 x 4320)
    max_image_pixels: int = Field(
        40_000_000, ge=1024, description="largest decoded image (width x height; DICOM also counts frames and "
                                         "colour samples)"
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
    alias_refresh_seconds: float = Field(5.0, gt=0, description="how often served aliases are re-resolved")
    samples_dir: Path = Field(REPO_ROOT / "data" / "samples", description="X-rays the web page offers")
    # access control and overload
    open_predict: bool = Field(
        True, description="POST /predict and /gradcam need no API key (the local web page works); false: a key "
                          "with scope predict"
    )
    max_in_flight: int = Field(
        64, ge=1, description="requests one API process handles at once; beyond it 503 with Retry-After at once"
    )


class BootstrapSettings(RegistrySettings):
    """`cxr bootstrap`'s settings (the compose `migrate` service): the registry's, and the first admin key."""

    bootstrap_admin_key: SecretStr | None = Field(
        None, description="the admin API key `cxr bootstrap` installs (at least 24 characters); empty: one is "
                          "generated and printed once"
    )
