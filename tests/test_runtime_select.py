"""The runtime layer: backends report what is usable here, the selector picks a build,
falls back with a logged reason, refuses corrupt files, and finds third-party plugins."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from maskgate.errors import InputError
from maskgate.runtimes.devices import parse_preference

MODEL = "mask_mobilenetv2"


@pytest.fixture(scope="module")
def builds(make_builds):
    return make_builds("builds", models=(MODEL,), formats=("onnx", "openvino"), precisions=("fp32",))


def _usable(kind: str) -> bool:
    from maskgate.runtimes.registry import statuses

    return any(s.usable(kind) for s in statuses())


def test_backends_report_cpu_and_say_why_others_are_not_usable():
    from maskgate.runtimes.registry import statuses

    found = {s.name: s for s in statuses()}
    for name in ("onnxruntime", "openvino", "tflite"):
        if not found[name].installed:
            assert "not installed" in found[name].reason
            continue
        assert found[name].usable("cpu"), found[name]
        assert found[name].version
    for status in found.values():
        for accelerator in status.accelerators:
            assert accelerator.usable or accelerator.reason, accelerator  # every "no" comes with a why


def test_backends_command_lists_cpu_for_each_runtime(capsys):
    from maskgate.cli import main

    assert main(["backends"]) == 0
    text = capsys.readouterr().out
    for line in ("cpu yes CPUExecutionProvider", "cpu yes CPU", "cpu yes xnnpack"):
        assert line in text, text
    if not _usable("gpu"):
        assert "gpu no " in text


def test_preference_from_argument_environment_and_default(monkeypatch):
    monkeypatch.delenv("MASKGATE_DEVICE", raising=False)
    assert parse_preference(None) == ("npu", "gpu", "cpu")
    assert parse_preference("GPU, cpu") == ("gpu", "cpu")
    monkeypatch.setenv("MASKGATE_DEVICE", "cpu")
    monkeypatch.setenv("MASKGATE_DEVICE_MASK_MOBILENETV2", "gpu,cpu")
    assert parse_preference(None) == ("cpu",)
    assert parse_preference(None, model=MODEL) == ("gpu", "cpu")  # per model beats global
    assert parse_preference("npu", model=MODEL) == ("npu",)  # the argument beats both
    with pytest.raises(InputError, match="MASKGATE_DEVICE_MASK_MOBILENETV2"):
        monkeypatch.setenv("MASKGATE_DEVICE_MASK_MOBILENETV2", "tpu")
        parse_preference(None, model=MODEL)


def test_npu_preference_falls_back_to_cpu_with_a_logged_reason(builds, caplog):
    if _usable("npu"):
        pytest.skip("this machine has a usable NPU")
    from maskgate.runtimes.select import open_best

    with caplog.at_level(logging.WARNING, logger="maskgate.runtimes.select"):
        selection = open_best(builds, MODEL, prefer="npu")
    with selection.runner:
        assert selection.device_kind == "cpu" and selection.precision == "fp32"
        assert selection.format == "openvino"  # the CPU's first format (maskgate.runtimes.devices.FORMAT_ORDER)
    assert any("no usable npu" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert any(reason.startswith("npu: ") for reason in selection.skipped_kinds)


def test_strict_npu_raises_a_typed_error_naming_what_is_available(builds):
    if _usable("npu"):
        pytest.skip("this machine has a usable NPU")
    from maskgate.errors import DeviceError
    from maskgate.runtimes.select import NoUsableBuildError, open_best

    with pytest.raises(NoUsableBuildError, match=r"usable accelerators: .*cpu/CPU") as err:
        open_best(builds, MODEL, prefer="npu", strict=True)
    assert isinstance(err.value, DeviceError)
    assert "onnx fp32" in str(err.value) and "no usable npu" in str(err.value)


def test_corrupt_model_is_refused_before_the_runtime_and_the_next_build_is_used(builds, tmp_path, caplog):
    from maskgate.runtimes.select import NoUsableBuildError, open_best

    copy = tmp_path / "builds"
    shutil.copytree(builds, copy)
    weights = copy / f"{MODEL}-openvino-fp32" / "model.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="maskgate.runtimes.select"):
        selection = open_best(copy, MODEL, prefer="cpu")
    with selection.runner:
        assert selection.format == "onnx" and selection.backend == "onnxruntime"
    assert any("does not match the manifest" in r for r in selection.fallbacks), selection.fallbacks
    with pytest.raises(NoUsableBuildError, match="does not match the manifest"):
        open_best(copy, MODEL, prefer="cpu", strict=True, formats=("openvino",))


def test_installed_plugin_is_found_and_used(builds, testvendor_plugin, monkeypatch):
    """The installed testvendor plugin (an 'NPU' backend for ONNX bundles): the registry
    finds it through its entry point and the selector, npu first, picks it; when it fails
    to load, the selector falls back to the CPU."""
    from maskgate.runtimes.registry import statuses
    from maskgate.runtimes.select import open_best

    status = {s.name: s for s in statuses()}["testvendor"]
    assert status.plugin == "testvendor = maskgate_testvendor:TestVendorBackend" and status.usable("npu")
    selection = open_best(builds, MODEL)
    with selection.runner:
        assert (selection.backend, selection.device, selection.device_kind) == ("testvendor", "TestVendorNPU", "npu")
        assert selection.runner.describe() == "testvendor/TestVendorNPU"
    monkeypatch.setenv("MASKGATE_TESTVENDOR_FAIL", "load")
    selection = open_best(builds, MODEL)
    with selection.runner:
        assert selection.device_kind == "cpu"
    assert any("firmware did not answer" in r for r in selection.fallbacks)


def test_run_refuses_reference_options_with_builds_and_selector_options_without(capsys):
    from maskgate.cli import main

    picture = str(Path(__file__).resolve().parents[1] / "examples" / "images" / "scene_5.jpg")
    assert main(["run", picture, "--builds", "nowhere", "--weights", "w.pth"]) == 2
    assert "--weights does not apply to --builds" in capsys.readouterr().err
    assert main(["run", picture, "--prefer", "npu", "--threads", "2"]) == 2
    assert "--prefer, --threads do not apply without --builds" in capsys.readouterr().err


def test_a_build_runner_refuses_a_wrong_tensor_with_the_expected_spec(builds):
    import numpy as np

    from maskgate.errors import InputError
    from maskgate.runtimes.select import open_best

    selection = open_best(builds, MODEL, prefer="cpu", formats=("onnx",))
    with selection.runner as runner:
        with pytest.raises(InputError, match=r"expects float32\[1, 3, 128, 128\]"):
            runner.infer({"input": np.zeros((1, 3, 64, 64), np.float32)})
        with pytest.raises(InputError, match="is float64"):
            runner.infer({"input": np.zeros((1, 3, 128, 128))})
        assert runner.infer({"input": np.zeros((1, 3, 128, 128), np.float32)})["probs"].shape == (1, 2)


def test_preference_from_a_config_file_ranks_below_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MASKGATE_DEVICE", raising=False)
    monkeypatch.delenv("MASKGATE_DEVICE_MASK_MOBILENETV2", raising=False)
    config = tmp_path / "maskgate.toml"
    config.write_text('[devices]\ndefault = "gpu,cpu"\nmask_mobilenetv2 = ["npu", "cpu"]\n')
    monkeypatch.setenv("MASKGATE_CONFIG", str(config))
    assert parse_preference(None) == ("gpu", "cpu")
    assert parse_preference(None, model=MODEL) == ("npu", "cpu")
    monkeypatch.setenv("MASKGATE_DEVICE", "cpu")
    assert parse_preference(None, model=MODEL) == ("cpu",)
    monkeypatch.delenv("MASKGATE_DEVICE")
    from maskgate.config import reset_config

    config.write_text('[devices]\ndefault = "fpga"\n')
    assert parse_preference(None) == ("gpu", "cpu")  # read once per process: a rewrite mid-run changes nothing
    reset_config()
    with pytest.raises(InputError, match=r"maskgate.toml: \[devices\] default"):
        parse_preference(None)
    config.write_text("[devices\n")
    reset_config()
    with pytest.raises(InputError, match="cannot read the MaskGate config"):
        parse_preference(None)


def _status(backend, usable: set[str]):
    """What ``backend.status()`` reports on a machine where the accelerators in ``usable`` work
    (the same object, built in the device table's order as the real status() builds it)."""
    from maskgate.runtimes.backend import Accelerator, BackendStatus

    accelerators = tuple(Accelerator(kind, name, name in usable, "" if name in usable else "not on this machine")
                         for kind, names in backend.devices.items() for name in names)
    return backend, BackendStatus(backend.name, backend.formats, True, "test", accelerators)


def _order(bundles, backends, preference) -> list[str]:
    from maskgate.runtimes.select import candidates

    return [f"{c.manifest.format}-{c.manifest.precision}@{c.accelerator.name}"
            for c in candidates(bundles, backends, preference)]


def test_candidate_order_on_machines_with_npus_and_gpus():
    from maskgate.runtimes.onnxruntime import OnnxRuntimeBackend
    from maskgate.runtimes.openvino import OpenVinoBackend
    from maskgate.runtimes.tflite import TfliteBackend

    bundles = [(Path(f"m-{fmt}-{precision}"), SimpleNamespace(format=fmt, precision=precision))
               for fmt in ("onnx", "openvino", "tflite") for precision in ("fp32", "fp16", "int8")]
    gpu = "libtensorflowlite_gpu_delegate.so"
    # A Qualcomm camera: ONNX Runtime's QNN provider and the CPU; LiteRT's GPU delegate.
    qualcomm = [_status(OnnxRuntimeBackend(), {"QNNExecutionProvider", "CPUExecutionProvider"}),
                _status(TfliteBackend(), {"xnnpack", gpu})]
    assert _order(bundles, qualcomm, ("npu", "gpu", "cpu")) == [
        # npu: integer builds first, then fp16, fp32
        "onnx-int8@QNNExecutionProvider", "onnx-fp16@QNNExecutionProvider", "onnx-fp32@QNNExecutionProvider",
        # gpu: fp16 first (GPUs run it natively), ONNX before TFLite
        f"tflite-fp16@{gpu}", f"tflite-fp32@{gpu}", f"tflite-int8@{gpu}",
        # cpu: int8, then fp32 and fp16; TFLite before ONNX
        "tflite-int8@xnnpack", "onnx-int8@CPUExecutionProvider", "tflite-fp32@xnnpack",
        "onnx-fp32@CPUExecutionProvider", "tflite-fp16@xnnpack", "onnx-fp16@CPUExecutionProvider"]
    # An NVIDIA machine with an Intel NPU: TensorRT is tried before CUDA, OpenVINO's NPU first for npu.
    nvidia_intel = [_status(OnnxRuntimeBackend(), {"TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                   "CPUExecutionProvider"}),
                    _status(OpenVinoBackend(), {"CPU", "NPU"})]
    order = _order(bundles, nvidia_intel, ("npu", "gpu"))
    assert order == [
        "openvino-int8@NPU", "openvino-fp16@NPU", "openvino-fp32@NPU",
        "onnx-fp16@TensorrtExecutionProvider", "onnx-fp16@CUDAExecutionProvider",
        "onnx-fp32@TensorrtExecutionProvider", "onnx-fp32@CUDAExecutionProvider",
        "onnx-int8@TensorrtExecutionProvider", "onnx-int8@CUDAExecutionProvider"]
    # strict gpu: nothing of the CPU's; the same machine without its GPU offers no gpu candidate at all
    assert _order(bundles, nvidia_intel, ("gpu",)) == order[3:]
    cpu_only = [_status(OnnxRuntimeBackend(), {"CPUExecutionProvider"}), _status(OpenVinoBackend(), {"CPU"})]
    assert _order(bundles, cpu_only, ("npu", "gpu")) == []


def test_no_bundle_of_what_was_asked_names_it_and_the_build_that_makes_it(builds):
    from maskgate.errors import BundleError
    from maskgate.runtimes.select import open_best

    with pytest.raises(BundleError) as refused:
        open_best(builds, MODEL, formats=("tflite",), precisions=("int8",), input_size=(320, 256))
    message = str(refused.value)
    assert (f"no bundle of '{MODEL}' of format tflite; precision int8; canvas 320x256; build one with "
            f"'maskgate build --models {MODEL} --formats tflite --precisions int8 --detector-size 320x256'") in message
    assert "[" not in message  # no Python lists


def test_a_fallback_is_explained_once_and_the_next_model_points_to_it(builds, monkeypatch, caplog):
    from maskgate.runtimes import select

    if _usable("npu"):
        pytest.skip("an NPU is usable here: nothing falls back")
    monkeypatch.setattr(select, "_FALLBACKS_SAID", set())
    with caplog.at_level(logging.WARNING, logger="maskgate.runtimes.select"):
        for _ in range(2):  # the pipeline's second model, on the same machine
            with select.open_best(builds, MODEL, prefer="npu,cpu").runner:
                pass
    lines = [r.getMessage() for r in caplog.records if "falling back" in r.getMessage()]
    assert len(lines) == 2 and len(lines[0]) > 100, lines  # the first says why, in full
    assert lines[1] == f"{MODEL}: no usable npu either (as above); falling back", lines


def test_builds_that_failed_for_the_same_reason_are_one_line_of_the_error():
    from maskgate.runtimes.select import _grouped

    same = [f"m-{f}: BundleError: /b/m-{f}: not signed; sign it with 'maskgate sign /b/m-{f}'" for f in "abcd"]
    lines = _grouped([*same, "m-e: failed earlier in this run", "m-f: failed earlier in this run"])
    assert lines[0] == ("4 bundles (m-a, m-b, m-c and 1 more), each: BundleError: /b/<bundle>: not signed; "
                        "sign it with 'maskgate sign /b/<bundle>'")
    assert lines[1:] == ["m-e: failed earlier in this run", "m-f: failed earlier in this run"]  # two: kept as they are
