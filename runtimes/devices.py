"""Which accelerator each runtime offers for a device kind, and the preference order.

One table maps a device kind (npu, gpu, cpu) to each backend's execution providers,
devices or delegates, best first. A backend reports which of them are usable here
(``Backend.status``); the selector walks the user's preference through this table.
"""
from __future__ import annotations

import os
import re

from sdk.errors import InputError

DEVICE_KINDS = ("npu", "gpu", "cpu")
DEFAULT_PREFERENCE = ("npu", "gpu", "cpu")
#: environment variables: the preference for every model, or for one (``MASKGATE_DEVICE_MASK_MOBILENETV2``)
ENV_PREFERENCE = "MASKGATE_DEVICE"

TABLE: dict[str, dict[str, tuple[str, ...]]] = {
    "onnxruntime": {
        "gpu": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider"),
        "npu": ("QNNExecutionProvider", "VitisAIExecutionProvider", "OpenVINOExecutionProvider"),
        "cpu": ("CPUExecutionProvider",),
    },
    "openvino": {"gpu": ("GPU",), "npu": ("NPU",), "cpu": ("CPU",)},
    "tflite": {
        # Delegates are shared libraries loaded by name; the Edge TPU runs only models
        # compiled for it (edgetpu_compiler), which the selector learns from the first inference.
        "gpu": ("libtensorflowlite_gpu_delegate.so",),
        "npu": ("libedgetpu.so.1",),
        "cpu": ("xnnpack",),
    },
    "pytorch": {"gpu": ("cuda",), "npu": (), "cpu": ("cpu",)},
}

# Which precision to try first on each kind: NPUs are integer machines, GPUs run fp16
# natively, and on the CPUs measured here int8 OpenVINO/TFLite builds were the fastest.
PRECISION_ORDER = {"npu": ("int8", "fp16", "fp32"), "gpu": ("fp16", "fp32", "int8"), "cpu": ("int8", "fp32", "fp16")}
# Which format to try first on each kind (measured on this project's CPU: OpenVINO int8
# detector 10 ms, TFLite 14 ms, ONNX Runtime 18 ms, one thread).
FORMAT_ORDER = {"npu": ("openvino", "tflite", "onnx"), "gpu": ("onnx", "openvino", "tflite"),
                "cpu": ("openvino", "tflite", "onnx")}


def parse_preference(text: str | tuple[str, ...] | list[str] | None, *, model: str | None = None) -> tuple[str, ...]:
    """A device preference from an argument ("npu,gpu,cpu", "cpu", ("gpu", "cpu")), else the
    environment (per model first, then global), else the default npu > gpu > cpu."""
    source = "argument"
    if text is None and model:
        key = f"{ENV_PREFERENCE}_{re.sub(r'[^A-Za-z0-9]', '_', model).upper()}"
        text, source = os.environ.get(key), key
    if text is None:
        text, source = os.environ.get(ENV_PREFERENCE), ENV_PREFERENCE
    if text is None:
        return DEFAULT_PREFERENCE
    kinds = tuple(k.strip().lower() for k in (text.split(",") if isinstance(text, str) else text) if k.strip())
    unknown = [k for k in kinds if k not in DEVICE_KINDS]
    if unknown or not kinds:
        raise InputError(f"device preference {text!r} (from {source}) must list some of {', '.join(DEVICE_KINDS)}, "
                         f"e.g. 'npu,gpu,cpu'; got {unknown or 'nothing'}")
    return tuple(dict.fromkeys(kinds))
