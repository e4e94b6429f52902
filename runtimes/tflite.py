"""TFLite / LiteRT runner for TFLite bundles (ai-edge-litert, or tflite-runtime).

Full-int8 builds take and give int8 tensors; the runner quantizes the float input and
dequantizes the outputs with each tensor's (scale, zero point), so every backend keeps
the same float contract and the shared pre/post-processing.
"""
from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from maskgate.console import native_stderr_filtered
from maskgate.errors import DependencyError, ModelError
from maskgate.formats import formats_of_backend

from .backend import Accelerator, Backend, BackendStatus, OpenOptions, model_path
from .base import Runner
from .placement import tflite_placement

if TYPE_CHECKING:
    from maskgate.converters.manifest import Manifest

#: an extra delegate library (a vendor NPU's), offered as an npu accelerator
ENV_DELEGATE = "MASKGATE_TFLITE_DELEGATE"


def _interpreter_module() -> ModuleType:
    """``ai_edge_litert.interpreter``, or ``tflite_runtime.interpreter`` where that is what is installed."""
    try:
        from ai_edge_litert import interpreter
    except ModuleNotFoundError:
        try:
            from tflite_runtime import interpreter
        except ModuleNotFoundError as exc:
            raise DependencyError("ai-edge-litert", extra="tflite", purpose="running TFLite builds") from exc
    module: ModuleType = interpreter
    return module


class TfliteRunner(Runner):
    backend = "tflite"

    def __init__(self, path: str | Path, *, input_names: tuple[str, ...] | None = None,
                 output_names: tuple[str, ...] | None = None, threads: int | None = None, delegate: str | None = None,
                 model: bytes | None = None):
        """``delegate``: a delegate library (GPU, Edge TPU, any external one) by name or path;
        None runs on the CPU (XNNPACK). ``model``: the model's bytes, loaded instead of reading
        ``path`` (which then only names it)."""
        super().__init__()
        module = _interpreter_module()
        delegates = []
        if delegate:
            try:
                delegates = [module.load_delegate(delegate)]
            except (ValueError, OSError) as exc:
                raise ModelError(f"{path}: TFLite delegate {delegate!r} cannot be loaded ({exc})") from exc
        try:
            with native_stderr_filtered():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                source = {"model_content": model} if model is not None else {"model_path": str(path)}
                self._interpreter = module.Interpreter(**source, num_threads=threads,
                                                       experimental_delegates=delegates or None)
                self._interpreter.allocate_tensors()
        except Exception as exc:
            raise ModelError(
                f"{path}: the TFLite interpreter cannot load it ({exc}); is it a complete .tflite file?"
            ) from exc
        self.device = Path(delegate).name if delegate else "xnnpack"
        try:  # the node list after delegation: a private API, in LiteRT and tflite-runtime alike
            self.placement = tflite_placement(self._interpreter._get_ops_details(), self.device)
        except (AttributeError, KeyError, TypeError, ValueError):
            self.placement = None
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
        return {
            name: _dequantize(self._interpreter.get_tensor(d["index"]), d) for name, d in zip(self._outputs, self._out)
        }

    def close(self) -> None:
        self._interpreter = None
        super().close()


def _output_index(name: str) -> int:
    match = re.search(r"output_(\d+)", name)
    return int(match.group(1)) if match else 0


def _quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    dtype = detail["dtype"]
    if dtype in (np.int8, np.uint8):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        quantized: np.ndarray = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
        return quantized
    return np.ascontiguousarray(x, dtype=dtype)


def _dequantize(y: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if detail["dtype"] in (np.int8, np.uint8):
        scale, zero = detail["quantization"]
        real: np.ndarray = (y.astype(np.float32) - zero) * np.float32(scale)
        return real
    return y.astype(np.float32, copy=False)


class TfliteBackend(Backend):
    name = "tflite"
    formats = formats_of_backend("tflite")
    # Delegates are shared libraries loaded by name; the Edge TPU runs only models compiled
    # for it (edgetpu_compiler), which the selector learns from the first inference.
    devices = {"gpu": ("libtensorflowlite_gpu_delegate.so",), "npu": ("libedgetpu.so.1",), "cpu": ("xnnpack",)}

    def status(self) -> BackendStatus:
        import os

        try:
            module = _interpreter_module()
        except DependencyError:
            return BackendStatus(
                self.name,
                self.formats,
                False,
                reason="neither ai-edge-litert nor tflite-runtime is installed (pip install 'maskgate[tflite]')",
            )
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        package = module.__name__.split(".")[0]
        try:
            version = dist_version("ai-edge-litert" if package == "ai_edge_litert" else "tflite-runtime")
        except PackageNotFoundError:
            version = None
        accelerators = [Accelerator("cpu", "xnnpack", True)]
        libraries = [(kind, lib) for kind in ("npu", "gpu") for lib in self.devices[kind]]
        if os.environ.get(ENV_DELEGATE):
            libraries.insert(0, ("npu", os.environ[ENV_DELEGATE]))
        for kind, library in libraries:
            reason = _delegate_problem(module, library)
            accelerators.append(Accelerator(kind, library, reason is None, reason or ""))
        return BackendStatus(self.name, self.formats, True, f"{package} {version or ''}".strip(), tuple(accelerators))

    def open(self, bundle: Path, manifest: Manifest, accelerator: Accelerator, *, options: OpenOptions) -> Runner:
        inputs = manifest.input_names
        outputs = manifest.output_names
        delegate = None if accelerator.name == "xnnpack" else accelerator.name
        runner = TfliteRunner(model_path(bundle, manifest), input_names=inputs, output_names=outputs,
                              threads=options.threads, delegate=delegate,
                              model=options.verified.model if options.verified is not None else None)
        runner.expect_inputs(manifest)
        return runner


def _delegate_problem(module: ModuleType, library: str) -> str | None:
    """Why a delegate library cannot be used here, or None when it loads."""
    import ctypes

    try:  # the dynamic loader first: LiteRT's load_delegate leaves a broken object behind when this fails
        ctypes.CDLL(library)
    except OSError as exc:
        return f"delegate library cannot be loaded: {exc}"
    try:
        module.load_delegate(library)
    except (ValueError, OSError) as exc:  # present, but no device behind it (an unplugged Edge TPU)
        return f"delegate library loads but the delegate does not start: {exc}"
    return None
