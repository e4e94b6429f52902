"""Qualcomm QNN through onnxruntime-qnn: the plugin execution provider for the stock
onnxruntime, running a bundle's EPContext model on the Hexagon NPU (HTP).

On x86_64 the HTP library is a simulator (seconds a frame, device kind ``npu-sim``): it
checks builds, and the selector never takes it for the camera's NPU. The EP reports a
"CPU" device either way, so the kind comes from the machine. Sessions refuse CPU
fallback by default (``strict``): a model that does not fit the NPU fails to open
instead of running slowly on the CPU; without ``strict``, light nodes may fall back but
every heavy one (convolutions, matrix products, the compiled context) must land on the NPU.
"""
from __future__ import annotations

import contextlib
import logging
import platform
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskgate.errors import DependencyError, DeviceError, ModelError
from maskgate.formats import formats_of_backend

from .backend import Accelerator, Backend, BackendStatus, OpenOptions, model_path, verified_folder
from .base import Runner, SessionRunner
from .placement import from_assignment

if TYPE_CHECKING:
    import numpy as np

    from maskgate.converters.manifest import Manifest

EP = "QNNExecutionProvider"
HTP = "QNN HTP"
HTP_SIMULATOR = "QNN HTP simulator"
HEAVY_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "EPContext"})
log = logging.getLogger(__name__)
# One lock for everything that touches onnxruntime-qnn's HTP library in this process. A
# session created (a compile, or an EPContext model opened) while another thread runs a
# session segfaulted in the x86 library (2.7.0): a build converts the next QNN bundle while
# its verification lane runs the last one in the simulator. Runs were serialized inside the
# library already (two threads ran no faster than one), so holding it costs nothing.
HTP_LOCK = threading.RLock()
_done = False


class SocScope:
    """Sessions of one SoC at a time in this process. Compiling a context for a v73 SoC while a
    v68 session was open made that session's next run fail (QNN_COMMON_ERROR_GENERAL; x86
    simulator, onnxruntime-qnn 2.7.0): the HTP backend is set up for one SoC. Sessions of the
    same SoC share the scope; one for another SoC waits until they are all closed."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._soc: str | None = None
        self._open = 0

    def enter(self, soc: str) -> None:
        with self._changed:
            while self._open and self._soc != soc:
                self._changed.wait()
            self._soc = soc
            self._open += 1

    def leave(self) -> None:
        with self._changed:
            self._open -= 1
            if not self._open:
                self._soc = None
                self._changed.notify_all()

    @contextlib.contextmanager
    def holding(self, soc: str) -> Iterator[None]:
        self.enter(soc)
        try:
            yield
        finally:
            self.leave()


SOC_SCOPE = SocScope()  # keyed on the chip's name (maskgate.formats.qnn.QNN_SOCS, a bundle's soc)


def simulated_here() -> bool:
    """On an x86 machine the HTP backend library is Qualcomm's simulator, not an NPU."""
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def register() -> tuple[Any, list[Any]]:
    """Register the plugin EP with onnxruntime once per process; (onnxruntime_qnn, its EP devices)."""
    global _done
    try:
        import onnxruntime as ort
        import onnxruntime_qnn
    except ModuleNotFoundError as exc:
        raise DependencyError("onnxruntime-qnn", extra="qnn", purpose="running QNN builds") from exc
    from maskgate.console import native_output_filtered

    with HTP_LOCK, native_output_filtered():
        if not _done:
            ort.register_execution_provider_library(EP, onnxruntime_qnn.get_library_path())
            _done = True
    return onnxruntime_qnn, [d for d in ort.get_ep_devices() if d.ep_name == EP]


def qnn_session_options(*, provider_options: dict[str, str] | None = None, strict: bool = True,
                        threads: int | None = None) -> Any:  # an onnxruntime SessionOptions
    """Session options with the QNN EP on HTP; ``strict``: no node may fall back to the CPU."""
    import onnxruntime as ort

    qnn, devices = register()  # the onnxruntime_qnn module
    if not devices:
        raise DeviceError("onnxruntime-qnn is registered but offers no device here; is the QNN runtime present?")
    options = ort.SessionOptions()
    options.log_severity_level = 4  # its errors come back in the exception, said once by us
    if threads:
        options.intra_op_num_threads = int(threads)
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1" if strict else "0")
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    options.add_provider_for_devices(devices, {"backend_path": qnn.get_qnn_htp_path(), **(provider_options or {})})
    return options


