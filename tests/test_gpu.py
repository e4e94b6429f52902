"""The reference on a CUDA GPU agrees with the CPU (skipped where no GPU is present)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.gpu
def test_cuda_reference_matches_cpu(sample_images):
    from sdk import FaceDetector
    from sdk.sources import read_image

    cpu = FaceDetector.reference(device="cpu")
    gpu = FaceDetector.reference(device="cuda")
    assert gpu.runner.device == "cuda"
    for path in sample_images:
        image = read_image(path)
        a, b = cpu.detect(image), gpu.detect(image)
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)


def test_asking_for_cuda_without_a_gpu_is_a_clear_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from runtimes.pytorch import resolve_device
    from sdk import DeviceError

    with pytest.raises(DeviceError, match="no CUDA GPU; available: cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"
