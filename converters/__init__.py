"""Converters: the reference models -> ONNX, OpenVINO IR and TFLite builds (one module per format)."""
from __future__ import annotations

import importlib


def require(module: str, *, purpose: str, package: str | None = None):
    """Import an exporter or quantizer, or say which extra installs it."""
    from sdk.errors import DependencyError

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise DependencyError(package or module.split(".")[0].replace("_", "-"), extra="export", purpose=purpose) from exc


def dist_version(name: str) -> str | None:
    """The installed version of a distribution (pip name), or None when it is absent."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None
