"""Classifier backbones with torchvision state-dict key names, returning stage outputs.

Each backbone returns a list of feature maps, shallow to deep ("taps"), so a head can
use the deep output only (plain) or pool the shallow stages too (skip-connected, the
pose paper's detail features). Key names follow torchvision so that its ImageNet
checkpoints, and users' own, load with ``strict=True`` (minus the ImageNet classifier).
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from .backbones import Bottleneck, MobileNetV1Body


class TappedBackbone(nn.Module):
    """Base: ``forward`` returns the outputs of the stages named in ``tap_channels``."""

    tap_channels: tuple[int, ...] = ()

    def stage_modules(self) -> list[list[nn.Module]]:
        """The modules of each stage, shallow to deep (one stage per tap), for freezing."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class SequentialTapped(TappedBackbone):
    """A backbone that is one ``features`` Sequential (torchvision's MobileNetV2 and VGG
    layouts), tapped after the layers whose indices are in ``_TAPS``."""

    _TAPS: tuple[int, ...] = ()
    features: nn.Sequential

    def stage_modules(self) -> list[list[nn.Module]]:
        return _split_by_taps(self.features, self._TAPS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._TAPS:
                taps.append(x)
        return taps


def _conv_bn_relu6(inp: int, oup: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    # torchvision's Conv2dNormActivation: keys .0 (conv) and .1 (BatchNorm).
    return nn.Sequential(
        nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_residual = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(inp, hidden, kernel=1))
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Features(SequentialTapped):
    """MobileNetV2 (width 1.0) ``features``; taps at strides 4, 8, 16 and the 1280-ch end."""

    # (expand t, channels c, repeats n, first stride s), as in the MobileNetV2 paper.
    _SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )
    # Indices into ``features`` after which a stage ends: 24 ch /4, 32 ch /8, 96 ch /16, 1280 ch /32.
    _TAPS = (3, 6, 13, 18)
    tap_channels = (24, 32, 96, 1280)

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
        inp = 32
        for t, c, n, s in self._SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                inp = c
        layers.append(_conv_bn_relu6(inp, 1280, kernel=1))
        self.features = nn.Sequential(*layers)


def _split_by_taps(features: nn.Sequential, taps: tuple[int, ...]) -> list[list[nn.Module]]:
    stages, start = [], 0
    for end in taps:
        stages.append(list(features)[start : end + 1])
        start = end + 1
    return stages


class BasicBlock(nn.Module):
    """torchvision's ResNet-18/34 block."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetFeatures(TappedBackbone):
    """ResNet-18 or -50 without ``fc``; taps after layer1..layer4."""

    _LAYOUTS: ClassVar[dict[int, tuple[type[BasicBlock | Bottleneck], tuple[int, ...]]]] = {
        18: (BasicBlock, (2, 2, 2, 2)), 50: (Bottleneck, (3, 4, 6, 3))}

    def __init__(self, depth: int = 18):
        super().__init__()
        if depth not in self._LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(self._LAYOUTS)}, got {depth}")
        block, counts = self._LAYOUTS[depth]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self._inplanes = 64
        self.layer1 = self._make_layer(block, 64, counts[0], 1)
        self.layer2 = self._make_layer(block, 128, counts[1], 2)
        self.layer3 = self._make_layer(block, 256, counts[2], 2)
        self.layer4 = self._make_layer(block, 512, counts[3], 2)
        self.tap_channels = tuple(p * block.expansion for p in (64, 128, 256, 512))

    def _make_layer(self, block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self._inplanes, planes, stride, downsample)]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def stage_modules(self) -> list[list[nn.Module]]:
        return [[self.conv1, self.bn1, self.layer1], [self.layer2], [self.layer3], [self.layer4]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        taps = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            taps.append(x)
        return taps


class VGG16Features(SequentialTapped):
    """VGG16 ``features`` (no BatchNorm, torchvision indices); taps after pools 2..5."""

    _CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
    _TAPS = (9, 16, 23, 30)
    tap_channels = (128, 256, 512, 512)

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        inp = 3
        for v in self._CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(inp, v, 3, padding=1), nn.ReLU(inplace=True)]
                inp = v
        self.features = nn.Sequential(*layers)


class MobileNetV1FaceFeatures(TappedBackbone):
    """RetinaFace's MobileNetV1-0.25 body (biubug6 keys under ``body.``); taps at /8, /16, /32.

    Its weights can come from the detector itself (face-detection training on WIDER FACE),
    the installable "face weights" of this project.
    """

    tap_channels = MobileNetV1Body.out_channels

    def __init__(self):
        super().__init__()
        self.body = MobileNetV1Body()

    def stage_modules(self) -> list[list[nn.Module]]:
        return [[self.body.stage1], [self.body.stage2], [self.body.stage3]]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


def build_backbone(name: str) -> TappedBackbone:
    if name == "mobilenet_v1_025":
        return MobileNetV1FaceFeatures()
    if name == "mobilenet_v2":
        return MobileNetV2Features()
    if name in ("resnet18", "resnet50"):
        return ResNetFeatures(int(name[len("resnet"):]))
    if name == "vgg16":
        return VGG16Features()
    raise ValueError(
        f"unknown classifier backbone {name!r}; choose mobilenet_v2, mobilenet_v1_025, resnet18, resnet50 or vgg16"
    )
