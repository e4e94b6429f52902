"""The runner contract, on the PyTorch reference runner."""
from __future__ import annotations

import numpy as np
import pytest

from maskgate import InputError, create_model, get_spec


def test_torch_runner_contract():
    from maskgate.runtimes.pytorch import TorchRunner

    spec = get_spec("retinaface_mnet025")
    x = np.zeros((1, 3, 64, 96), np.float32)
    with TorchRunner(
        create_model(spec.name), input_names=("input",), output_names=spec.outputs, device="cpu"
    ) as runner:
        out = runner.infer({"input": x})
        assert list(out) == ["loc", "conf", "landmarks"] and out["conf"].shape == (1, 252, 2)
        assert runner.last_inference_ms > 0 and runner.describe() == "pytorch/cpu"
        with pytest.raises(InputError, match=r"feed lacks input\(s\) \['input'\]"):
            runner.infer({"image": x})
    with pytest.raises(RuntimeError, match="closed"):
        runner.infer({"input": x})


def test_onnx_runtime_does_not_ask_for_onnxruntime_qnn_where_it_is_installed():
    """The plugin EP is registered by the qnn backend, so it is never among onnxruntime's own
    providers: the fallback line said 'it needs ... onnxruntime-qnn' beside an installed one."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxruntime_qnn")
    from maskgate.runtimes.onnxruntime import OnnxRuntimeBackend
    from maskgate.runtimes.qnn import EP

    status = OnnxRuntimeBackend().status()
    (qnn,) = [a for a in status.accelerators if a.name == EP]
    # not registered yet: installed, run under the qnn backend; registered (by that backend, earlier in
    # this process): on x86 its HTP is the simulator. Either way, never "needs a package".
    if not qnn.usable:
        assert "under the qnn backend" in qnn.reason and "needs a package" not in qnn.reason, qnn.reason
