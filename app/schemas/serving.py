"""What `/predict`, `/gradcam` and `/models` answer."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from app.schemas.quality import ModelQuality
from app.schemas.reading import Reading
from registry.records import ModelVersionRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from app.serving.served import ServedModel

_PROBS = {"Atelectasis": 0.081, "Effusion": 0.642, "Pneumonia": 0.377}
_THRESHOLDS = {"Atelectasis": 0.31, "Effusion": 0.42, "Pneumonia": 0.29}


class ModelIdentity(BaseModel):
    """Which model version answered."""

    name: str = Field(examples=["pneumonia"])
    version: int = Field(examples=[3])
    ref: str = Field(
        description="`name:version`, a reference that always names this version", examples=["pneumonia:3"]
    )
    alias: str | None = Field(
        description="the alias the request went through; null for `name:version`", examples=["production"]
    )
    architecture: str = Field(examples=["simple_cnn"])
    task: str = Field(description="binary, multilabel or multiclass", examples=["multilabel"])

    @classmethod
    def of(cls, record: ModelVersionRecord, alias: str | None) -> ModelIdentity:
        return cls(
            name=record.name,
            version=record.version,
            ref=record.ref,
            alias=alias,
            architecture=record.architecture,
            task=record.task,
        )


class Timing(BaseModel):
    decode: float = Field(description="decoding and resizing this file", examples=[12.4])
    inference: float = Field(
        description="the forward pass (shared by the files of one request)", examples=[3.1]
    )
    total: float = Field(description="the whole request, reading the upload included", examples=[21.7])


class Scores(BaseModel):
    probabilities: dict[str, float] = Field(
        description="every label of the model with its probability", examples=[_PROBS]
    )
    thresholds: dict[str, float] = Field(
        description="per-label operating points chosen on validation data", examples=[_THRESHOLDS]
    )
    positive: list[str] = Field(
        description="labels at or above their threshold (multiclass: the arg-max)",
        examples=[["Effusion", "Pneumonia"]],
    )


class PredictResult(Scores, Reading):
    model: ModelIdentity
    filename: str = Field(
        description="the upload's name (for matching results; never used as a path)", examples=["chest.png"]
    )
    width: int = Field(examples=[1024])
    height: int = Field(examples=[1024])
    timing_ms: Timing


class CamTarget(BaseModel):
    label: str = Field(examples=["Effusion"])
    probability: float = Field(examples=[0.642])
    overlay_base64: str = Field(
        description="the overlay at the upload's size reduced to max_side, base64, encoded as overlay_media_type",
        examples=["/9j/4AAQSkZJRgABAQAAAQABAAD..."],
    )
    overlay_media_type: str = Field(description="the overlay's encoding: image/jpeg, image/png or image/webp",
                                    examples=["image/jpeg"])
    overlay_png_base64: str | None = Field(
        None, description="the same text as overlay_base64 when the overlay is PNG (overlay_format=png), else "
                          "null: kept for clients written before JPEG became the default",
        examples=[None],
    )
    heatmap: list[list[float]] = Field(
        description="the map averaged to a 16x16 grid, rows top to bottom, in [0, 1]",
        examples=[[[0.0, 0.12], [0.4, 0.93]]],
    )


class GradcamTiming(BaseModel):
    decode: float = Field(examples=[12.4])
    inference: float = Field(examples=[3.1])
    cam: float = Field(description="the CAMs and their overlays", examples=[48.0])
    total: float = Field(examples=[70.2])


class GradcamResult(Scores, Reading):
    model: ModelIdentity
    filename: str = Field(examples=["chest.png"])
    width: int = Field(examples=[1024])
    height: int = Field(examples=[1024])
    method: str = Field(examples=["gradcam"])
    targets: list[CamTarget]
    timing_ms: GradcamTiming


class RuntimeTrial(BaseModel):
    name: str = Field(examples=["onnxruntime"])
    accepted: bool = Field(description="agreed with eager within 1e-4 (the reference itself: always)")
    median_ms: float | None = Field(description="median forward time at batch 1", examples=[4.2])
    max_abs_diff: float | None = Field(description="largest probability difference from eager", examples=[3e-7])
    reason: str = Field("", description="why it was refused")


class ServingInfo(BaseModel):
    """How a loaded version is served: its runtime (chosen in the background after loading) and batching."""

    runtime: str = Field(description="the runtime forward passes use now", examples=["onnxruntime"])
    runtime_state: str = Field(
        description="choosing (eager serves meanwhile), chosen, eager (no candidates) or failed",
        examples=["chosen"],
    )
    runtime_trials: list[RuntimeTrial] = Field(description="each candidate's timing and agreement")
    runtime_message: str = Field("", description="why choosing failed, if it did")
    batch_max_size: int = Field(description="images one forward pass may gather (1: no batching)")
    batches: int = Field(description="forward passes run so far")
    images: int = Field(description="images they held")
    refused: int = Field(description="requests answered 503 because the queue was full")
    gradcam_path: str = Field(
        description="how method=gradcam is computed: 'split' (the trunk up to the CAM layer runs forward-only "
                    "in gradcam_trunk_runtime, back-propagation goes through the rest), 'hooks' (pytorch-grad-cam "
                    "on the whole model: models that cannot be cut) or 'not built' (before the first /gradcam "
                    "or runtime trial)",
        examples=["split"],
    )
    gradcam_trunk_runtime: str | None = Field(None, examples=["onnxruntime"])
    gradcam_message: str = Field(
        "", description="'trying <runtime> for the trunk' while the runtime trial runs; why the split or a trunk "
                        "runtime was refused, if it was")

    @classmethod
    def of(cls, served: ServedModel, show: Callable[[str], str] = str) -> ServingInfo:
        """`show` rewrites the free-text messages (which quote exceptions) for the caller."""
        runtime, batcher = served.runtime_info, served.batcher
        stats = batcher.stats if batcher else None
        return cls(
            runtime=runtime.name,
            runtime_state=runtime.state,
            runtime_trials=[RuntimeTrial.model_validate(t) for t in runtime.trials or []],
            runtime_message=show(runtime.message),
            batch_max_size=batcher.max_size if batcher else 1,
            batches=stats.batches if stats else 0,
            images=stats.images if stats else 0,
            refused=stats.refused if stats else 0,
            gradcam_path=served.cam_info.path,
            gradcam_trunk_runtime=served.cam_info.trunk_runtime,
            gradcam_message=show(served.cam_info.message),
        )


class ModelVersionInfo(BaseModel):
    version: int = Field(examples=[3])
    ref: str = Field(examples=["pneumonia:3"])
    architecture: str = Field(examples=["simple_cnn"])
    task: str = Field(examples=["binary"])
    labels: list[str] = Field(examples=[["Pneumonia"]])
    thresholds: list[float] = Field(examples=[[0.62]])
    input_size: int | None = Field(description="side of the square model input in pixels", examples=[28])
    metrics: dict[str, Any] = Field(
        description="evaluation metrics recorded with the version, by split",
        examples=[{"test": {"mean_auroc": 0.93}}],
    )
    aliases: list[str] = Field(examples=[["production"]])
    quality: ModelQuality = Field(description="this version's stored test evaluation (null fields when unknown)")
    created_at: datetime
    loaded: bool = Field(description="held in the serving cache now")
    serving: ServingInfo | None = Field(None, description="runtime and batching, when loaded")

    @classmethod
    def of(cls, record: ModelVersionRecord, loaded: bool, serving: ServingInfo | None = None) -> ModelVersionInfo:
        return cls(
            version=record.version,
            ref=record.ref,
            architecture=record.architecture,
            task=record.task,
            labels=list(record.labels),
            thresholds=list(record.thresholds),
            input_size=record.data_config.get("input_size"),
            metrics=record.metrics,
            aliases=list(record.aliases),
            quality=ModelQuality.of(record.metrics),
            created_at=record.created_at,
            loaded=loaded,
            serving=serving,
        )


class ModelInfo(BaseModel):
    name: str = Field(examples=["pneumonia"])
    default: bool = Field(description="served when a request names no model")
    aliases: dict[str, int] = Field(description="alias -> version", examples=[{"production": 3}])
    labels: list[str] = Field(
        description="labels of the production version (else the newest)", examples=[["Pneumonia"]]
    )
    quality: ModelQuality = Field(description="the production version's (else the newest's) stored test evaluation")
    versions: list[ModelVersionInfo]


class ModelList(BaseModel):
    default_model: str = Field(examples=["pneumonia"])
    items: list[ModelInfo]
