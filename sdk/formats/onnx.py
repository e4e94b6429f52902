"""ONNX: exported by torch.onnx, fp16 by onnxconverter, int8 by ONNX Runtime (static QDQ)."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .spec import Flag, FormatSpec

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
INT8_TYPES = ("u8u8", "s8s8")


@dataclass(frozen=True)
class OnnxOptions:
    """ONNX Runtime static int8 (QDQ) settings; dynamic and QOperator int8 were 5-10x
    slower on CPU here, so they are not offered as defaults.

    ``equalize``: cross-layer equalization of the torch model before the int8 export
    (``maskgate.converters.equalize``). ``keep_float``: node names of the exported graph (or
    regexes, prefixed ``re:``) left unquantized, added to the model's own hints.

    ``int8_type``: activations x weights. u8u8 by default: on an x86 CPU without VNNI, ONNX
    Runtime runs s8s8 as u8 x s8 through a saturating 16-bit multiply-add, so one bundle
    answered differently by host (mask int8 on an AVX2 EPYC: 97.7 % top-1 agreement, 100 %
    with the same QDQ model run in float); u8u8 takes a non-saturating kernel there and
    measured the same with integer kernels and in float (100 %). s8s8 for a fleet of VNNI
    x86 hosts only.
    """

    calibration_method: Literal["minmax", "entropy", "percentile"] = "percentile"
    per_channel: bool = True
    equalize: bool = True
    keep_float: tuple[str, ...] = ()
    opset: int | None = None  # the exporter's default when None
    simplify: bool = True
    int8_type: Literal["u8u8", "s8s8"] = "u8u8"

    def __post_init__(self):
        if self.calibration_method not in CALIBRATION_METHODS:
            raise ValueError(
                f"calibration_method must be one of {CALIBRATION_METHODS}, got {self.calibration_method!r}"
            )
        if self.int8_type not in INT8_TYPES:
            raise ValueError(f"int8_type must be one of {INT8_TYPES}, got {self.int8_type!r}")


def _keep_float(options: OnnxOptions, nodes: Sequence[str]) -> OnnxOptions:
    return dataclasses.replace(options, keep_float=tuple(dict.fromkeys(options.keep_float + tuple(nodes))))


FORMAT = FormatSpec(
    name="onnx",
    description="ONNX model for ONNX Runtime (CPU, and its GPU / NPU execution providers)",
    model_file="model.onnx",
    converter="maskgate.converters.onnx",
    stamp_reader="maskgate.converters.binding:onnx_metadata_props",
    backends=("onnxruntime",),
    options=OnnxOptions,
    flags=(
        Flag("--onnx-calibration", "calibration_method", "ONNX int8 calibration method (default percentile)",
             choices=CALIBRATION_METHODS),
        Flag("--onnx-no-equalize", "equalize", "quantize the ONNX model as exported, without cross-layer equalization",
             kind="false"),
        Flag("--onnx-keep-float", "keep_float", "comma list of ONNX node names (re:REGEX for patterns) kept in float",
             kind="comma_list"),
        Flag("--onnx-int8-type", "int8_type", "ONNX int8 activations x weights (default u8u8: the same answers "
             "on every x86 CPU; s8s8 saturates on x86 without VNNI)", choices=INT8_TYPES),
    ),
    tools=("torch", "onnx", "onnxscript", "onnxsim", "onnxruntime"),
    exporters=("onnxscript",),
    device_rank={"npu": 4, "gpu": 0, "cpu": 2},
    colour="#8172b2",
    keep_float=_keep_float,
)
