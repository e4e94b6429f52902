"""Open a build bundle with the runner of its format (CPU; device choice is the device layer's)."""
from __future__ import annotations

from pathlib import Path

from .base import Runner

MODEL_FILES = {"onnx": "model.onnx", "openvino": "model.xml", "tflite": "model.tflite"}


def runner_for(bundle: str | Path, manifest: dict, *, threads: int | None = None) -> Runner:
    """A runner whose input and output names are the model spec's logical names."""
    path = Path(bundle) / MODEL_FILES[manifest["format"]]
    inputs = tuple(t["name"] for t in manifest["inputs"])
    outputs = tuple(t["name"] for t in manifest["outputs"])
    fmt = manifest["format"]
    if fmt == "onnx":
        from .onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(path, output_names=outputs, threads=threads)
    if fmt == "openvino":
        from .openvino import OpenVinoRunner

        return OpenVinoRunner(path, output_names=outputs, threads=threads)
    from .tflite import TfliteRunner

    return TfliteRunner(path, input_names=inputs, output_names=outputs, threads=threads)
