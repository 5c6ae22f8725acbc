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
    max_image_pixels: int = Field(60_000_000, ge=1024, description="largest decoded image (width x height)")
    max_files_per_request: int = Field(16, ge=1, le=256, description="files one /predict or /gradcam request may carry")
    inference_threads: int | None = Field(None, ge=1, description="torch intra-op threads (default: the cores)")
    inference_workers: int = Field(
        2, ge=1, le=64, description="threads that decode, preprocess and run models at once (inference pool)"
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
