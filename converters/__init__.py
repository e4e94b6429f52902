"""Converters: the reference models -> ONNX, OpenVINO IR and TFLite builds (one module per format)."""
from __future__ import annotations

if __name__ != "maskgate.converters":  # the folder converters/ installs as maskgate.converters (pyproject.toml)
    raise ImportError(f"import maskgate.converters, not {__name__}: the converters/ folder is installed as "
                      "maskgate.converters (pip install -e . in the checkout)")

import importlib
from types import ModuleType


def require(module: str, *, purpose: str, package: str | None = None, extra: str = "export") -> ModuleType:
    """Import an exporter or quantizer, or say which extra installs it."""
    from maskgate.errors import DependencyError

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise DependencyError(
            package or module.split(".")[0].replace("_", "-"), extra=extra, purpose=purpose
        ) from exc


def dist_version(name: str) -> str | None:
    """The installed version of a distribution (pip name), or None when it is absent."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def hinted_float_ops(ops: list[tuple[str, str]], *, leading_convs: int, head: bool,
                     conv_types: tuple[str, ...]) -> list[str]:
    """Names of the ops (given in execution order as (name, type)) that a model's int8
    hint keeps in float: those before the ``leading_convs + 1``-th convolution and, with
    ``head``, those after the last one.

    Keeping only the convs in float is not enough: their outputs would still be
    quantized on the way into the activation that follows (measured on the detector:
    no gain), so the whole stretch stays float."""
    conv_at = [i for i, (_, op_type) in enumerate(ops) if op_type in conv_types]
    chosen: list[str] = []
    if leading_convs > 0 and conv_at:
        end = conv_at[leading_convs] if leading_convs < len(conv_at) else len(ops)
        chosen += [name for name, _ in ops[:end]]
    if head and conv_at:
        chosen += [name for name, _ in ops[conv_at[-1] + 1:] if name not in chosen]
    return chosen
