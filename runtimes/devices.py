"""The device preference (npu, gpu, cpu) and the order of precisions and formats per kind.

Each backend lists the accelerators it offers per kind (``Backend.devices``: execution
providers, devices or delegates, best first) and reports which are usable here
(``Backend.status``); the selector walks the user's preference through them.
"""
from __future__ import annotations

import os
import re

from maskgate.config import active_config
from maskgate.errors import InputError
from maskgate.formats import DEVICE_KINDS, SIMULATOR, format_order

# A vendor's NPU simulator (SIMULATOR, "npu-sim") checks builds; it never serves a camera: the
# default preference leaves it out, and a fallback never reaches it (only a preference naming it does).
DEFAULT_PREFERENCE = ("npu", "gpu", "cpu")
#: environment variables: the preference for every model, or for one (``MASKGATE_DEVICE_MASK_MOBILENETV2``)
ENV_PREFERENCE = "MASKGATE_DEVICE"
# The config file's [devices] table (maskgate.config): ``default = "gpu,cpu"`` and per-model keys.

# Which precision to try first on each kind: NPUs are integer machines, GPUs run fp16
# natively, and on the CPUs measured here int8 OpenVINO/TFLite builds were the fastest.
PRECISION_ORDER = {"npu": ("int8", "fp16", "fp32"), "gpu": ("fp16", "fp32", "int8"), "cpu": ("int8", "fp32", "fp16")}
PRECISION_ORDER[SIMULATOR] = PRECISION_ORDER["npu"]  # a simulator orders them as the NPU it stands for
# Which format to try first on each kind: each format's device_rank (maskgate.formats).
FORMAT_ORDER = {kind: format_order(kind) for kind in DEVICE_KINDS}


def _env_key(model: str) -> str:
    return f"{ENV_PREFERENCE}_{re.sub(r'[^A-Za-z0-9]', '_', model).upper()}"


def check_device_environment(models: list[str]) -> None:
    """``MASKGATE_DEVICE`` and each ``MASKGATE_DEVICE_<MODEL>`` set, checked when a command starts:
    a wrong one was found only as each bundle opened (36 bundles FAILED in 'maskgate check')."""
    by_key = {_env_key(m): m for m in models}
    for key in sorted(os.environ):
        if key == ENV_PREFERENCE:
            parse_preference(None)  # read from the environment, so that the error names it
        elif key.startswith(ENV_PREFERENCE + "_"):
            if key not in by_key:
                raise InputError(f"{key}: no model is named so; per-model preferences are "
                                 f"{', '.join(sorted(by_key))}")
            parse_preference(None, model=by_key[key])


def parse_preference(text: str | tuple[str, ...] | list[str] | None, *, model: str | None = None) -> tuple[str, ...]:
    """A device preference from an argument ("npu,gpu,cpu", "cpu", ("gpu", "cpu")), else the
    environment (per model, then global), else the config file (per model, then its
    ``default``), else the built-in npu > gpu > cpu."""
    source = "argument"
    if text is None and model:
        key = _env_key(model)
        text, source = os.environ.get(key), key
    if text is None:
        text, source = os.environ.get(ENV_PREFERENCE), ENV_PREFERENCE
    if text is None:
        config = active_config()
        for key in ([model] if model else []) + ["default"]:
            if key in config.devices:  # checked when the file was read
                return config.devices[key]
    if text is None:
        return DEFAULT_PREFERENCE
    kinds = tuple(k.strip().lower() for k in (text.split(",") if isinstance(text, str) else text) if k.strip())
    unknown = [k for k in kinds if k not in DEVICE_KINDS]
    if unknown or not kinds:
        raise InputError(f"device preference {text!r} (from {source}) must list some of {', '.join(DEVICE_KINDS)}, "
                         f"e.g. 'npu,gpu,cpu'; got {unknown or 'nothing'}")
    return tuple(dict.fromkeys(kinds))
