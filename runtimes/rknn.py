"""Rockchip RKNN: ``.rknn`` bundles on the camera's NPU through rknn-toolkit-lite2 (aarch64
boards with the RKNPU driver and librknnrt), and on a workstation in rknn-toolkit2's
simulator (device kind ``npu-sim``, for checks only).

The simulator runs only a model built in its own process, so opening a bundle there
rebuilds it from what the bundle carries (source ONNX, calibration pixels, the recorded
request) and compares the rebuilt file with the bundled one byte by byte
(``RknnSimulatorRunner.rebuild``; ``maskgate check`` reports it): identical, or exactly
which bytes differ. rknn-toolkit2 2.5.0 does not rebuild byte for byte (it writes some of
its process memory into the file); a rebuild of another size is refused.

Every runner takes the normalized input all bundles take (the manifest's input spec) and
hands the NPU the pixels it was made from: the model applies mean/std itself.
"""
from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskgate.converters import dist_version
from maskgate.converters.binding import read_stamp, rknn_stamp_string
from maskgate.errors import BundleError, DependencyError, ModelError
from maskgate.formats import formats_of_backend

from .backend import Accelerator, Backend, BackendStatus, OpenOptions, model_path, verified_folder
from .base import Runner

if TYPE_CHECKING:
    from maskgate.converters.manifest import Manifest

NPU = "RKNPU (rknn-toolkit-lite2)"
SIMULATOR = "RKNN simulator (rknn-toolkit2)"
# Where the RKNPU driver shows itself on Rockchip boards (kernel 5.10 / 6.1 BSPs, mainline).
NPU_NODES = ("/dev/rknpu", "/sys/kernel/debug/rknpu", "/proc/device-tree/npu@fdab0000", "/sys/class/misc/rknpu")
RUNTIME_LIBRARIES = ("/usr/lib/librknnrt.so", "/usr/lib64/librknnrt.so", "/usr/lib/aarch64-linux-gnu/librknnrt.so")


