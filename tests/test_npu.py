"""NPU formats (RKNN, QNN): built per chip, verified in the vendors' simulators, never taken
for the camera's NPU by the selector, and refused when a QNN model would fall back to the CPU."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from maskgate.errors import BundleError, MaskGateError
from maskgate.formats import FORMATS, ConvertOptions, QnnOptions, RknnOptions
from tests.strict_skips import missing

pytestmark = pytest.mark.npu_toolchain


def _toolkit_or_skip():
    from maskgate.runtimes import rknn_env

    try:
        rknn_env.python()
    except rknn_env.ToolkitMissingError as exc:
        missing("rknn-toolkit2's environment (maskgate setup rknn)", str(exc))


# -- planning: one bundle per chip, int8 only --------------------------------------------------

def test_npu_formats_are_planned_per_chip_and_int8_only():
    from maskgate.builder import BuildConfig
    from maskgate.builder.plan import plan

    options = ConvertOptions(rknn=RknnOptions(targets=("rv1106b", "rk3566", "rk3576")),
                             qnn=QnnOptions(socs=("qcs6490",)))
    _, targets = plan(BuildConfig(models=("mask_mobilenetv2",), formats=("onnx", "rknn", "qnn"), options=options))
    names = [t.name for t in targets]
    assert names == ["mask_mobilenetv2-onnx-fp32", "mask_mobilenetv2-onnx-fp16", "mask_mobilenetv2-onnx-int8",
                     "mask_mobilenetv2-rknn-int8-rv1106b", "mask_mobilenetv2-rknn-int8-rk3566",
                     "mask_mobilenetv2-rknn-int8-rk3576", "mask_mobilenetv2-qnn-int8-qcs6490"]
    with pytest.raises(ValueError, match="builds int8 only"):
        plan(BuildConfig(models=("mask_mobilenetv2",), formats=("rknn",), precisions=("fp32",)))


def test_default_targets_and_unknown_chips():
    assert RknnOptions().targets == ("rk3568", "rk3588") and QnnOptions().socs == ("qcs6490", "qcs8550")
    with pytest.raises(ValueError, match="unknown RKNN target.*rk3399"):
        RknnOptions(targets=("rk3399",))
    with pytest.raises(ValueError, match="unknown QNN SoC"):
        QnnOptions(socs=("sm9999",))
    assert not FORMATS["rknn"].default and not FORMATS["qnn"].default  # a plain 'maskgate build' stays CPU/GPU


def test_cli_flags_choose_the_chips():
    import argparse

    parser = argparse.ArgumentParser()
    ConvertOptions.add_flags(parser)
    options = ConvertOptions.from_flags(parser.parse_args(["--rknn-targets", "rk3588", "--qnn-socs", "sm8550,qcs6490"]))
    assert options.rknn.targets == ("rk3588",) and options.qnn.socs == ("sm8550", "qcs6490")


# -- the rknn-toolkit2 environment -----------------------------------------------------------

def test_a_missing_toolkit_environment_names_the_command_that_fixes_it(tmp_path, monkeypatch):
    from maskgate.runtimes import rknn_env
    from maskgate.runtimes.rknn import RknnBackend

    monkeypatch.setenv("MASKGATE_CACHE", str(tmp_path))
    with pytest.raises(rknn_env.ToolkitMissingError, match="run 'maskgate setup rknn'"):
        rknn_env.Worker()
    sim = next(a for a in RknnBackend().status().accelerators if a.kind == "npu-sim")
    assert not sim.usable and "maskgate setup rknn" in sim.reason


def test_rebuild_comparison_says_what_differs():
    from maskgate.runtimes.rknn import compare_bytes

    base = bytes(range(256)) * 40
    assert compare_bytes(base, base).identical
    changed = bytearray(base)
    changed[100:108] = b"\xff" * 8
    changed[5000] ^= 1
    report = compare_bytes(base, bytes(changed))
    assert (report.differing_bytes, report.ranges) == (9, ((100, 108), (5000, 5001)))
    assert report.acceptable and "9 of 10240 bytes" in report.describe() and "100-107" in report.describe()
    assert not compare_bytes(base, bytes(changed) * 2).acceptable  # another size: another model, refused
    noisy = bytearray(base)
    noisy[::50] = b"\x00" * len(noisy[::50])
    spread = compare_bytes(base, bytes(noisy))
    assert spread.differing_bytes > 190 and len(spread.ranges) == 20  # said, the first 20 runs listed
    assert "20+ runs" in spread.describe()


def test_the_rknn_stamp_reader_reads_the_custom_string():
    from maskgate.converters.binding import rknn_stamp
    from maskgate.converters.rknn import stamp_string

    text = stamp_string({"maskgate_manifest_sha256": "a" * 64, "maskgate_model": "m",
                         "maskgate_class_names": json.dumps(["x", "y"]), "unrelated": "dropped"})
    blob = b"RKNN\x00\x00junk" + text.encode() + b"\x00\x00more"
    assert rknn_stamp(blob) == {"maskgate_manifest_sha256": "a" * 64, "maskgate_model": "m",
                                "maskgate_class_names": '["x", "y"]'}
    assert rknn_stamp(b"RKNN no stamp") == {}


# -- QNN sessions refuse CPU fallback ------------------------------------------------------------

def test_qnn_refuses_a_model_that_would_fall_back_to_the_cpu(tmp_path):
    pytest.importorskip("onnxruntime_qnn")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from maskgate.errors import DeviceError, ModelError
    from maskgate.runtimes.qnn import QnnRunner

    def model(name, node, dtype, shape, initializers=()):
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, shape)],
                                  [helper.make_tensor_value_info("y", dtype, None)], list(initializers))
        path = tmp_path / name
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        return path

    # An int32 matrix product (heavy; the HTP does not take it) and a determinant (light; nor that).
    matmul = model("matmul.onnx", helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"), TensorProto.INT32, [4, 4],
                   [helper.make_tensor("w", TensorProto.INT32, [4, 4], list(range(16)))])
    det = model("det.onnx", helper.make_node("Det", ["x"], ["y"], name="det"), TensorProto.FLOAT, [2, 3, 3])
    for path in (matmul, det):
        with pytest.raises(ModelError, match="CPU fallback is refused"):
            QnnRunner(path, strict=True, simulator=True)
    with pytest.raises(DeviceError, match=r"heavy node\(s\) fell back to the CPU: mm \(MatMul\)"):
        QnnRunner(matmul, strict=False, simulator=True)
    with QnnRunner(det, strict=False, simulator=True) as runner:  # light nodes may fall back when not strict
        placement = runner.placement
        assert (placement.ops, placement.on_device, placement.elsewhere) == (1, 0, ("Det det@CPUExecutionProvider",))


# -- QNN: 16-bit depthwise weights as two int8 convolutions -----------------------------------

def test_fine_weights_split_a_depthwise_conv_into_an_exact_int8_part_and_a_residual(tmp_path):
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from maskgate.converters.qnn_weights import depthwise_convs, split_fine_weights

    rng = np.random.default_rng(0)
    dw, pw = rng.normal(size=(4, 1, 3, 3)).astype(np.float32), rng.normal(size=(2, 4, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "dw", "b"], ["h"], name="depthwise", group=4, pads=[1, 1, 1, 1]),
         helper.make_node("Conv", ["h", "pw"], ["y"], name="pointwise")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(dw, "dw"), numpy_helper.from_array(pw, "pw"),
         numpy_helper.from_array(np.arange(4, dtype=np.float32), "b")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = rng.normal(size=(1, 4, 6, 6)).astype(np.float32)
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    assert depthwise_convs(path, ["depthwise", "pointwise"]) == ["depthwise"]
    made = split_fine_weights(path, ["depthwise"])
    assert made == ["h_fine", "h_coarse", "h"]
    after = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)  # the float model computes the same
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    from onnxruntime.quantization.quant_utils import quantize_data

    for channel in range(4):  # onnxruntime's own symmetric int8 quantization of each output channel
        coarse, fine = weights["dw"][channel], weights["dw_fine"][channel]
        _, scale, q = quantize_data(coarse.ravel(), TensorProto.INT8, True)
        np.testing.assert_allclose(q.astype(np.float32) * scale, coarse.ravel(), rtol=0, atol=1e-6)  # exact
        assert np.abs(fine).max() <= scale / 2 + 1e-7 and np.abs(fine).max() > 0  # the residual: under half a step


# -- real NPU bundles of the three models, checked in the simulators ---------------------------

@pytest.fixture(scope="module")
def npu_builds(make_builds):
    """RKNN (rk3568) and QNN (qcs6490) bundles of the three models, built in one run (the
    simulator checks go to their lanes beside the conversions), every one passing its gates."""
    pytest.importorskip("onnxruntime_qnn")
    _toolkit_or_skip()
    options = ConvertOptions(rknn=RknnOptions(targets=("rk3568",)), qnn=QnnOptions(socs=("qcs6490",)))
    return make_builds("npu-builds", formats=("rknn", "qnn"), precisions=("int8",), options=options, check_runs=2,
                       verify_samples=16, samples=32)


def _bundles(builds):
    from maskgate.runtimes.select import readable_bundles

    return {m.name: (folder, m) for folder, m in readable_bundles(builds)}


def test_npu_bundles_record_their_chip_sources_and_toolkit(npu_builds):
    bundles = _bundles(npu_builds)
    models = ("retinaface_mnet025", "mask_mobilenetv2", "pose_mobilenetv2_skip")
    assert sorted(bundles) == sorted([f"{m}-{chip}" for m in models for chip in ("rknn-int8-rk3568",
                                                                                  "qnn-int8-qcs6490")])
    for name, (_folder, manifest) in bundles.items():
        assert manifest.soc == name.rsplit("-", 1)[1]
        assert manifest.verdict["passed"], (name, manifest.verdict["failures"])
        assert set(manifest.sources) < set(manifest.files) and manifest.calibration
        if manifest.format == "rknn":
            assert manifest.tools["rknn-toolkit2"] == manifest.quantizer["version"] == "2.5.0"
            assert manifest.quantizer["target"] == "rk3568" and "folded" in manifest.quantizer["normalization"]
        else:
            assert manifest.tools["onnxruntime-qnn"] and manifest.quantizer["htp_arch"] == 68
            assert manifest.quantizer["fine_weights"] and manifest.quantizer["calibration_method"] == "percentile"


def test_check_passes_npu_bundles_in_the_simulators_and_fails_a_tampered_one(npu_builds, tmp_path):
    from maskgate.check import check_bundle

    bundles = _bundles(npu_builds)
    for name in ("mask_mobilenetv2-rknn-int8-rk3568", "mask_mobilenetv2-qnn-int8-qcs6490"):
        folder, _ = bundles[name]
        result = check_bundle(folder, runs=2, warmup=1)
        assert result.passed, (name, result.error, result.gates)
        assert "(npu-sim)" in result.runtime
        if result.format == "rknn":  # rebuilt to run in the simulator: the check says how it compares
            assert result.rebuild.size == result.rebuild.rebuilt_size and result.rebuild.describe()
        tampered = tmp_path / name
        shutil.copytree(folder, tampered)
        manifest = json.loads((tampered / "manifest.json").read_text())
        manifest["class_names"] = list(reversed(manifest["class_names"]))
        (tampered / "manifest.json").write_text(json.dumps(manifest))
        bad = check_bundle(tampered, runs=2)
        assert not bad.passed and "class_names" in bad.error


def test_the_rknn_simulator_runs_a_rebuild_of_the_bundled_model(npu_builds):
    from maskgate.runtimes.bundles import runner_for

    folder, manifest = _bundles(npu_builds)["mask_mobilenetv2-rknn-int8-rk3568"]
    with runner_for(folder, manifest) as runner:
        assert runner.rebuild.acceptable and runner.rebuild.size == (folder / "model.rknn").stat().st_size
        with np.load(folder / "golden.npz") as golden:
            out = runner.infer({"input": golden["inputs"][:1]})["probs"]
            assert out.argmax() == golden["output_probs"][0].argmax()


def test_a_simulator_is_never_taken_for_the_cameras_npu(npu_builds):
    from maskgate.runtimes.select import NoUsableBuildError, open_best

    with pytest.raises(NoUsableBuildError) as caught:
        open_best(npu_builds, "mask_mobilenetv2", prefer="npu")  # falls back through gpu and cpu: none runs these
    assert "simulator here, not an NPU" in str(caught.value) or "aarch64" in str(caught.value)
    with pytest.raises(NoUsableBuildError):
        open_best(npu_builds, "mask_mobilenetv2", prefer="npu", strict=True)
    chosen = open_best(npu_builds, "mask_mobilenetv2", prefer="npu-sim", formats=("qnn",))
    with chosen.runner:
        assert (chosen.device_kind, chosen.format) == ("npu-sim", "qnn")


def test_a_bundle_without_its_sources_cannot_be_rebuilt(npu_builds, tmp_path):
    from maskgate.check import check_bundle

    folder, _ = _bundles(npu_builds)["mask_mobilenetv2-rknn-int8-rk3568"]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "rknn_calibration.npz").unlink()
    result = check_bundle(copy, runs=1)
    assert not result.passed and "rknn_calibration.npz" in result.error
    with pytest.raises((BundleError, MaskGateError)):
        from maskgate.converters.bundle import verify_bundle

        verify_bundle(copy)


def test_the_toolkits_layer_error_table_is_read(tmp_path):
    from maskgate.runtimes.rknn_worker import read_error_table

    # The head of rknn-toolkit2 2.5.0's error_analysis.txt for the mask classifier (rk3568).
    table = tmp_path / "error_analysis.txt"
    table.write_text(
        "                                            entire              single             \n"
        "                                         cos      euc        cos      euc          \n"
        "-------------------------------------------------------------------------------\n"
        "[Input] input                          1.00000 | 0.00000   1.00000 | 0.00000       \n"
        "[exDataConvert] input_int8             0.99999 | 1.17614   0.99999 | 1.17614       \n"
        "[Conv] getitem                         \n"
        "[Clip] hardtanh                        0.99994 | 1.71979   0.99994 | 1.71979       \n"
        "[Conv] getitem_6                       0.99700 | 11.85970  0.99952 | 4.74643       \n")
    rows = read_error_table(str(table))
    assert [r[:2] for r in rows] == [["Input", "input"], ["exDataConvert", "input_int8"], ["Clip", "hardtanh"],
                                     ["Conv", "getitem_6"]]  # the fused conv (no figures) is left out
    assert rows[-1][2:] == [0.997, 11.8597, 0.99952, 4.74643]


# -- simulator bundles are verified beside the build ------------------------------------------

def test_simulator_lanes_keep_the_build_order_and_raise_failures_when_drained():
    import threading

    from maskgate.builder.lanes import SimulatorLanes, results

    release, ran = threading.Event(), []

    def slow():
        release.wait(5)
        ran.append("rknn")
        return "first"

    def fast():
        ran.append("qnn")
        return "second"

    with SimulatorLanes() as lanes:
        items = [lanes.submit("rknn", slow), lanes.submit("qnn", fast), "inline"]
        items[1].result(5)
        assert ran == ["qnn"]  # the QNN lane did not wait for the RKNN one
        release.set()
        lanes.drain()
        assert ran == ["qnn", "rknn"] and all(f.done() for f in items[:2])
        assert results(items) == ["first", "second", "inline"]  # in the build's order
        lanes.submit("qnn", lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            lanes.drain()


def _in_child(script: str) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, (done.returncode, done.stdout[-1000:], done.stderr[-2000:])


def test_a_qnn_compile_beside_a_simulator_run_does_not_crash(npu_builds, tmp_path):
    """A build compiles the next QNN bundle while its lane runs the last one in the simulator;
    unserialized, onnxruntime-qnn 2.7.0 segfaulted there (so this runs in a child process)."""
    folder, _ = _bundles(npu_builds)["mask_mobilenetv2-qnn-int8-qcs6490"]
    _in_child(f"""
