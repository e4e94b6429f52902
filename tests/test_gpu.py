"""The reference on a CUDA GPU agrees with the CPU (skipped where no GPU is present)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.gpu
def test_cuda_reference_matches_cpu(sample_images):
    from maskgate import FaceDetector
    from maskgate.sources import read_image

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
    from maskgate import DeviceError
    from maskgate.runtimes.pytorch import resolve_device

    with pytest.raises(DeviceError, match="no CUDA GPU; available: cpu"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def _cuda_provider() -> bool:
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def test_onnx_build_on_the_cuda_execution_provider_matches_its_golden_outputs(tmp_path):
    """The gpu path of the selector: ONNX Runtime's CUDA EP, strict (no CPU fallback)."""
    if not _cuda_provider():
        pytest.skip("ONNX Runtime lists no CUDAExecutionProvider here (needs onnxruntime-gpu and an NVIDIA GPU)")
    pytest.importorskip("onnxscript")
    from maskgate import build
    from maskgate.runtimes.select import open_best

    results = build(models=("mask_mobilenetv2",), formats=("onnx",), precisions=("fp32",), out=tmp_path,
                    progress=False, verify_samples=8)
    assert results[0].status == "built", results[0].error
    selection = open_best(tmp_path, "mask_mobilenetv2", prefer="gpu", strict=True)
    with selection.runner as runner:
        assert selection.device_kind == "gpu" and runner.device in ("cuda", "tensorrt")
        golden = np.load(tmp_path / "mask_mobilenetv2-onnx-fp32" / "golden.npz")
        for x, want in zip(golden["inputs"], golden["output_probs"]):
            got = runner.infer({"input": x[None]})["probs"][0]
            np.testing.assert_allclose(got, want, atol=1e-3)
