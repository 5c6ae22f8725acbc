"""Plain configuration objects shared by the CLI, the worker and the API.

They are pydantic models so that one definition validates a CLI call, a `POST /training-jobs` body and
a stored checkpoint alike, with errors that name the field. Nothing here reads the environment.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ml.errors import ConfigError

# Counts a caller may set are bounded where they are parsed: within a 32-bit signed integer, as the
# registry's integer columns are, and seeds within what NumPy takes (torch takes more).
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**32 - 1
TTAMode = Literal["none", "hflip", "crops"]  # test-time views (ml.tta)
TTA_MODES: tuple[str, ...] = ("none", "hflip", "crops")
# a mode, or the bool `tta` once was (true: the mirror)
TTAField = Annotated[TTAMode, BeforeValidator(lambda v: ("hflip" if v else "none") if isinstance(v, bool) else v)]


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AugmentConfig(_Config):
    """Training-time augmentation, applied to whole batches on the training device."""

    enabled: bool = True
    rotation: float = Field(15.0, ge=0, le=45, description="max rotation in degrees (+-)")
    translate: float = Field(0.10, ge=0, le=0.5, description="max translation as a fraction of the side")
    scale: tuple[float, float] = Field((0.8, 1.0), description="random resized crop: area fraction range")
    ratio: tuple[float, float] = Field((0.9, 1.1), description="random resized crop: aspect ratio range")
    hflip: bool = Field(False, description="random horizontal flip (off by default: anatomy is lateral)")
    brightness: float = Field(0.1, ge=0, le=1, description="additive brightness jitter (+-)")
    contrast: float = Field(0.1, ge=0, le=1, description="multiplicative contrast jitter (1 +-)")
    gamma: tuple[float, float] = Field((1.0, 1.0), description="gamma range, drawn log-uniformly (x ** g); "
                                       "(1, 1) is off. Radiographs differ in exposure and processing curves")

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1; got {self.scale}")
        lo, hi = self.ratio
        if not 0 < lo <= hi:
            raise ValueError(f"ratio must satisfy 0 < min <= max; got {self.ratio}")
        lo, hi = self.gamma
        if not 0.2 <= lo <= hi <= 5:
            raise ValueError(f"gamma must satisfy 0.2 <= min <= max <= 5; got {self.gamma}")
        return self


class DataConfig(_Config):
    """How an image becomes a model input; stored in every checkpoint, used by training and serving."""

    input_size: int = Field(ge=8, le=1024)
    in_chans: Literal[1, 3] = 1
    resize_mode: Literal["shorter", "squash"] = Field(
        "shorter", description="'shorter': resize the shorter side, then center-crop; 'squash': ignore aspect"
    )
    crop_pct: float = Field(1.0, gt=0.5, le=1.0, description="center crop as a fraction of the resized side")
    normalization: Literal["minus_one_one", "imagenet", "dataset"] = "minus_one_one"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @model_validator(mode="after")
    def _stats(self) -> DataConfig:
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std must have the same length")
        if self.normalization == "dataset" and not self.mean:
            raise ValueError("normalization 'dataset' needs mean and std computed from the training images")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        return self


class TrainParams(_Config):
    """Hyper-parameters of one training run (everything but the model, the data and where to write)."""

    # data
    input_size: int | None = Field(None, ge=8, le=1024, description="default: the model's own size")
    in_chans: Literal[1, 3] | None = Field(None, description="default: the model's own")
    normalization: Literal["minus_one_one", "imagenet", "dataset"] | None = None
    resize_mode: Literal["shorter", "squash"] = "shorter"
    crop_pct: float = Field(1.0, gt=0.5, le=1.0)
    augment: AugmentConfig = AugmentConfig()
    train_split: str = Field("train", max_length=50)
    val_split: str = Field("val", max_length=50)
    test_split: str | None = Field("test", max_length=50)
    max_train_samples: int | None = Field(None, ge=1, le=MAX_COUNT, description="cap on training rows (quick runs)")
    max_eval_samples: int | None = Field(None, ge=1, le=MAX_COUNT,
                                         description="cap on validation/test rows (quick runs)")
    cache_images: bool = Field(True, description="keep preprocessed images in memory after the first epoch")
    # model
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    pretrained: bool = False
    pretrained_path: str | None = None
    # optimisation
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(64, ge=1, le=4096)
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    scheduler: Literal["plateau", "cosine", "none"] = "plateau"
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(5, ge=0, le=MAX_COUNT)
    loss: Literal["bce", "ce", "focal", "auto"] = Field("auto", description="auto: ce for multi-class, else bce")
    pos_weight: bool = Field(False, description="BCE positive-class weights from the training labels")
    focal_gamma: float = Field(2.0, ge=0, le=10)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    amp: Literal["auto", "off", "fp16", "bf16"] = Field("auto", description="auto: fp16 on CUDA, off on CPU")
    accum_steps: int = Field(1, ge=1, le=1024, description="gradient accumulation steps")
    freeze_epochs: int = Field(0, ge=0, le=MAX_COUNT, description="epochs with the backbone frozen before unfreezing")
    early_stopping_patience: int | None = Field(None, ge=1, le=MAX_COUNT)
    grad_clip: float | None = Field(None, gt=0, le=1000)
    ema_decay: float | None = Field(None, gt=0, lt=1, description="keep an exponential moving average of the weights "
                                    "(decay per optimiser step, e.g. 0.999): validated, kept as best and shipped")
    # runtime
    num_workers: int = Field(0, ge=0, le=64)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    devices: int = Field(1, ge=1, le=64, description="devices to train on, one process each (data parallel; "
                                                     "batch_size is the global batch); at most what the worker owns")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    threshold_policy: Literal["f1", "youden", "youden_mid", "sensitivity"] = Field(
        "youden", description="per-label operating point chosen on validation data: max F1, max Youden J "
        "(prevalence-independent), the middle of the cuts within 0.02 of the max J (robust to a "
        "nearly separable validation set), or the highest cut keeping validation sensitivity at "
        "`threshold_sensitivity` (a margin for specificity when test images are collected apart)")
    threshold_sensitivity: float = Field(0.95, gt=0, le=1, description="target sensitivity of policy 'sensitivity'")
    tta: TTAField = Field("none", description="test-time views the final evaluation averages (ml.tta): 'none', "
                                "'hflip' (true: the mirror) or 'crops' (five crops of 90% of the side and the "
                                "whole image); the model is served with the same")
    cancel_check_every: int = Field(1, ge=1, le=MAX_COUNT, description="steps between cancellation checks "
                                    "(a check reads a flag in memory: every step by default)")


    @model_validator(mode="after")
    def _global_batch_splits(self) -> TrainParams:
        if self.batch_size % self.devices:
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of devices ({self.devices}): it is "
                             "the global batch, split evenly across the devices")
        return self


class TrainConfig(_Config):
    """A whole training run: which model, on which data, with which parameters."""

    model: str
    dataset: str
    data_root: str
    dataset_options: dict[str, Any] = Field(default_factory=dict)
    params: TrainParams = TrainParams()

    @classmethod
    def parse(cls, data: dict[str, Any]) -> TrainConfig:
        """Validate `data`; a `ConfigError` names each bad field."""
        from pydantic import ValidationError

        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc)) from None


def format_validation_error(exc: Exception) -> str:
    """One line per problem: `field.path: message`."""
    errors = getattr(exc, "errors", lambda: [])()
    lines = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        lines.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(lines) or str(exc)


def merge_tables(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` laid over it, table by table (a recipe's `[params]` with the overrides of a command
    line or of an ensemble member); neither is changed."""
    merged = dict(base)
    for key, value in extra.items():
        both_tables = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = merge_tables(merged[key], value) if both_tables else value
    return merged


def load_recipe(path: Path) -> dict[str, Any]:
    """A training recipe (TOML) as a dict; `ConfigError` naming the file when it is missing or malformed."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"recipe not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
