"""ONNX Runtime runner for ONNX bundles."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sdk.errors import DependencyError, ModelError

from .base import Runner


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def __init__(self, path: str | Path, *, output_names: tuple[str, ...] | None = None, threads: int | None = None):
        super().__init__()
        try:
            import onnxruntime as ort
        except ModuleNotFoundError as exc:
            raise DependencyError("onnxruntime", extra="onnx", purpose="running ONNX builds") from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ModelError(f"{path}: ONNX Runtime cannot load it ({exc}); is it a complete ONNX file?") from exc
        self._inputs = tuple(i.name for i in self._session.get_inputs())
        actual = tuple(o.name for o in self._session.get_outputs())
        self._outputs = tuple(output_names or actual)
        self._actual = actual

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._session.run(list(self._actual), {n: feed[n] for n in self._inputs})
        return dict(zip(self._outputs, out))

    def close(self) -> None:
        self._session = None
        super().close()
