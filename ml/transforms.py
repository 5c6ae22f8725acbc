"""Image to model input, the same code for training and serving.

`Preprocess(data_cfg)` turns a float HxW image in [0, 1] into a (1, S, S) tensor in [0, 1] (`resize`),
and a batch of those into normalised (B, C, S, S) model inputs (`finish`). Training inserts
`BatchAugment` between the two; serving calls `preprocess(image)` which does both steps. Augmentation
works on whole batches with one affine warp so it costs little beside the model. (Small single-purpose
transforms, in MONAI's spirit.)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ml.config import AugmentConfig, DataConfig
from ml.models.base import ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# A resize whose output or first pass exceeds this is rearranged (see `Preprocess.resize`): a bound of
# 16 MB of floats, far above any radiograph's (a 4320 px image at 224 px: 4320 x 224 = 1M).
MAX_RESIZED_PIXELS = 4_000_000


def resolve_data_config(
    model_cfg: ModelConfig,
    *,
    input_size: int | None = None,
    in_chans: int | None = None,
    normalization: str | None = None,
    resize_mode: str = "shorter",
    crop_pct: float = 1.0,
    mean: tuple[float, ...] = (),
    std: tuple[float, ...] = (),
) -> DataConfig:
    """The data config for a model, with the model's defaults where no override is given."""
    norm = normalization or model_cfg.normalization
    chans = in_chans or model_cfg.in_chans
    if norm == "minus_one_one":
        mean, std = (0.5,) * chans, (0.5,) * chans
    elif norm == "imagenet":
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if chans == 3 else ((0.449,), (0.226,))
    elif norm == "dataset" and mean and len(mean) == 1 and chans == 3:
        mean, std = tuple(mean) * 3, tuple(std) * 3
    return DataConfig(
        input_size=input_size or model_cfg.input_size,
        in_chans=chans,
        resize_mode=resize_mode,
        crop_pct=crop_pct,
        normalization=norm,
        mean=tuple(mean),
        std=tuple(std),
    )


class Preprocess:
    """Deterministic preprocessing built from a `DataConfig`."""

    def __init__(self, cfg: DataConfig) -> None:
        self.cfg = cfg
        self._mean = torch.tensor(cfg.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(cfg.std, dtype=torch.float32).view(1, -1, 1, 1)

    @property
    def source_side(self) -> int:
        """The side the resize scales the image's short side (or both sides, squashing) to before cropping:
        an image decoded reduced (`ml.decoding`) keeps a margin over it."""
        return round(self.cfg.input_size / self.cfg.crop_pct)

    def resize(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """HxW float image in [0, 1] to a (1, S, S) float tensor in [0, 1]."""
        x = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)
        if x.ndim != 2:
            raise ValueError(f"expected a 2-D grayscale image; got shape {tuple(x.shape)}")
        x = x[None, None]
        size = self.cfg.input_size
        h, w = x.shape[-2:]
        if self.cfg.resize_mode == "squash":
            target = round(size / self.cfg.crop_pct)
            new_h, new_w = target, target
        else:
            short = round(size / self.cfg.crop_pct)
            if round(max(h, w) * short / min(h, w)) * short > MAX_RESIZED_PIXELS:
                # An extreme strip (1 x 60M pixels scaled so its short side is `short` would be gigabytes):
                # keep only the centre square that the crop below keeps anyway, then resize that.
                x, h, w = _centre_square(x), min(h, w), min(h, w)
            scale = short / min(h, w)
            new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
        if (new_h, new_w) != (h, w):
            x = _interpolate(x, new_h, new_w)
        top, left = (new_h - size) // 2, (new_w - size) // 2
        x = x[..., top : top + size, left : left + size]
        return x[0].clamp_(0.0, 1.0)

    def finish(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 1, S, S) in [0, 1] to normalised (B, C, S, S) on the batch's device."""
        if self.cfg.in_chans == 3 and batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        mean = self._mean.to(batch.device, batch.dtype)
        std = self._std.to(batch.device, batch.dtype)
        return (batch - mean) / std

    def __call__(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        """One image to one normalised (C, S, S) model input."""
        return self.finish(self.resize(image)[None])[0]

    def batch(self, images: list[np.ndarray]) -> torch.Tensor:
        return self.finish(torch.stack([self.resize(im) for im in images]))


def _centre_square(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top : top + side, left : left + side]


def _interpolate(x: torch.Tensor, new_h: int, new_w: int) -> torch.Tensor:
    """Antialiased bilinear resize of (1, 1, H, W). PyTorch resizes the last axis first, so a tall strip
    squashed to a square would first become H x new_w (60M x 224 floats for a 60M x 1 image): when that
    pass would be large, the image is resized transposed, its long axis first."""
    h, w = x.shape[-2:]
    if h * new_w > MAX_RESIZED_PIXELS and w * new_h < h * new_w:
        return _interpolate(x.transpose(-1, -2), new_w, new_h).transpose(-1, -2)
    return F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)


class BatchAugment:
    """Random affine (rotation, translation, resized crop, flip), brightness/contrast and gamma for a batch."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.cfg.enabled:
            return batch
        b, device = batch.shape[0], batch.device

        def uniform(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(b, generator=generator)

        c = self.cfg
        angle = uniform(-c.rotation, c.rotation) * math.pi / 180
        area = uniform(*c.scale)
        log_ratio = uniform(math.log(c.ratio[0]), math.log(c.ratio[1]))
        ratio = torch.exp(log_ratio)
        # Fraction of the input each output axis spans (a random resized crop), at most the whole image.
        sx = torch.sqrt(area * ratio).clamp(max=1.0)
        sy = torch.sqrt(area / ratio).clamp(max=1.0)
        # Crop centre: anywhere the crop fits, plus the requested translation.
        tx = uniform(-1, 1) * (1 - sx) + uniform(-c.translate, c.translate) * 2
        ty = uniform(-1, 1) * (1 - sy) + uniform(-c.translate, c.translate) * 2
        flip = torch.ones(b)
        if c.hflip:
            flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([sx * cos * flip, -sy * sin, tx], dim=1),
                torch.stack([sx * sin * flip, sy * cos, ty], dim=1),
            ],
            dim=1,
        ).to(device, batch.dtype)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        brightness = uniform(-c.brightness, c.brightness).to(device, batch.dtype).view(b, 1, 1, 1)
        contrast = uniform(1 - c.contrast, 1 + c.contrast).to(device, batch.dtype).view(b, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * contrast + mean + brightness
        out = out.clamp_(0.0, 1.0)
        if c.gamma != (1.0, 1.0):  # drawn only when on, so recipes without it keep their random sequence
            gamma = torch.exp(uniform(math.log(c.gamma[0]), math.log(c.gamma[1])))
            out = out.clamp(min=1e-6).pow(gamma.to(device, batch.dtype).view(b, 1, 1, 1))
        return out


def compute_mean_std(images: list[np.ndarray] | np.ndarray, preprocess: Preprocess) -> tuple[float, float]:
    """Dataset statistics (one channel) over resized training images, for 'dataset' normalisation."""
    total = total_sq = 0.0
    count = 0
    for image in images:
        x = preprocess.resize(image).double()
        total += float(x.sum())
        total_sq += float((x * x).sum())
        count += x.numel()
    if count == 0:
        raise ValueError("cannot compute statistics of an empty image set")
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean * mean, 1e-12))
    return mean, std
