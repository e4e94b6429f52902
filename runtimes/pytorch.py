"""PyTorch reference runner: fp32 on CUDA where present, else CPU.

This is the full-precision reference every build is checked against; it is only
available where torch is installed (never required on the device).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskgate.errors import DependencyError, DeviceError, ModelError

from .backend import Accelerator, Backend, BackendStatus, OpenOptions
from .base import Runner

if TYPE_CHECKING:
    from maskgate.converters.manifest import Manifest


def _torch() -> Any:  # the torch module (imported on first use: the camera install has none)
    try:
        import torch
    except ModuleNotFoundError as exc:
        raise DependencyError("torch", extra="torch", purpose="the PyTorch reference runtime") from exc
    return torch


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' where a GPU is usable, else 'cpu'; 'gpu' is an alias of 'cuda'."""
    torch = _torch()
    device = device.lower()
    if device == "gpu":
        device = "cuda"
    has_cuda = torch.cuda.is_available()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cpu":
        return "cpu"
    if device.startswith("cuda"):
        if not has_cuda:
            raise DeviceError(f"device {device!r} asked for, but torch sees no CUDA GPU; available: cpu")
        return device
    raise DeviceError(f"the PyTorch runtime has no device {device!r}; use auto, cpu, cuda or cuda:N")


class TorchRunner(Runner):
    backend = "pytorch"

    def __init__(
        self, model: Any, *, input_names: tuple[str, ...], output_names: tuple[str, ...], device: str = "auto"
    ):
        super().__init__()
        torch = _torch()
        self.device = resolve_device(device)
        self._torch = torch
        self._model = model.to(self.device).eval()
        self._inputs = tuple(input_names)
        self._outputs = tuple(output_names)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feed[n])).to(self.device) for n in self._inputs]
            out = self._model(*args)
        if isinstance(out, torch.Tensor):
            out = (out,)
        return {name: t.float().cpu().numpy() for name, t in zip(self._outputs, out)}

    def _infer_batch(self, name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._infer({name: batch})  # a torch module takes any batch

    def close(self) -> None:
        self._model = None
        super().close()


class TorchBackend(Backend):
    """The fp32 reference: listed by ``maskgate backends``; it runs models, not bundles."""

    name = "pytorch"
    formats = ()
    devices = {"gpu": ("cuda",), "npu": (), "cpu": ("cpu",)}

    def status(self) -> BackendStatus:
        try:
            torch = _torch()
        except DependencyError:
            return BackendStatus(
                self.name,
                self.formats,
                False,
                reason="torch is not installed (not needed on the device; pip install 'maskgate[torch]' "
                "for the reference)",
            )
        cuda = torch.cuda.is_available()
        gpu_reason = "" if cuda else (f"torch.cuda.is_available() is False (torch {torch.__version__}"
                                      f"{', a CPU-only build' if torch.version.cuda is None else ''})")
        name = torch.cuda.get_device_name(0) if cuda else "cuda"
        accelerators = (Accelerator("gpu", name, cuda, gpu_reason), Accelerator("cpu", "cpu", True))
        return BackendStatus(self.name, self.formats, True, torch.__version__, accelerators)

    def open(self, bundle: Path, manifest: Manifest, accelerator: Accelerator, *, options: OpenOptions) -> Runner:
        raise ModelError(f"{bundle}: the PyTorch backend runs reference models (TorchRunner), not build bundles")
