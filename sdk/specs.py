"""Model specs: what a model expects and returns, independent of any framework.

A spec travels with the model (as timm's pretrained config does), so the training
recipe, the reference pipeline, every converter and every runtime read the same
preprocessing and cannot drift apart. This module imports no framework.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

# Where the checkpoints that specs and profiles name by file are shipped (maskgate/weights).
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

Layout = Literal["NCHW", "NHWC"]
ColorOrder = Literal["BGR", "RGB"]


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the model's input tensor.

    ``size`` is (width, height). ``mean`` and ``std`` are per channel, in ``color``
    order and in pixel units (0..255): ``x = (pixel - mean) / std``.
    """

    size: tuple[int, int]
    color: ColorOrder = "BGR"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: Layout = "NCHW"
    dtype: str = "float32"
    name: str = "input"

    def __post_init__(self):
        w, h = self.size
        if w <= 0 or h <= 0:
            raise ValueError(f"input size must be positive, got {self.size}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, got {self.layout!r}")
        if self.color not in ("BGR", "RGB"):
            raise ValueError(f"color must be BGR or RGB, got {self.color!r}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Tensor shape for a batch of one."""
        w, h = self.size
        return (1, 3, h, w) if self.layout == "NCHW" else (1, h, w, 3)


@dataclass(frozen=True)
class PriorSpec:
    """Anchor layout of an SSD-style detector head (RetinaFace's PriorBox)."""

    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
    steps: tuple[int, ...] = (8, 16, 32)
    variances: tuple[float, float] = (0.1, 0.2)
    clip: bool = False


@dataclass(frozen=True)
class DetectionDefaults:
    """Post-processing defaults of a detector; every call may override them."""

    score_threshold: float = 0.5
    nms_iou: float = 0.4
    pre_nms_top_k: int = 5000
    max_detections: int = 750


@dataclass(frozen=True)
class ClassifierSpec:
    """Architecture of a face classifier: a tapped backbone and a head.

    ``head``: ``linear`` (pooled deep features -> classes), ``mlp`` (deep features -> MLP)
    or ``skip`` (the pose paper's skip-connected head: pooled outputs of every backbone
    stage, shallow "detail" ones included, projected and joined before the MLP).
    ``checkpoint`` names the trained state dict shipped in ``sdk/weights``.
    """

    backbone: Literal["mobilenet_v2", "mobilenet_v1_025", "resnet18", "resnet50", "vgg16"]
    head: Literal["linear", "mlp", "skip"]
    hidden: int = 256
    projection: int = 128
    dropout: float = 0.2
    checkpoint: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything the SDK knows about one registered model.

    ``factory`` is ``"module:function"``: the framework code is imported only when a
    model is built, so reading specs never imports torch.
    """

    name: str
    task: Literal["face_detection", "classification"]
    input: InputSpec
    outputs: tuple[str, ...]
    factory: str
    description: str
    weights: str | None = None  # where pretrained weights come from, for people
    priors: PriorSpec | None = None
    detection: DetectionDefaults | None = None
    class_names: tuple[str, ...] = ()
    classifier: ClassifierSpec | None = None
    # int8 hint (see the zoo entry for why): the first convs, with the ops between them,
    # stay in float; with int8_float_head, so do the ops after the last conv.
    int8_float_leading_convs: int = 0
    int8_float_head: bool = False
    tags: tuple[str, ...] = field(default=())


def with_input_size(spec: ModelSpec, size: Sequence[int]) -> ModelSpec:
    """``spec`` with a fixed (width, height) input: a build's detector canvas or a tuning canvas."""
    width, height = (int(v) for v in size)
    return dataclasses.replace(spec, input=dataclasses.replace(spec.input, size=(width, height)))
