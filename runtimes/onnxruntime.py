"""ONNX Runtime: runner for ONNX bundles, and the backend that maps device kinds to
execution providers (only those ``get_available_providers()`` lists)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskgate.errors import DependencyError, DeviceError, ModelError
from maskgate.formats import formats_of_backend

from .backend import Accelerator, Backend, BackendStatus, OpenOptions, model_path, model_source, not_installed
from .base import Runner, SessionRunner
from .placement import onnxruntime_placement

if TYPE_CHECKING:
    from maskgate.converters.manifest import Manifest

# Providers that need options to pick the accelerator kind they were listed for.
_PROVIDER_OPTIONS = {("npu", "OpenVINOExecutionProvider"): {"device_type": "NPU"}}


class OnnxRuntimeRunner(SessionRunner):
    backend = "onnxruntime"

    def __init__(self, model: str | Path | bytes, *, output_names: tuple[str, ...] | None = None,
                 threads: int | None = None, providers: list[Any] | None = None, graph_optimization: str = "all",
                 where: str | Path | None = None):
        """``model``: a path, or the model's bytes (``where`` then names it in errors)."""
        super().__init__()
        path = where or (model if not isinstance(model, bytes) else "the ONNX model")
        try:
            import onnxruntime as ort
        except ModuleNotFoundError as exc:
            raise DependencyError("onnxruntime", extra="onnx", purpose="running ONNX builds") from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        levels = {
            "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        options.graph_optimization_level = levels[graph_optimization]
        options.log_severity_level = 3
        # ORT's intra-op workers spin between runs by default; a pipeline holds three sessions,
        # and on a small CPU their spinning threads take the cores from each other.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")  # the placement
        providers = providers or ["CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                           providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise ModelError(f"{path}: ONNX Runtime cannot load it with {_names(providers)} ({exc}); "
                             "is it a complete ONNX file?") from exc
        wanted = _names(providers)[0]
        if wanted not in session.get_providers():  # ORT falls back silently: say so instead
            raise DeviceError(f"{path}: ONNX Runtime did not enable {wanted} (session has {session.get_providers()})")
        self.device = wanted.removesuffix("ExecutionProvider").lower()
        self.placement = onnxruntime_placement(session, wanted)
        self._bind(session, output_names)


def _names(providers: list[Any]) -> list[str]:
    return [p[0] if isinstance(p, tuple) else p for p in providers]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    formats = formats_of_backend("onnxruntime")
    devices = {
        "gpu": ("TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider",
                "CoreMLExecutionProvider"),
        "npu": ("QNNExecutionProvider", "VitisAIExecutionProvider", "OpenVINOExecutionProvider"),
        "cpu": ("CPUExecutionProvider",),
    }

    def status(self) -> BackendStatus:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            return not_installed(self.name, self.formats, "onnxruntime", "onnx")
        from .qnn import EP as QNN_EP
        from .qnn import simulated_here

        available = set(ort.get_available_providers())
        accelerators = []
        for kind, providers in self.devices.items():
            for provider in providers:
                usable = provider in available
                reason = "" if usable else (f"not in onnxruntime.get_available_providers() of this onnxruntime "
                                            f"build ({ort.__version__}); it needs a package built with it, e.g. "
                                            f"{_PACKAGE_HINT.get(provider, 'a vendor onnxruntime build')}")
                if not usable and provider == QNN_EP and importlib.util.find_spec("onnxruntime_qnn") is not None:
                    # installed, and not a provider of this onnxruntime: a plugin, registered by the qnn backend
                    reason = ("onnxruntime-qnn is installed: its plugin EP runs QNN bundles (maskgate build --formats "
                              "qnn) under the qnn backend, not ONNX bundles here"
                              + ("; on x86 its HTP is Qualcomm's simulator, not an NPU" if simulated_here() else ""))
                if usable and provider == QNN_EP and simulated_here():  # onnxruntime-qnn's plugin on x86
                    usable, reason = False, ("on x86 the QNN EP's HTP is Qualcomm's simulator, not an NPU; QNN "
                                             "bundles (maskgate build --formats qnn) run there under the qnn backend")
                accelerators.append(Accelerator(kind, provider, usable, reason))
        return BackendStatus(self.name, self.formats, True, ort.__version__, tuple(accelerators))

    def open(self, bundle: Path, manifest: Manifest, accelerator: Accelerator, *, options: OpenOptions) -> Runner:
        provider_options = _PROVIDER_OPTIONS.get((accelerator.kind, accelerator.name))
        primary = (accelerator.name, provider_options) if provider_options else accelerator.name
        # CPU stays listed after an accelerator for the ops it does not take (ORT's own partitioning).
        providers = [primary] + ([] if accelerator.name == "CPUExecutionProvider" else ["CPUExecutionProvider"])
        outputs = manifest.output_names
        runner = OnnxRuntimeRunner(model_source(bundle, manifest, options), output_names=outputs,
                                   threads=options.threads, providers=providers, where=model_path(bundle, manifest),
                                   graph_optimization=options.extra.get("graph_optimization", "all"))
        runner.expect_inputs(manifest)
        return runner


_PACKAGE_HINT = {
    "CUDAExecutionProvider": "onnxruntime-gpu with CUDA 12 and cuDNN 9",
    "TensorrtExecutionProvider": "onnxruntime-gpu with TensorRT libraries",
    "DmlExecutionProvider": "onnxruntime-directml (Windows)",
    "CoreMLExecutionProvider": "onnxruntime on macOS",
    "QNNExecutionProvider": "onnxruntime-qnn (Qualcomm NPUs)",
    "VitisAIExecutionProvider": "the AMD Ryzen AI onnxruntime build",
    "OpenVINOExecutionProvider": "onnxruntime-openvino (Intel NPUs)",
}
