"""Which accelerator each runtime offers for a device kind, and the preference order.

One table maps a device kind (npu, gpu, cpu) to each backend's execution providers,
devices or delegates, best first. A backend reports which of them are usable here
(``Backend.status``); the selector walks the user's preference through this table.
"""
from __future__ import annotations

import os
import re

from maskgate.errors import InputError

DEVICE_KINDS = ("npu", "gpu", "cpu")
DEFAULT_PREFERENCE = ("npu", "gpu", "cpu")
#: environment variables: the preference for every model, or for one (``MASKGATE_DEVICE_MASK_MOBILENETV2``)
ENV_PREFERENCE = "MASKGATE_DEVICE"
#: a config file (TOML, or JSON) with a ``[devices]`` table: ``default = "gpu,cpu"`` and per-model keys;
#: ``maskgate.toml`` in the working directory is read when this is not set
ENV_CONFIG = "MASKGATE_CONFIG"

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
    environment (per model, then global), else the config file (per model, then its
    ``default``), else the built-in npu > gpu > cpu."""
    source = "argument"
    if text is None and model:
        key = f"{ENV_PREFERENCE}_{re.sub(r'[^A-Za-z0-9]', '_', model).upper()}"
        text, source = os.environ.get(key), key
    if text is None:
        text, source = os.environ.get(ENV_PREFERENCE), ENV_PREFERENCE
    if text is None:
        path, table = config_devices()
        for key in ([model] if model else []) + ["default"]:
            if key in table:
                text, source = table[key], f"{path} [devices] {key}"
                break
    if text is None:
        return DEFAULT_PREFERENCE
    kinds = tuple(k.strip().lower() for k in (text.split(",") if isinstance(text, str) else text) if k.strip())
    unknown = [k for k in kinds if k not in DEVICE_KINDS]
    if unknown or not kinds:
        raise InputError(f"device preference {text!r} (from {source}) must list some of {', '.join(DEVICE_KINDS)}, "
                         f"e.g. 'npu,gpu,cpu'; got {unknown or 'nothing'}")
    return tuple(dict.fromkeys(kinds))


def read_config() -> tuple[str | None, dict]:
    """(path, contents) of the MaskGate config file (``MASKGATE_CONFIG``, else ./maskgate.toml),
    or (None, {}) when there is none."""
    from pathlib import Path

    path = os.environ.get(ENV_CONFIG) or ("maskgate.toml" if Path("maskgate.toml").is_file() else None)
    if path is None:
        return None, {}
    path = Path(path)
    try:
        text = path.read_text()
        if path.suffix.lower() == ".json":
            import json

            data = json.loads(text)
        else:
            import tomllib  # Python 3.11+; on 3.10 use a .json config

            data = tomllib.loads(text)
    except (OSError, ValueError, ModuleNotFoundError) as exc:
        raise InputError(f"{path}: cannot read the MaskGate config ({type(exc).__name__}: {exc}); expected TOML "
                         f"(or .json) with tables like [devices] default = \"gpu,cpu\"") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: the MaskGate config must be a table of tables ([devices], [gates.int8], ...)")
    return str(path), data


def config_devices() -> tuple[str | None, dict]:
    """(path, the ``[devices]`` table) of the config file, or (None, {}) when there is none."""
    path, data = read_config()
    table = data.get("devices", {})
    if not isinstance(table, dict) or not all(isinstance(v, (str, list)) for v in table.values()):
        raise InputError(f"{path}: [devices] must map 'default' or a model name to a preference like \"npu,gpu,cpu\"")
    return path, table
