"""Each converter on a tiny classifier: every format x precision loads in its runtime,
matches the torch model within the precision's tolerance, and carries its metadata."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibration.dataset import CalibrationSet  # noqa: E402
from converters.targets import ConversionJob, ConvertOptions, Target, TfliteOptions  # noqa: E402
from sdk.specs import InputSpec, ModelSpec  # noqa: E402

_NEEDS = {"onnx": ("onnxscript", "onnxruntime"), "openvino": ("onnxscript", "openvino", "nncf"),
          "tflite": ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")}


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
                                        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 3))

    def forward(self, x):
        return torch.softmax(self.body(x), dim=1)


SPEC = ModelSpec(name="tiny", task="classification", input=InputSpec(size=(32, 32), color="RGB", mean=(127.5,) * 3,
                 std=(64.0,) * 3), outputs=("probs",), factory="-", description="test", class_names=("a", "b", "c"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from converters.onnx import export_fp32

    work = tmp_path_factory.mktemp("tiny")
    module = Tiny().eval()
    pytest.importorskip("onnxscript")
    onnx_path = work / "fp32.onnx"
    export_fp32(module, SPEC, onnx_path)
    rng = np.random.default_rng(0)
    cal = CalibrationSet("input", [rng.normal(size=(1, 3, 32, 32)).astype(np.float32) for _ in range(16)], "random", "0")
    return module, onnx_path, cal, work


def _convert(tiny, fmt, precision, out, *, options=ConvertOptions()):
    module, onnx_path, cal, work = tiny
    job = ConversionJob(Target("tiny", fmt, precision), SPEC, module, onnx_path, cal if precision == "int8" else None,
                        {"maskgate_model": "tiny"}, options)
    out.mkdir()
    if fmt == "onnx":
        from converters import onnx as conv

        return conv.convert(job, out)
    if fmt == "openvino":
        from converters import openvino as conv

        return conv.convert(job, out)
    from converters import tflite as conv

    fp32 = work / f"fp32-{options.tflite.channel_last_io}.tflite"
    if not fp32.exists():
        conv.export_fp32(job, fp32)
    return conv.convert(job, out, fp32_file=fp32)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_converter_output_runs_and_matches_torch(tiny, fmt, precision, tmp_path):
    for module_name in _NEEDS[fmt]:
        pytest.importorskip(module_name)
    from runtimes.bundles import runner_for

    artifact = _convert(tiny, fmt, precision, tmp_path / "b")
    assert all((tmp_path / "b" / f).is_file() for f in artifact.files)
    manifest = {"format": fmt, "inputs": [{"name": "input"}], "outputs": [{"name": "probs"}]}
    x = tiny[2].tensors[3]
    with torch.no_grad():
        expected = tiny[0](torch.from_numpy(x)).numpy()
    with runner_for(tmp_path / "b", manifest) as runner:
        got = runner.infer({"input": x})["probs"]
    tolerance = {"fp32": 1e-4, "fp16": 1e-2, "int8": 0.08}[precision]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < tolerance, (fmt, precision, got, expected)
    if precision == "int8":
        assert artifact.quantizer["samples"] == 16


def test_metadata_is_stamped_into_each_format(tiny, tmp_path):
    for fmt in ("onnx", "openvino", "tflite"):
        for module_name in _NEEDS[fmt]:
            pytest.importorskip(module_name)
    import onnx
    import openvino as ov

    from converters.tflite import read_metadata

    _convert(tiny, "onnx", "fp32", tmp_path / "o")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "o" / "model.onnx")).metadata_props}
    assert props["maskgate_model"] == "tiny"
    _convert(tiny, "openvino", "fp16", tmp_path / "v")
    model = ov.Core().read_model(str(tmp_path / "v" / "model.xml"))
    assert model.get_rt_info(["maskgate", "maskgate_model"]).astype(str) == "tiny"
    _convert(tiny, "tflite", "int8", tmp_path / "t")
    assert read_metadata(tmp_path / "t" / "model.tflite") == {"maskgate_model": "tiny"}


def test_tflite_channel_last_io(tiny, tmp_path):
    for module_name in _NEEDS["tflite"]:
        pytest.importorskip(module_name)
    from runtimes.bundles import runner_for

    artifact = _convert(tiny, "tflite", "fp32", tmp_path / "n", options=ConvertOptions(tflite=TfliteOptions(channel_last_io=True)))
    assert artifact.layout == "NHWC" and tuple(artifact.inputs[0].shape) == (1, 32, 32, 3)
    x = tiny[2].tensors[0]
    with torch.no_grad():
        expected = tiny[0](torch.from_numpy(x)).numpy()
    manifest = {"format": "tflite", "inputs": [{"name": "input"}], "outputs": [{"name": "probs"}]}
    with runner_for(tmp_path / "n", manifest) as runner:
        got = runner.infer({"input": np.ascontiguousarray(x.transpose(0, 2, 3, 1))})["probs"]
    assert np.abs(got - expected).max() < 1e-4
    assert json.dumps(artifact.inputs[0].to_dict())
