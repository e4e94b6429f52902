"""int8 diagnosis and --accuracy-aware: a build below its gate is diagnosed layer by layer
(ONNX Runtime's QDQ debugging tools), re-quantized with its worst layers in float, and the
bundle records what was kept in float, so that a rebuild reuses it."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def impossible_gate(monkeypatch):
    """A gate no int8 build can meet (top-1 agreement above 100 %, which no config file may
    ask for): every round of the repair loop runs and is recorded."""
    import dataclasses

    from maskgate.config.gates import DEFAULT_GATES

    monkeypatch.setitem(DEFAULT_GATES, "int8", dataclasses.replace(DEFAULT_GATES["int8"], min_top1=1.5))


def test_diagnosis_ranks_the_badly_quantized_layer_of_a_hand_made_model_first(tmp_path):
    """Conv(float weights) -> Relu -> Conv whose weights span four decades more in one input channel: per-channel int8
    cannot hold the small channel, so the second conv adds the noise."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from maskgate.converters.diagnose import _Reader, diagnose_qdq

    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(4, 4, 3, 3)).astype(np.float32)
    w2[:, 0] *= 1e4  # one input channel dominates the per-output-channel range
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["a"], ["b"], name="relu1"),
         helper.make_node("Conv", ["b", "w2"], ["y"], name="conv2", pads=[1, 1, 1, 1])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, str(float_path))
    inputs = [rng.normal(size=(1, 3, 16, 16)).astype(np.float32) for _ in range(4)]
    quantize_static(str(float_path), str(qdq_path), _Reader("x", inputs), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True)
    ranking = diagnose_qdq(float_path, qdq_path, inputs, input_name="x")
    # ORT quantizes Conv+Relu as one: conv1's own output carries no QDQ pair, so it is not measured.
    assert {e.node for e in ranking} == {"relu1", "conv2"}
    assert ranking[0].node == "conv2" and ranking[0].added_db > ranking[1].added_db > 0
    assert ranking[0].sqnr_db < ranking[1].sqnr_db  # cumulative: the last output is the worst


def test_accuracy_aware_keeps_the_worst_layers_in_float_and_records_it(tmp_path, monkeypatch, impossible_gate):
    pytest.importorskip("onnxscript")
    from maskgate import build
    from maskgate.builder import repair as accuracy_aware
    from maskgate.converters.bundle import read_manifest

    monkeypatch.setattr(accuracy_aware, "STEPS", (2, 4))
    options = dict(models=("mask_mobilenetv2",), formats=("onnx",), precisions=("int8",), out=tmp_path,
                   progress=False, verify_samples=8, samples=16, check_runs=2, accuracy_aware=True)
    (result,) = build(**options)
    assert result.error is None and not result.passed  # the gate cannot be met
    d = result.diagnosis
    assert [r["excluded"] for r in d["rounds"]] == [0, 2, 4] and not any(r["passed"] for r in d["rounds"])
    assert len(d["excluded"]) == 4 and len(d["worst_layers"]) == accuracy_aware.SHOWN
    assert [x["added_db"] for x in d["worst_layers"]] == sorted(
        (x["added_db"] for x in d["worst_layers"]), reverse=True
    )
    manifest = read_manifest(result.path)
    assert set(d["excluded"]) <= set(manifest["quantizer"]["float_nodes"])  # what the quantizer really left float
    assert manifest["accuracy_aware"] == d
    assert "kept 4 in float over 2 round(s)" in accuracy_aware.describe(d)
    (again,) = build(**options)  # same inputs: the repaired bundle is reused with its record
    assert again.status == "reused" and again.diagnosis == d


def test_an_int8_build_below_its_gate_is_diagnosed_without_being_changed(tmp_path, monkeypatch, impossible_gate):
    pytest.importorskip("onnxscript")
    from maskgate import build
    from maskgate.converters.bundle import read_manifest

    (result,) = build(models=("mask_mobilenetv2",), formats=("onnx",), precisions=("int8",), out=tmp_path,
                      progress=False, verify_samples=8, samples=16, check_runs=2)
    assert result.diagnosis["excluded"] == [] and len(result.diagnosis["rounds"]) == 1
    nodes = {n for n in read_manifest(result.path)["quantizer"]["float_nodes"]}
    assert not nodes & {x["node"] for x in result.diagnosis["worst_layers"]}


def test_openvino_accuracy_aware_really_leaves_the_named_layers_in_float(tmp_path, monkeypatch, impossible_gate):
    """The ranking is made on the ONNX graph; OpenVINO keeps its node names (a conv becomes
    NAME/WithoutBiases + bias NAME): the excluded convs must read float activations and
    float weights, where the others read FakeQuantize outputs and int8 weights."""
    pytest.importorskip("onnxscript")
    ov = pytest.importorskip("openvino")
    from maskgate import build
    from maskgate.builder import repair as accuracy_aware

    monkeypatch.setattr(accuracy_aware, "STEPS", (4,))
    (result,) = build(models=("mask_mobilenetv2",), formats=("openvino",), precisions=("int8",), out=tmp_path,
                      progress=False, verify_samples=8, samples=16, check_runs=2, accuracy_aware=True)
    excluded = result.diagnosis["excluded"]
    assert len(excluded) == 4
    ops = {op.get_friendly_name(): op for op in ov.Core().read_model(f"{result.path}/model.xml").get_ordered_ops()}

    def sources(op) -> set[str]:
        return {op.input_value(i).get_node().get_type_name() for i in range(op.get_input_size())}

    convs = {n: op for n, op in ops.items() if op.get_type_name() in ("Convolution", "GroupConvolution")}
    kept = {n for n in convs if n.removesuffix("/WithoutBiases") in excluded}
    assert kept, f"no conv of {excluded} found in the OpenVINO model"
    assert all("FakeQuantize" not in sources(convs[n]) for n in kept)
    assert any("FakeQuantize" in sources(op) for n, op in convs.items() if n not in kept)  # the rest is int8
