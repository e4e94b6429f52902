"""OpenVINO: runner for OpenVINO IR bundles, and the backend listing the devices that
``Core().available_devices`` reports (CPU, GPU, NPU)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from maskgate.errors import BundleError, DependencyError, ModelError
from maskgate.formats import formats_of_backend

from .backend import Accelerator, Backend, BackendStatus, OpenOptions, model_path, not_installed
from .base import Runner
from .placement import openvino_placement

if TYPE_CHECKING:
    from maskgate.converters.manifest import Manifest


class OpenVinoRunner(Runner):
    backend = "openvino"

    def __init__(self, path: str | Path, *, output_names: tuple[str, ...] | None = None, device: str = "CPU",
                 threads: int | None = None, model: tuple[bytes, bytes] | None = None):
        """``model``: the IR's (xml, bin) bytes, loaded instead of reading ``path`` (which names it)."""
        super().__init__()
        try:
            import openvino as ov
        except ModuleNotFoundError as exc:
            raise DependencyError("openvino", extra="openvino", purpose="running OpenVINO builds") from exc
        core = ov.Core()
        config: dict[str, str | int] = {"PERFORMANCE_HINT": "LATENCY"}
        if not device.upper().startswith("NPU"):
            # CPUs with bf16 units and GPUs run f32 models at lower precision by default: ask
            # for f32, so a build's error is its own, not the plugin's choice. (NPUs are fp16 only.)
            config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads and device.upper().startswith("CPU"):
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            source = core.read_model(model[0], ov.Tensor(np.frombuffer(model[1], np.uint8))) if model is not None \
                else str(path)
            self._compiled = core.compile_model(source, device, config)
        except Exception as exc:
            raise ModelError(f"{path}: OpenVINO cannot load or compile it for {device} ({exc})") from exc
        self.device = device.lower()
        self.placement = openvino_placement(self._compiled, device)
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


class OpenVinoBackend(Backend):
    name = "openvino"
    formats = formats_of_backend("openvino")
    devices = {"gpu": ("GPU",), "npu": ("NPU",), "cpu": ("CPU",)}

    def status(self) -> BackendStatus:
        try:
            import openvino as ov
        except ModuleNotFoundError:
            return not_installed(self.name, self.formats, "openvino", "openvino")
        try:
            found = list(ov.Core().available_devices)
        except Exception as exc:  # a broken plugin install
            return BackendStatus(self.name, self.formats, True, ov.__version__, reason=f"Core() failed: {exc}")
        accelerators = []
        for kind, devices in self.devices.items():
            for device in devices:
                matches = [d for d in found if d == device or d.startswith(device + ".")]
                for match in matches:
                    accelerators.append(Accelerator(kind, match, True))
                if not matches:
                    accelerators.append(
                        Accelerator(
                            kind,
                            device,
                            False,
                            f"OpenVINO reports devices {found}: no {device} "
                            f"plugin device (driver or plugin not installed?)",
                        )
                    )
        return BackendStatus(self.name, self.formats, True, ov.__version__, tuple(accelerators))

    def open(self, bundle: Path, manifest: Manifest, accelerator: Accelerator, *, options: OpenOptions) -> Runner:
        outputs = manifest.output_names
        path = model_path(bundle, manifest)
        verified = options.verified
        weights = path.with_suffix(".bin").name
        if verified is not None and weights not in verified.files:
            raise BundleError(f"{bundle}: its manifest does not list {weights}, so it would run unchecked; rebuild it")
        runner = OpenVinoRunner(path, output_names=outputs, device=accelerator.name, threads=options.threads,
                                model=(verified.model, verified.files[weights]) if verified is not None else None)
        runner.expect_inputs(manifest)
        return runner
