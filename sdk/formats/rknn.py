"""RKNN: Rockchip NPU models (``.rknn``) made by rknn-toolkit2 from the fp32 ONNX export, one
per SoC, with the model's mean/std folded into the NPU's input stage.

rknn-toolkit2 pins numpy, onnx, protobuf and torch versions the rest of the build cannot
share: it runs in its own environment (``maskgate setup rknn``) as a worker process. Its
simulator runs a model only in the process that built it, so a check rebuilds the model
from the inputs the bundle carries and compares the bytes with the bundled ones.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .spec import Flag, FormatSpec

# rknn-toolkit2 2.x targets (RV1126 / RK3399Pro / RK1808 need the 1.x toolkit).
RKNN_TARGETS: dict[str, str] = {
    "rk3588": "RK3588 / RK3588S (3-core NPU, 6 TOPS)",
    "rk3576": "RK3576 (2-core NPU, 6 TOPS)",
    "rk3568": "RK3568 (1 TOPS)",
    "rk3566": "RK3566 (1 TOPS)",
    "rk3562": "RK3562 (1 TOPS)",
    "rv1103": "RV1103 (0.5 TOPS)",
    "rv1106": "RV1106 (0.5 TOPS)",
    "rv1106b": "RV1106B (0.5 TOPS)",
    "rv1126b": "RV1126B (3 TOPS)",
}
ALGORITHMS = ("normal", "kl_divergence", "mmse")


@dataclass(frozen=True)
class RknnOptions:
    """``targets``: the SoCs to build for (one bundle each). ``algorithm``: rknn-toolkit2's
    quantized_algorithm (``mmse`` is ~30x slower to build). ``float_layers``: ONNX node
    names (or ``re:`` regexes) the toolkit's hybrid quantization keeps in float16 on the
    NPU; the model's own int8 hints are added. ``calibration_samples``: how many of the
    build's calibration inputs the toolkit quantizes with; the bundle carries them (as
    8-bit pixels) so that a check can rebuild the model."""

    targets: tuple[str, ...] = ("rk3568", "rk3588")
    algorithm: Literal["normal", "kl_divergence", "mmse"] = "normal"
    float_layers: tuple[str, ...] = ()
    calibration_samples: int = 32

    def __post_init__(self):
        unknown = [t for t in self.targets if t not in RKNN_TARGETS]
        if unknown or not self.targets:
            raise ValueError(f"unknown RKNN target(s) {unknown or 'none given'}; choose from {', '.join(RKNN_TARGETS)}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.calibration_samples < 1:
            raise ValueError(f"calibration_samples must be at least 1, got {self.calibration_samples}")


def _keep_float(options: RknnOptions, nodes: Sequence[str]) -> RknnOptions:
    return dataclasses.replace(options, float_layers=tuple(dict.fromkeys(options.float_layers + tuple(nodes))))


FORMAT = FormatSpec(
    name="rknn",
    description="Rockchip RKNN model per SoC for the RK35xx / RV11xx NPUs (rknn-toolkit2; rknn-toolkit-lite2 on the "
                "camera)",
    model_file="model.rknn",
    converter="maskgate.converters.rknn",
    stamp_reader="maskgate.converters.binding:rknn_stamp",
    backends=("rknn",),
    options=RknnOptions,
    flags=(
        Flag("--rknn-targets", "targets", f"comma list of Rockchip SoCs to build for (one bundle each; default "
             f"rk3568,rk3588; known: {','.join(RKNN_TARGETS)})", kind="comma_list"),
        Flag("--rknn-algorithm", "algorithm", "rknn-toolkit2 quantization algorithm (default normal)",
             choices=ALGORITHMS),
        Flag("--rknn-float-layers", "float_layers", "comma list of ONNX node names (re:REGEX) kept in float16 by "
             "hybrid quantization", kind="comma_list"),
        Flag("--rknn-calibration-samples", "calibration_samples", "calibration inputs the toolkit quantizes with, "
             "carried by the bundle (default 32)", type=int),
    ),
    tools=("torch", "onnx", "onnxscript", "onnxsim", "rknn-toolkit2"),
    exporters=("onnxscript",),
    device_rank={"npu": 1, "npu-sim": 1},
    colour="#937860",
    keep_float=_keep_float,
    diagnosis_note=" (ranked on the ONNX graph the toolkit loads; --accuracy-aware keeps those layers in float16 "
                   "by hybrid quantization)",
    precisions=("int8",),
    default=False,
    device_targets=lambda options: options.targets,
    simulator_samples={"face_detection": 60, "classification": 300},
    simulator_runs=5,
    tool_env="maskgate.runtimes.rknn_env:versions",
    layer_report="maskgate.runtimes.rknn:layer_report",
)
