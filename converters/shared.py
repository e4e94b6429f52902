"""The intermediate files one model's builds share, each made once on first use.

Every ONNX and OpenVINO build starts from the same fp32 ONNX export, every TFLite build
from the same fp32 TFLite conversion; a converter asks ``job.shared`` for what it needs
(``onnx_fp32``, or ``file(name, make)`` for a format's own intermediate) instead of the
build knowing which format needs what.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from maskgate.formats.onnx import OnnxOptions


class SharedExports:
    """``work``: a folder of this model's own; ``reference``: the fp32 reference's outputs for
    one input tensor (OpenVINO's accuracy control scores against it); ``onnx_fp32``: an
    existing fp32 export to use instead of exporting."""

    def __init__(self, module: Any, spec: Any, work: Path, *,
                 reference: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
                 onnx_fp32: Path | None = None):
        self.module = module
        self.spec = spec
        self.work = Path(work)
        self.reference = reference
        self.notes: list[str] = []  # what the exports said (recorded in every manifest of the model)
        self._made: dict[str, Path] = {}
        if onnx_fp32 is not None:
            self._made["fp32.onnx"] = Path(onnx_fp32)

    def file(self, name: str, make: Callable[[Path], list[str] | None]) -> Path:
        """``work/name``, made by ``make(path)`` (which may return notes) the first time it is asked for."""
        if name not in self._made:
            path = self.work / name
            notes = make(path)
            self.notes += list(notes or [])
            self._made[name] = path
        return self._made[name]

    def onnx_fp32(self, options: OnnxOptions) -> Path:
        """The fp32 ONNX export (``options``: the build's ``OnnxOptions``: opset, simplify)."""
        from .onnx import export_fp32

        return self.file("fp32.onnx", lambda path: export_fp32(self.module, self.spec, path, opset=options.opset,
                                                               simplify=options.simplify))
