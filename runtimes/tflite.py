"""TFLite / LiteRT runner for TFLite bundles (ai-edge-litert, or tflite-runtime).

Full-int8 builds take and give int8 tensors; the runner quantizes the float input and
dequantizes the outputs with each tensor's (scale, zero point), so every backend keeps
the same float contract and the shared pre/post-processing.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sdk.errors import DependencyError, ModelError

from .base import Runner


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ModuleNotFoundError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ModuleNotFoundError as exc:
            raise DependencyError("ai-edge-litert", extra="tflite", purpose="running TFLite builds") from exc
    return Interpreter


class TfliteRunner(Runner):
    backend = "tflite"

    def __init__(self, path: str | Path, *, input_names: tuple[str, ...] | None = None,
                 output_names: tuple[str, ...] | None = None, threads: int | None = None):
        super().__init__()
        Interpreter = _interpreter_class()
        try:
            self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
            self._interpreter.allocate_tensors()
        except Exception as exc:
            raise ModelError(f"{path}: the TFLite interpreter cannot load it ({exc}); is it a complete .tflite file?") from exc
        ins = self._interpreter.get_input_details()
        # Outputs in signature order (output_0, output_1, ...), whatever order the graph lists them.
        outs = sorted(self._interpreter.get_output_details(), key=lambda d: _output_index(d["name"]))
        self._in = ins
        self._out = outs
        self._inputs = tuple(input_names or (d["name"] for d in ins))
        self._outputs = tuple(output_names or (d["name"] for d in outs))
        if len(self._outputs) != len(outs):
            raise ModelError(f"{path}: has {len(outs)} outputs, expected {len(self._outputs)} ({list(self._outputs)})")

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, detail in zip(self._inputs, self._in):
            self._interpreter.set_tensor(detail["index"], _quantize(np.asarray(feed[name]), detail))
        self._interpreter.invoke()
        return {name: _dequantize(self._interpreter.get_tensor(d["index"]), d) for name, d in zip(self._outputs, self._out)}

    def close(self) -> None:
        self._interpreter = None
        super().close()


def _output_index(name: str) -> int:
    match = re.search(r"output_(\d+)", name)
    return int(match.group(1)) if match else 0


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype in (np.int8, np.uint8):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
    return np.ascontiguousarray(x, dtype=dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] in (np.int8, np.uint8):
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * np.float32(scale)
    return y.astype(np.float32, copy=False)
