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
