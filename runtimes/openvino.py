"""OpenVINO runner for OpenVINO IR bundles (CPU here; the device layer picks others)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from sdk.errors import DependencyError, ModelError

from .base import Runner


class OpenVinoRunner(Runner):
    backend = "openvino"

    def __init__(self, path: str | Path, *, output_names: tuple[str, ...] | None = None, device: str = "CPU",
                 threads: int | None = None):
        super().__init__()
        try:
            import openvino as ov
        except ModuleNotFoundError as exc:
            raise DependencyError("openvino", extra="openvino", purpose="running OpenVINO builds") from exc
        core = ov.Core()
        # CPUs with bf16 units run f32 models in bf16 by default: ask for f32, so an fp32
        # build computes in fp32 and a build's error is its own, not the plugin's choice.
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._compiled = core.compile_model(str(path), device, config)
        except Exception as exc:
            raise ModelError(f"{path}: OpenVINO cannot load or compile it for {device} ({exc})") from exc
        self.device = device.lower()
        self._inputs = tuple(p.get_any_name() for p in self._compiled.inputs)
        self._ports = list(self._compiled.outputs)
        self._outputs = tuple(output_names or (p.get_any_name() for p in self._ports))
        self._request = self._compiled.create_infer_request()

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._request.infer({n: feed[n] for n in self._inputs})
        return {name: np.asarray(result[port]) for name, port in zip(self._outputs, self._ports)}

    def close(self) -> None:
        self._request = None
        self._compiled = None
        super().close()
