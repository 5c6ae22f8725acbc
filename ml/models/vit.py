"""`vit_tiny`: a small Vision Transformer for 28x28 images, written here (no timm).

Patch embedding (4x4 patches: a 7x7 token grid at 28 px; the grid follows `input_size / patch_size`),
a class token, a learned position embedding, pre-norm transformer blocks, a final norm and a linear head
on the class token. It follows Dosovitskiy et al. (2021) and the DeiT-Tiny layout, scaled down.
Grad-CAM targets the last block's first norm; `cam_reshape="vit_tokens"` turns its (B, 1+N, D) tokens
into a (B, D, h, w) map.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ml.models.base import ModelConfig
from ml.models.factory import register_model
from ml.models.layers import ClassifierModel


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (PyTorch's fused attention kernel)."""

    def __init__(self, dim: int, num_heads: int, drop: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.drop = drop
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop: float) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, dim), nn.Dropout(drop)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(ClassifierModel):
    """Patch embedding, class token, position embedding, `depth` blocks, final norm, class-token head.

    Inputs of another size than `cfg.input_size` still work: the position embedding is resized
    (bicubic) to the new token grid, as DeiT does when fine-tuning at a higher resolution.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        patch_size: int = 4,
        embed_dim: int = 128,
        depth: int = 6,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.patch_size = patch_size
        grid = cfg.input_size // patch_size
        if grid < 1:
            raise ValueError(f"input_size {cfg.input_size} is smaller than patch_size {patch_size}")
        self.patch_embed = nn.Conv2d(cfg.in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.Sequential(
            *(Block(embed_dim, num_heads, mlp_ratio, drop_rate) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.classifier = self.build_classifier(cfg.num_classes)
        self.apply(_init_weights)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def build_classifier(self, num_classes: int) -> nn.Module:
        linear = nn.Linear(self.norm.normalized_shape[0], num_classes)
        _init_weights(linear)
        return linear

    def _position_embedding(self, grid: int) -> torch.Tensor:
        """The learned embedding, resized when the token grid differs from the one it was made for."""
        pos = self.pos_embed
        old = math.isqrt(pos.shape[1] - 1)
        if grid == old:
            return pos
        patches = pos[:, 1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
        return torch.cat([pos[:, :1], patches.flatten(2).transpose(1, 2)], dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) images to normalised (B, 1+N, D) tokens, the class token first."""
        tokens = self.patch_embed(x)
        if tokens.shape[-1] != tokens.shape[-2]:
            raise ValueError(f"vit_tiny needs square inputs; got {tuple(x.shape[-2:])}")
        tokens = tokens.flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self._position_embedding(math.isqrt(tokens.shape[1]))
        return self.norm(self.blocks(self.pos_drop(tokens)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features[:, 0])


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal linear weights (std 0.02) and zero biases, as in ViT/DeiT."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


@register_model(
    ModelConfig(
        name="vit_tiny",
        input_size=28,
        cam_layer="blocks.5.norm1",
        cam_reshape="vit_tokens",
        description="Small ViT for 28x28 images: 4x4 patches, 6 pre-norm blocks, dim 128, 4 heads.",
    )
)
def vit_tiny(cfg: ModelConfig, *, pretrained_path: Path | None = None, **kwargs: Any) -> VisionTransformer:
    """Options: patch_size, embed_dim, depth, num_heads, mlp_ratio, drop_rate; the CAM layer follows depth."""
    depth = int(kwargs.get("depth", 6))
    return VisionTransformer(cfg.replace(cam_layer=f"blocks.{depth - 1}.norm1"), **kwargs)
