"""A small real runtime plugin: it runs ONNX bundles through ONNX Runtime's CPU provider
but presents itself as a vendor NPU, so the selector (npu first) must find and pick it.
Set MASKGATE_TESTVENDOR_FAIL=load to make it fail when opening a bundle, or
MASKGATE_TESTVENDOR_FAIL=file:PATH to make every inference fail once PATH exists (a
device lost mid-stream)."""
from __future__ import annotations

import os
from pathlib import Path

from maskgate.runtimes.backend import Accelerator, Backend, BackendStatus, OpenOptions
from maskgate.runtimes.onnxruntime import OnnxRuntimeRunner


class TestVendorBackend(Backend):
    name = "testvendor"
    formats = ("onnx",)

    def status(self) -> BackendStatus:
        return BackendStatus(self.name, self.formats, True, "0.1.0", (Accelerator("npu", "TestVendorNPU", True),))

    def open(self, bundle: Path, manifest: dict, accelerator: Accelerator, *, options: OpenOptions):
        if os.environ.get("MASKGATE_TESTVENDOR_FAIL") == "load":
            raise RuntimeError("TestVendorNPU: firmware did not answer")
        runner = _VendorRunner(Path(bundle) / "model.onnx", output_names=tuple(t["name"] for t in manifest["outputs"]),
                               threads=options.threads)
        runner.backend = self.name
        runner.device = accelerator.name
        return runner


class _VendorRunner(OnnxRuntimeRunner):
    def _infer(self, feed):
        mode = os.environ.get("MASKGATE_TESTVENDOR_FAIL", "")
        if mode.startswith("file:") and Path(mode[5:]).exists():
            raise RuntimeError("TestVendorNPU: device lost (driver reset)")
        return super()._infer(feed)
