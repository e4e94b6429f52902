"""Batch augmentation on crops, in torch (cheap enough for a 2-core CPU).

Crops arrive as BGR uint8 (N, H, W, 3), as the pipeline cuts them, and leave as the
model's normalised NCHW input, so training and deployment share ``maskgate.preprocess``'s
spec. Horizontal flips relabel through ``flip_map`` (identity for mask, mirror for yaw).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..specs import InputSpec


@dataclass(frozen=True)
class AugmentOptions:
    flip: bool = True
    max_rotate_degrees: float = 8.0  # residual roll after eye alignment
    max_shift: float = 0.06  # fraction of the crop
    scale: tuple[float, float] = (0.92, 1.08)
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    low_resolution_probability: float = 0.3  # mimic small, upscaled faces
    low_resolution_range: tuple[int, int] = (16, 48)


NO_AUGMENT = AugmentOptions(flip=False, max_rotate_degrees=0, max_shift=0, scale=(1, 1), brightness=0, contrast=0,
                            saturation=0, low_resolution_probability=0)


def to_input(images_bgr: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 (N, H, W, 3) BGR -> float (N, 3, H, W) in the spec's colour order and normalisation."""
    x = images_bgr.permute(0, 3, 1, 2).float()
    if spec.color == "RGB":
        x = x.flip(1)
    mean = torch.tensor(spec.mean, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def augment(
    images_bgr: torch.Tensor,
    labels: torch.Tensor,
    *,
    spec: InputSpec,
    flip_map: torch.Tensor,
    options: AugmentOptions,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    x = images_bgr.permute(0, 3, 1, 2).float()  # BGR, 0..255
    n, _, h, w = x.shape
    labels = labels.clone()

    def uniform(lo: float, hi: float, size: int = n) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(size, generator=generator)

    if options.flip:
        flip = torch.rand(n, generator=generator) < 0.5
        x[flip] = x[flip].flip(3)
        labels[flip] = flip_map[labels[flip]]

    if options.max_rotate_degrees or options.max_shift or options.scale != (1, 1):
        angle = uniform(-options.max_rotate_degrees, options.max_rotate_degrees) * math.pi / 180
        scale = uniform(*options.scale)
        tx, ty = uniform(-options.max_shift, options.max_shift) * 2, uniform(-options.max_shift, options.max_shift) * 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    if options.low_resolution_probability:
        low = torch.rand(n, generator=generator) < options.low_resolution_probability
        if low.any():
            side = int(
                torch.randint(
                    options.low_resolution_range[0], options.low_resolution_range[1] + 1, (1,), generator=generator
                )
            )
            small = F.interpolate(x[low], size=(side, side), mode="area")
            x[low] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)

    if options.brightness or options.contrast or options.saturation:
        gray = x.mean(1, keepdim=True)
        sat = uniform(1 - options.saturation, 1 + options.saturation).view(n, 1, 1, 1)
        x = gray + (x - gray) * sat
        mean = x.mean((1, 2, 3), keepdim=True)
        con = uniform(1 - options.contrast, 1 + options.contrast).view(n, 1, 1, 1)
        bri = uniform(1 - options.brightness, 1 + options.brightness).view(n, 1, 1, 1)
        x = ((x - mean) * con + mean) * bri
    x = x.clamp(0, 255)

    if spec.color == "RGB":
        x = x.flip(1)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x - mean) / std, labels