class _PixelRunner(Runner):
    """Turns the normalized NCHW input back into pixels for a model that normalizes itself."""

    def __init__(self, manifest: Manifest):
        super().__init__()
        spec = manifest.input
        self._mean, self._std = spec.mean, spec.std
        self._inputs = (spec.name,)
        self._outputs = manifest.output_names

    def pixels(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return to_pixels(feed[self._inputs[0]], self._mean, self._std)


def to_pixels(x: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """The pixels a normalized NCHW tensor was made from (``x * std + mean``, per channel)."""
    return x * np.asarray(std, np.float32).reshape(1, 3, 1, 1) + np.asarray(mean, np.float32).reshape(1, 3, 1, 1)


@dataclass(frozen=True)
class RebuildComparison:
    """The rebuilt model against the bundled one."""

    identical: bool
    size: int
    rebuilt_size: int
    differing_bytes: int
    ranges: tuple[tuple[int, int], ...]  # [start, end) of each run of differing bytes (the first 20)

    @property
    def acceptable(self) -> bool:
        """The same size: the same model's layout, bytes here and there aside (rknn-toolkit2 2.5.0
        rebuilds of one input differed in 0.02 % (rk3568) to 0.24 % (rk3588) of their bytes).
        A different size is another model: its figures would say nothing of the bundled one."""
        return self.size == self.rebuilt_size

    def describe(self) -> str:
        if self.identical:
            return f"rebuilt model byte-identical to the bundled one ({self.size} bytes)"
        if self.size != self.rebuilt_size:
            return f"rebuilt model is {self.rebuilt_size} bytes, the bundled one {self.size}"
        spans = ", ".join(f"{a}-{b - 1}" for a, b in self.ranges[:6])
        return (f"rebuilt model differs from the bundled one in {self.differing_bytes} of {self.size} bytes, in "
                f"{len(self.ranges)}{'+' if len(self.ranges) == 20 else ''} runs (offsets {spans}"
                f"{', ...' if len(self.ranges) > 6 else ''}); the rest is identical")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "acceptable": self.acceptable, "summary": self.describe()}


def compare_bytes(bundled: bytes, rebuilt: bytes) -> RebuildComparison:
    a = np.frombuffer(bundled, np.uint8)
    b = np.frombuffer(rebuilt, np.uint8)
    if a.size != b.size:
        return RebuildComparison(False, a.size, b.size, abs(a.size - b.size), ())
    differ = np.flatnonzero(a != b)
    if differ.size == 0:
        return RebuildComparison(True, a.size, b.size, 0, ())
    breaks = np.flatnonzero(np.diff(differ) > 1)
    starts = np.concatenate([[differ[0]], differ[breaks + 1]])
    ends = np.concatenate([differ[breaks], [differ[-1]]]) + 1
    ranges = tuple((int(s), int(e)) for s, e in zip(starts[:20], ends[:20]))
    return RebuildComparison(False, a.size, b.size, int(differ.size), ranges)


class RknnSimulatorRunner(_PixelRunner):
    backend = "rknn"

    def __init__(self, bundle: Path, manifest: Manifest):
        from .rknn_env import BuildRequest, Worker

        super().__init__(manifest)
        q = manifest.quantizer or {}
        missing = [k for k in ("source", "calibration", "target", "mean", "std", "algorithm") if k not in q]
        if missing:
            raise BundleError(f"{bundle}: its manifest's quantizer lacks {missing}, which a rebuild in the RKNN "
                              "simulator needs; rebuild the bundle with 'maskgate build --formats rknn'")
        bundled = model_path(bundle, manifest)
        custom = rknn_stamp_string(read_stamp("rknn", bundled))  # the bytes the bundled model carries
        self._worker = Worker()
        try:
            rebuilt = self._worker.folder / "rebuilt.rknn"
            self._worker.build(BuildRequest(onnx=str(bundle / q["source"]), target=q["target"], mean=q["mean"],
                                            std=q["std"], calibration=str(bundle / q["calibration"]),
                                            algorithm=q["algorithm"], custom_string=custom, export=str(rebuilt),
                                            hybrid=q.get("hybrid") or []))
            self.rebuild = compare_bytes(bundled.read_bytes(), rebuilt.read_bytes())
        except Exception:
            self._worker.close()
            raise
        if not self.rebuild.acceptable:
            self._worker.close()
            raise ModelError(f"{bundled}: {self.rebuild.describe()}: the simulator's figures would not be the "
                             "bundled model's; rebuild the bundle with this toolkit (maskgate build --formats rknn)")
        self.device = SIMULATOR

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._worker.infer(self.pixels(feed))))

    def analyze(self, feed: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """Per-layer error of the quantized model against float on one input (the toolkit's accuracy_analysis)."""
        return self._worker.analyze(self.pixels(feed))

    def close(self) -> None:
        self._worker.close()
        super().close()


def layer_report(bundle: Path, manifest: Manifest, x: np.ndarray, *, shown: int = 8) -> dict[str, Any]:
    """The toolkit's per-layer error of a bundle (rebuilt in the simulator) on one input: the
    layers whose own quantization loses most (lowest single-layer cosine) first."""
    with RknnSimulatorRunner(Path(bundle), manifest) as runner:
        rows = runner.analyze({manifest.input.name: x})
    worst = sorted(rows, key=lambda row: row["single_cosine"])[:shown]
    return {"method": "rknn-toolkit2 accuracy_analysis in its simulator, on one calibration input: each layer's "
                      "output against float, alone (single) and with every layer before it (entire)",
            "layers": len(rows), "worst_layers": worst, "last": rows[-1] if rows else None}


class RknnLiteRunner(_PixelRunner):
    backend = "rknn"

    def __init__(self, path: Path, manifest: Manifest):
        super().__init__(manifest)
        try:
            from rknnlite.api import RKNNLite
        except ModuleNotFoundError as exc:
            raise DependencyError("rknn-toolkit-lite2", extra=None, purpose="running RKNN builds on the camera",
                                  install="pip install rknn-toolkit-lite2 (aarch64 wheels)") from exc
        self._rknn = RKNNLite(verbose=False)
        if self._rknn.load_rknn(str(path)) != 0 or self._rknn.init_runtime() != 0:
            raise ModelError(f"{path}: rknn-toolkit-lite2 cannot load it on this NPU; was it built for this SoC "
                             f"({manifest.soc})?")
        self.device = NPU

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._rknn.inference(inputs=[self.pixels(feed)], data_format="nchw")
        return {name: np.asarray(o, np.float32) for name, o in zip(self._outputs, outputs)}

    def close(self) -> None:
        self._rknn.release()
        super().close()


class RknnBackend(Backend):
    name = "rknn"
    formats = formats_of_backend("rknn")
    devices = {"npu": (NPU,), "npu-sim": (SIMULATOR,)}

    def status(self) -> BackendStatus:
        from . import rknn_env

        machine = platform.machine().lower()
        npu_reason = _npu_problem(machine)
        sim_reason = ""
        if machine not in ("x86_64", "amd64"):
            sim_reason = f"rknn-toolkit2's simulator runs on x86_64 workstations, this is {machine}"
        else:
            try:
                rknn_env.python()
            except rknn_env.ToolkitMissingError as exc:
                sim_reason = str(exc)
        lite = dist_version("rknn-toolkit-lite2")
        toolkit = rknn_env.versions().get("rknn-toolkit2")
        version = lite or toolkit
        return BackendStatus(self.name, self.formats, bool(lite or toolkit), version,
                             (Accelerator("npu", NPU, not npu_reason, npu_reason),
                              Accelerator("npu-sim", SIMULATOR, not sim_reason, sim_reason)),
                             reason="" if (lite or toolkit) else "neither rknn-toolkit-lite2 (camera) nor the "
                             "rknn-toolkit2 environment (workstation: maskgate setup rknn) is installed")

    def open(self, bundle: Path, manifest: Manifest, accelerator: Accelerator, *, options: OpenOptions) -> Runner:
        # Both toolkits read files by path: a private copy of the verified bytes, loaded (the
        # simulator rebuilds in its worker from it) before the copy is removed.
        with verified_folder(Path(bundle), options) as folder:
            runner = (RknnSimulatorRunner(folder, manifest) if accelerator.kind == "npu-sim"
                      else RknnLiteRunner(model_path(folder, manifest), manifest))
        runner.expect_inputs(manifest)
        return runner


def _npu_problem(machine: str) -> str:
    """Why the RKNPU cannot run here ("" when it can)."""
    if machine not in ("aarch64", "arm64"):
        return f"the RKNPU is on Rockchip aarch64 boards; this is {machine}"
    if dist_version("rknn-toolkit-lite2") is None:
        return "rknn-toolkit-lite2 is not installed (pip install rknn-toolkit-lite2)"
    if not any(os.path.exists(p) for p in NPU_NODES):
        return f"no RKNPU device here (none of {', '.join(NPU_NODES)}): not a Rockchip board, or its driver is absent"
    if not any(os.path.exists(p) for p in RUNTIME_LIBRARIES):
        return f"librknnrt.so is not installed (looked in {', '.join(RUNTIME_LIBRARIES)})"
    return ""
