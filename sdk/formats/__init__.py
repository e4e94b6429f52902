"""Every fact about a build format, one declaration per format (``onnx.py``, ``openvino.py``,
``tflite.py``): its model file, converter, runtimes, options and their flags, the tools its
bundles record, whether ``--accuracy-aware`` can repair it, its plot style and device ranks.

The build, the CLI, the checker's plots, the manifests and the runtime layer all read this
registry. Adding a format is one declaration here, one converter module
(``maskgate.converters.<name>``) and, when a new runtime runs it, one backend module
(``maskgate.runtimes.<name>``); ``tests/test_formats.py`` fails when a piece is missing.
Plain data: importing it needs no framework.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import InputError
from . import onnx, openvino, qnn, rknn, tflite
from .onnx import CALIBRATION_METHODS, OnnxOptions
from .openvino import OpenVinoOptions
from .qnn import QnnOptions
from .rknn import RknnOptions
from .spec import DEVICE_KINDS, PRECISIONS, SIMULATOR, Flag, FormatSpec
from .tflite import TfliteOptions

FORMATS: dict[str, FormatSpec] = {
    spec.name: spec for spec in (onnx.FORMAT, openvino.FORMAT, tflite.FORMAT, rknn.FORMAT, qnn.FORMAT)
}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)
#: the formats a plain 'maskgate build' makes (the CPU/GPU ones; NPU formats are asked for by name)
DEFAULT_FORMATS: tuple[str, ...] = tuple(name for name, spec in FORMATS.items() if spec.default)
#: the formats whose int8 builds --accuracy-aware can repair (they keep named layers in float)
REPAIRABLE_FORMATS: tuple[str, ...] = tuple(name for name, spec in FORMATS.items() if spec.repairable)


def get_format(name: str) -> FormatSpec:
    try:
        return FORMATS[name]
    except KeyError:
        raise InputError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}") from None


def formats_of_backend(backend: str) -> tuple[str, ...]:
    """The formats a built-in runtime runs."""
    return tuple(name for name, spec in FORMATS.items() if backend in spec.backends)


def format_order(kind: str) -> tuple[str, ...]:
    """The formats that run on a device kind (npu, gpu, cpu, npu-sim), in the order the selector tries them."""
    ranked = [name for name in FORMATS if kind in FORMATS[name].device_rank]
    return tuple(sorted(ranked, key=lambda name: FORMATS[name].device_rank[kind]))


def model_files() -> dict[str, str]:
    """Format -> the file its runtime loads, into which the manifest digest is stamped."""
    return {name: spec.model_file for name, spec in FORMATS.items()}


class ConvertOptions:
    """The converter options of every format, e.g. ``ConvertOptions(onnx=OnnxOptions(equalize=False))``;
    formats not given get their defaults. ``options.onnx`` reads one format's options."""

    __slots__ = ("_by_format",)

    def __init__(self, **per_format: Any):
        unknown = sorted(set(per_format) - set(FORMATS))
        if unknown:
            raise TypeError(f"ConvertOptions: unknown format(s) {unknown}; choose from {', '.join(FORMATS)}")
        by_format = {}
        for name, spec in FORMATS.items():
            value = per_format.get(name) or spec.options()
            if not isinstance(value, spec.options):
                raise TypeError(f"ConvertOptions: {name} takes a {spec.options.__name__}, got {type(value).__name__}")
            by_format[name] = value
        object.__setattr__(self, "_by_format", by_format)

    def __getattr__(self, name: str) -> Any:
        try:
            return object.__getattribute__(self, "_by_format")[name]
        except KeyError:
            raise AttributeError(f"ConvertOptions has no format {name!r}; formats: {', '.join(FORMATS)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(f"ConvertOptions is frozen; use .replace({name}=...)")

    def __getitem__(self, fmt: str) -> Any:
        return self._by_format[get_format(fmt).name]

    def replace(self, **per_format: Any) -> ConvertOptions:
        return ConvertOptions(**{**self._by_format, **per_format})

    def for_format(self, fmt: str) -> dict[str, Any]:
        return dataclasses.asdict(self[fmt])

    @classmethod
    def from_flags(cls, args) -> ConvertOptions:
        """From the ``maskgate build`` flags (``add_flags``)."""
        return cls(**{name: spec.options_from_flags(args) for name, spec in FORMATS.items()})

    @staticmethod
    def add_flags(parser) -> None:
        for spec in FORMATS.values():
            defaults = spec.options()
            for flag in spec.flags:
                flag.add_to(parser, getattr(defaults, flag.field))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(value) for name, value in self._by_format.items()}

    def __copy__(self) -> ConvertOptions:
        return self  # immutable

    def __deepcopy__(self, memo) -> ConvertOptions:
        return self

    def __reduce__(self):
        return (_convert_options, (self._by_format,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConvertOptions) and self._by_format == other._by_format

    def __hash__(self) -> int:
        return hash(tuple(self._by_format.items()))

    def __repr__(self) -> str:
        return f"ConvertOptions({', '.join(f'{k}={v!r}' for k, v in self._by_format.items())})"


def _convert_options(by_format: dict[str, Any]) -> ConvertOptions:
    return ConvertOptions(**by_format)


__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_FORMATS",
    "DEVICE_KINDS",
    "FORMATS",
    "FORMAT_NAMES",
    "PRECISIONS",
    "SIMULATOR",
    "ConvertOptions",
    "Flag",
    "FormatSpec",
    "OnnxOptions",
    "OpenVinoOptions",
    "QnnOptions",
    "RknnOptions",
    "TfliteOptions",
    "format_order",
    "formats_of_backend",
    "get_format",
    "model_files",
]