class QnnRunner(SessionRunner):
    backend = "qnn"
    concurrent_infer = False  # see HTP_LOCK

    def __init__(self, path: str | Path, *, output_names: tuple[str, ...] | None = None, strict: bool = True,
                 simulator: bool = False, threads: int | None = None, soc: str = ""):
        """``soc``: the chip the context was compiled for (a bundle's ``soc``, a QNN_SOCS name);
        sessions of another chip wait for this one to close."""
        super().__init__()
        SOC_SCOPE.enter(soc)
        self._in_scope = True
        try:
            self._open(path, output_names, strict=strict, simulator=simulator, threads=threads)
        except BaseException:
            self._leave_scope()
            raise

    def _open(self, path: str | Path, output_names: tuple[str, ...] | None, *, strict: bool, simulator: bool,
              threads: int | None) -> None:
        import onnxruntime as ort

        from maskgate.console import native_output_filtered

        options = qnn_session_options(strict=strict, threads=threads)
        try:
            with HTP_LOCK, native_output_filtered():
                session = ort.InferenceSession(str(path), options)
        except Exception as exc:  # ORT's Fail types
            why = ("every node must run on the NPU and CPU fallback is refused (strict); "
                   if strict else "")
            raise ModelError(f"{path}: the QNN EP cannot load it on {HTP_SIMULATOR if simulator else HTP} "
                             f"({exc}); {why}was it compiled for this SoC and QNN runtime (maskgate build "
                             "--formats qnn --qnn-socs ...)?") from exc
        nodes = placement(session)
        self.placement = from_assignment(EP, [(ep, op, name) for ep, name, op in nodes],
                                         how="onnxruntime graph assignment")
        on_cpu = [f"{name} ({op})" for ep, name, op in nodes if ep != EP and op in HEAVY_OPS]
        if on_cpu:
            raise DeviceError(f"{path}: {len(on_cpu)} heavy node(s) fell back to the CPU: {', '.join(on_cpu[:5])}; "
                              "rebuild for this SoC")
        light = [name for ep, name, _ in nodes if ep != EP]
        if light:
            log.info("%s: %d light node(s) run on the CPU: %s", path, len(light), ", ".join(light[:5]))
        self.device = HTP_SIMULATOR if simulator else HTP
        self.path = Path(path)
        self._bind(session, output_names)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with HTP_LOCK:
            try:
                return super()._infer(feed)
            except Exception as exc:  # ORT's Fail types. After a failed run, onnxruntime retries on the
                # CPU, which strict sessions refuse: the first error is the one that says what happened.
                first = exc.__context__ or exc
                raise DeviceError(f"{self.path}: the {self.device} failed to run it ({first})") from exc

    def close(self) -> None:
        with HTP_LOCK:  # the session is released here
            super().close()
        self._leave_scope()

    def _leave_scope(self) -> None:
        if getattr(self, "_in_scope", False):
            self._in_scope = False
            SOC_SCOPE.leave()

    def __del__(self) -> None:  # a runner dropped without close() must not hold the SoC scope
        if getattr(self, "_in_scope", False):
            self.close()


def placement(session: Any) -> list[tuple[str, str, str]]:
    """(execution provider, node name, op type) of every node of a session."""
    return [(assigned.ep_name, node.name, node.op_type) for assigned in session.get_provider_graph_assignment_info()
            for node in assigned.get_nodes()]


class QnnBackend(Backend):
    name = "qnn"
    formats = formats_of_backend("qnn")
    devices = {"npu": (HTP,), "npu-sim": (HTP_SIMULATOR,)}

    def status(self) -> BackendStatus:
        try:
            import onnxruntime_qnn
        except ModuleNotFoundError:
            return BackendStatus(self.name, self.formats, installed=False,
                                 reason="Python package 'onnxruntime-qnn' is not installed "
                                        "(pip install 'maskgate[qnn]')")
        try:
            _, devices = register()
        except Exception as exc:  # a broken plugin library: report it, never raise
            return BackendStatus(self.name, self.formats, False, onnxruntime_qnn.__version__,
                                 reason=f"onnxruntime-qnn failed to register its EP: {exc}")
        version = getattr(onnxruntime_qnn, "__version__", None)
        sim = simulated_here()
        none = "" if devices else "onnxruntime-qnn registered but reports no device"
        npu_reason = (f"{platform.machine()}: onnxruntime-qnn's HTP library is Qualcomm's simulator here, not an "
                      "NPU; the NPU is on Qualcomm devices (aarch64 Linux, Windows on Snapdragon)") if sim else none
        sim_reason = ("the HTP simulator ships only in the x86_64 wheels" if not sim else none)
        accelerators = (Accelerator("npu", HTP, not npu_reason, npu_reason),
                        Accelerator("npu-sim", HTP_SIMULATOR, not sim_reason, sim_reason))
        return BackendStatus(self.name, self.formats, True, version, accelerators)

    def open(self, bundle: Path, manifest: Manifest, accelerator: Accelerator, *, options: OpenOptions) -> Runner:
        # The EP reads the context binary beside the model by path: both come from a private
        # copy of the verified bytes, loaded before the copy is removed.
        with verified_folder(bundle, options) as folder:
            runner = QnnRunner(model_path(folder, manifest), output_names=manifest.output_names,
                               strict=options.extra.get("strict", True), simulator=accelerator.kind == "npu-sim",
                               threads=options.threads, soc=manifest.soc or "")
        runner.expect_inputs(manifest)
        return runner

