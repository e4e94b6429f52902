"""QNN: a QNN-ready QDQ ONNX model (uint8 activations, 16 bits where a layer needs them) and
offline EPContext binaries for Qualcomm Hexagon NPUs (HTP), made with onnxruntime-qnn.

One bundle per SoC: the context binary is compiled for that SoC's Hexagon architecture.
On x86_64 the same HTP library is a simulator (seconds a frame): it checks the builds
and is never taken for the camera's NPU (device kind ``npu-sim``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .spec import Flag, FormatSpec


@dataclass(frozen=True)
class QnnSoc:
    """A Qualcomm SoC as the QNN HTP backend names it: ``soc_model`` (QNN's id) where the
    backend knows the part, else only its Hexagon architecture ``htp_arch``."""

    description: str
    htp_arch: int
    soc_model: int | None = None

    def provider_options(self) -> dict[str, str]:
        """The QNN EP options that compile a context binary for this SoC."""
        if self.soc_model is not None:
            return {"soc_model": str(self.soc_model), "htp_arch": str(self.htp_arch)}
        return {"htp_arch": str(self.htp_arch)}


# QNN SDK 2.51 ids, as accepted by onnxruntime-qnn 2.7.0 (../shared/notes/npu-toolchains.md).
# QCS6490 has no id of its own there (35 was refused): it is compiled for its v68 architecture.
QNN_SOCS: dict[str, QnnSoc] = {
    "qcs6490": QnnSoc("QCS6490 / QCM6490 (Hexagon v68)", 68),
    "qcm8538": QnnSoc("QCM8538 (Hexagon v68)", 68, 89),
    "sm8350": QnnSoc("Snapdragon 888 SM8350 (Hexagon v68)", 68, 30),
    "sm8450": QnnSoc("Snapdragon 8 Gen 1 SM8450 (Hexagon v69)", 69, 36),
    "sm8550": QnnSoc("Snapdragon 8 Gen 2 SM8550 (Hexagon v73)", 73, 43),
    "qcs8550": QnnSoc("QCS8550 / QCM8550 (Hexagon v73)", 73, 66),
    "qcs9100": QnnSoc("QCS9100 (Hexagon v73)", 73, 77),
    "sc8380xp": QnnSoc("Snapdragon X Elite SC8380XP (Hexagon v73)", 73, 60),
    "sm8650": QnnSoc("Snapdragon 8 Gen 3 SM8650 (Hexagon v75)", 75, 57),
    "qcs8300": QnnSoc("QCS8300 (Hexagon v75)", 75, 82),
    "sm8750": QnnSoc("Snapdragon 8 Elite SM8750 (Hexagon v79)", 79, 69),
}
ACTIVATIONS = ("uint8", "uint16")


@dataclass(frozen=True)
class QnnOptions:
    """``socs``: the SoCs to compile context binaries for (one bundle each; default a v68
    QCS6490-class part and a v73 QCS8550). ``activations``: the activation type of the
    whole graph (uint16 is about 2x slower in the simulator). ``wide_activations``: ONNX
    node names (or ``re:`` regexes) whose outputs are kept at 16 bits while the rest is
    uint8: QNN's HTP runs no float on v68 parts, so this is how a layer is spared
    (--accuracy-aware adds the worst layers here). ``model_hints``: the layers a model's
    int8 hint keeps in float elsewhere get 16-bit activations here. ``wide_heads``: so do the
    prediction heads (the convolutions that make the outputs, and what follows them): the
    detector's box and landmark regressions need the range. ``per_channel``:
    symmetric int8 weights per output channel (else uint8 per tensor). ``fine_weights``: the
    depthwise convolutions among the hinted layers get about 15-bit weights, each run as two
    int8 convolutions summed (v68 takes no 16-bit weights; ``maskgate.converters.qnn_weights``);
    the pose classifier needs them. ``calibration_method``:
    how activation ranges are taken from the calibration set; minmax let outliers widen the
    8-bit ranges: on the detector's QDQ model (on the CPU, 80 calibration frames, 24 held-out)
    minmax found 96.2 % of the reference detections, percentile 100 %."""

    socs: tuple[str, ...] = ("qcs6490", "qcs8550")
    activations: Literal["uint8", "uint16"] = "uint8"
    wide_activations: tuple[str, ...] = ()
    model_hints: bool = True
    wide_heads: bool = True
    per_channel: bool = True
    fine_weights: bool = True
    calibration_method: Literal["minmax", "entropy", "percentile"] = "percentile"

    def __post_init__(self):
        unknown = [s for s in self.socs if s not in QNN_SOCS]
        if unknown or not self.socs:
            raise ValueError(f"unknown QNN SoC(s) {unknown or 'none given'}; choose from {', '.join(QNN_SOCS)}")
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"activations must be uint8 or uint16, got {self.activations!r}")
        if self.calibration_method not in ("minmax", "entropy", "percentile"):
            raise ValueError(f"calibration_method must be minmax, entropy or percentile, got "
                             f"{self.calibration_method!r}")


def _keep_wide(options: QnnOptions, nodes: Sequence[str]) -> QnnOptions:
    return dataclasses.replace(options, wide_activations=tuple(dict.fromkeys(options.wide_activations + tuple(nodes))))


FORMAT = FormatSpec(
    name="qnn",
    description="Qualcomm QNN: QDQ ONNX + an offline EPContext binary per SoC for the Hexagon NPU (HTP)",
    model_file="model_ctx.onnx",
    converter="maskgate.converters.qnn",
    stamp_reader="maskgate.converters.binding:onnx_metadata_props",
    backends=("qnn",),
    options=QnnOptions,
    flags=(
        Flag("--qnn-socs", "socs", f"comma list of Qualcomm SoCs to compile for (one bundle each; default "
             f"qcs6490,qcs8550; known: {','.join(QNN_SOCS)})", kind="comma_list"),
        Flag("--qnn-calibration", "calibration_method", "QNN int8 calibration method (default percentile)",
             choices=("minmax", "entropy", "percentile")),
        Flag("--qnn-activations", "activations", "QNN activation type of the whole graph (default uint8)",
             choices=ACTIVATIONS),
        Flag("--qnn-wide-activations", "wide_activations", "comma list of ONNX node names (re:REGEX) whose "
             "activations stay 16-bit", kind="comma_list"),
        Flag("--qnn-no-hints", "model_hints", "QNN: quantize the layers the model's int8 hint spares to 8 bits too",
             kind="false"),
        Flag("--qnn-8bit-heads", "wide_heads", "QNN: quantize the prediction heads to 8 bits too", kind="false"),
        Flag("--qnn-coarse-weights", "fine_weights", "QNN: plain int8 weights on the hinted depthwise convolutions "
             "too (not two int8 convolutions summed)", kind="false"),
    ),
    tools=("torch", "onnx", "onnxscript", "onnxsim", "onnxruntime", "onnxruntime-qnn"),
    exporters=("onnxscript", "onnxruntime_qnn"),
    device_rank={"npu": 0, "npu-sim": 0},
    colour="#da8bc3",
    keep_float=_keep_wide,
    diagnosis_note=" (ranked on the ONNX graph the QDQ model is made from; --accuracy-aware keeps those layers' "
                   "activations at 16 bits)",
    precisions=("int8",),
    default=False,
    device_targets=lambda options: options.socs,
    simulator_samples={"face_detection": 40, "classification": 100},
    simulator_runs=3,
)
