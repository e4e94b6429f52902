"""The converter contract: what a build is (a model, a format, a precision), what one
converter call gets (``ConversionJob``) and what it returns (``Artifact``).

Every converter module (named by its format's ``FormatSpec.converter``) has one entry,
``convert(job, folder) -> Artifact``, so the build dispatches by lookup. Plain data, no
framework imports.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskgate.formats import FORMATS, PRECISIONS, ConvertOptions


@dataclass(frozen=True)
class Target:
    model: str
    format: str
    precision: str
    chip: str = ""  # the chip a format compiled per chip is built for (rk3588, qcs6490, ...); "" for any
    variant: str = ""  # a detector built at another canvas than the general one (its size, "320x256")

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; choose from {', '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")

    @property
    def name(self) -> str:
        return (f"{self.model}-{self.format}-{self.precision}" + (f"-{self.chip}" if self.chip else "")
                + (f"-{self.variant}" if self.variant else ""))


@dataclass
class TensorInfo:
    """One input or output of a built model, as its runtime sees it."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name
    quantization: tuple[float, int] | None = None  # (scale, zero point) of an int8 tensor

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "quantization": list(self.quantization) if self.quantization else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorInfo:
        q = d.get("quantization")
        return cls(d["name"], tuple(d["shape"]), d["dtype"], (float(q[0]), int(q[1])) if q else None)


@dataclass
class Artifact:
    """What a converter wrote into the bundle folder."""

    files: list[str]  # relative to the bundle folder; the first is the model file
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    layout: str  # input layout of the built model, NCHW or NHWC
    quantizer: dict[str, Any] | None = None  # tool, version and settings; None for fp32
    # files the model was made from, kept so a check can make it again; the runtime never loads them
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ConversionJob:
    """Everything one converter call needs."""

    target: Target
    spec: Any  # maskgate.specs.ModelSpec (with the build's input size)
    module: Any  # the torch module (eval mode, on CPU)
    calibration: Any | None  # maskgate.calibration.CalibrationSet for int8
    metadata: dict[str, str]  # stamped into the model file
    shared: Any  # maskgate.converters.shared.SharedExports (not imported: shared imports the ONNX converter)
    options: ConvertOptions = field(default_factory=ConvertOptions)

    @property
    def format_options(self) -> Any:
        """This job's format's options (``OnnxOptions`` for an ONNX job, ...)."""
        return self.options[self.target.format]

    @property
    def int8_calibration(self) -> Any:
        """The calibration set an int8 conversion quantizes with (refused without one)."""
        if self.calibration is None:
            from maskgate.errors import ConversionError

            raise ConversionError(f"{self.target.name}: {self.target.precision} needs a calibration set; give "
                                  "'maskgate build' one with --calibration DIR, or build fp32/fp16")
        return self.calibration

    @property
    def onnx_fp32(self) -> Path:
        """The model's fp32 ONNX export (OpenVINO and the int8 diagnosis read it too)."""
        path: Path = self.shared.onnx_fp32(self.options.onnx)
        return path

    def sample_input(self) -> np.ndarray:
        return np.zeros(self.spec.input.shape, np.float32)
