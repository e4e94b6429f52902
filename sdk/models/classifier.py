"""Face classifiers: a tapped backbone plus a head (linear, MLP, or skip-connected).

The exported model ends in a softmax, so every runtime returns class probabilities;
training calls ``logits``.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from ..specs import WEIGHTS_DIR, ClassifierSpec, ModelSpec
from .classifier_backbones import TappedBackbone, build_backbone


def _pool(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3))


class LinearHead(nn.Module):
    def __init__(self, tap_channels: tuple[int, ...], classes: int, *, dropout: float):
        super().__init__()
        self.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(tap_channels[-1], classes))

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        return self.fc(_pool(taps[-1]))


class MLPHead(nn.Module):
    """Deep features only: the plain head the skip-connected one is compared against."""

    def __init__(self, tap_channels: tuple[int, ...], classes: int, *, hidden: int, projection: int, dropout: float):
        super().__init__()
        self.project = nn.Sequential(
            nn.Linear(tap_channels[-1], projection), nn.BatchNorm1d(projection), nn.ReLU(inplace=True)
        )
        self.mlp = _mlp(projection, hidden, classes, dropout)

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        return self.mlp(self.project(_pool(taps[-1])))


class SkipHead(nn.Module):
    """Pooled features of every stage, shallow to deep, each projected, then one MLP.

    The shallow stages carry fine detail (edges of the nose and cheeks) that the deep,
    semantic output has pooled away; adjacent yaw classes differ in such detail. Each
    stage gets its own projection with BatchNorm so that the few shallow channels are
    not drowned by the 1280 deep ones.
    """

    def __init__(self, tap_channels: tuple[int, ...], classes: int, *, hidden: int, projection: int, dropout: float):
        super().__init__()
        if len(tap_channels) < 3:
            raise ValueError(f"a skip head needs >= 2 shallow stages plus the deep one, got {len(tap_channels)} taps")
        self.project = nn.ModuleList(
            nn.Sequential(nn.Linear(c, projection), nn.BatchNorm1d(projection), nn.ReLU(inplace=True))
            for c in tap_channels
        )
        self.mlp = _mlp(projection * len(tap_channels), hidden, classes, dropout)

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        joined = torch.cat([p(_pool(t)) for p, t in zip(self.project, taps)], dim=1)
        return self.mlp(joined)


def _mlp(inp: int, hidden: int, classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(inp, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, classes),
    )


class FaceClassifier(nn.Module):
    def __init__(self, backbone: TappedBackbone, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)


def build_head(arch: ClassifierSpec, tap_channels: tuple[int, ...], classes: int) -> nn.Module:
    if arch.head == "linear":
        return LinearHead(tap_channels, classes, dropout=arch.dropout)
    if arch.head == "mlp":
        return MLPHead(tap_channels, classes, hidden=arch.hidden, projection=arch.projection, dropout=arch.dropout)
    if arch.head == "skip":
        return SkipHead(tap_channels, classes, hidden=arch.hidden, projection=arch.projection, dropout=arch.dropout)
    raise ValueError(f"unknown head {arch.head!r}; choose linear, mlp or skip")


def build_classifier(spec: ModelSpec, *, pretrained: bool = True, weights: str | Path | None = None) -> FaceClassifier:
    """Factory named by the classifier specs of the zoo."""
    from . import weights as weight_io

    arch = spec.classifier
    if arch is None or not spec.class_names:
        raise ValueError(f"{spec.name} has no classifier architecture or class names")
    backbone = build_backbone(arch.backbone)
    model = FaceClassifier(backbone, build_head(arch, backbone.tap_channels, len(spec.class_names)))
    expected = f"a {spec.name} state dict (from `maskgate train`)"
    if weights is not None:
        weight_io.load_checkpoint(model, weights, expected=expected)
    elif pretrained:
        shipped = WEIGHTS_DIR / arch.checkpoint if arch.checkpoint else None
        if shipped is None or not shipped.is_file():
            raise WeightsError(
                f"no trained weights ship for {spec.name}" + (f" (expected {shipped})" if shipped else "")
                + "; train them with `maskgate train` and pass --weights PATH, or build with pretrained=False"
            )
        weight_io.load_checkpoint(model, shipped, expected=expected)
    return model.eval()