import threading, numpy as np
from pathlib import Path
from maskgate.converters.qnn import compile_context
from maskgate.runtimes.qnn import QnnRunner
folder = Path({str(folder)!r})
x = np.load(folder / "golden.npz")["inputs"][:1]
runner = QnnRunner(folder / "model_ctx.onnx", simulator=True, soc="qcs6490")
stop = threading.Event()
def lane():
    while not stop.is_set():
        runner.infer({{runner.input_names[0]: x}})
thread = threading.Thread(target=lane)
thread.start()
for k in range(3):
    out = Path({str(tmp_path)!r}) / str(k)
    out.mkdir()
    compile_context(folder / "model.qdq.onnx", out / "model_ctx.onnx", "qcs6490")
stop.set()
thread.join()
runner.close()
print("ok")
""")


def test_a_context_for_another_soc_waits_until_the_open_sessions_close(npu_builds, tmp_path):
    """Compiling for a v73 SoC while a v68 session was open broke that session's next run: the
    compile now waits for it. The lane's runs must all succeed, and the compile come after."""
    folder, _ = _bundles(npu_builds)["mask_mobilenetv2-qnn-int8-qcs6490"]
    _in_child(f"""
import threading, time, numpy as np
from pathlib import Path
from maskgate.converters.qnn import compile_context
from maskgate.runtimes.qnn import QnnRunner
folder = Path({str(folder)!r})
x = np.load(folder / "golden.npz")["inputs"][:1]
opened, events = threading.Event(), []
def lane():
    with QnnRunner(folder / "model_ctx.onnx", simulator=True, soc="qcs6490") as runner:
        opened.set()
        for _ in range(4):
            runner.infer({{runner.input_names[0]: x}})
            time.sleep(0.3)
        events.append("lane done")
thread = threading.Thread(target=lane)
thread.start()
opened.wait(60)
compile_context(folder / "model.qdq.onnx", Path({str(tmp_path)!r}) / "model_ctx.onnx", "qcs8550")
events.append("compiled")
thread.join()
assert events == ["lane done", "compiled"], events
print("ok")
""")
