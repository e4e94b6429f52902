"""Broken bundles: each fault is refused with a BundleError naming the file, the selector
moves on to the next build, and the manifest parser never fails any other way (fuzzed)."""
from __future__ import annotations

import json
import logging
import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from maskgate.converters.bundle import read_manifest, validate_manifest, verify_bundle
from maskgate.errors import BundleError

MODEL = "mask_mobilenetv2"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def builds(make_builds):
    return make_builds("faults", models=(MODEL,), formats=("onnx", "openvino"), precisions=("fp32",))


def _truncate(bundle):
    path = bundle / "model.bin"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "model.bin"


def _remove(bundle):
    (bundle / "model.xml").unlink()
    return "model.xml"


def _wrong_types(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["outputs"] = "probs"
    manifest["input"]["shape"] = "1x3x128x128"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return "manifest.json"


def _outside(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return "manifest.json"


def _not_json(bundle):
    (bundle / "manifest.json").write_text('{"schema_version": 1, "files": ')
    return "manifest.json"


@pytest.mark.parametrize("fault", [_truncate, _remove, _wrong_types, _outside, _not_json])
def test_a_broken_build_is_refused_by_name_and_the_next_one_is_used(builds, tmp_path, fault, caplog):
    from maskgate.runtimes.select import open_best

    copy = tmp_path / "builds"
    shutil.copytree(builds, copy)
    broken = copy / f"{MODEL}-openvino-fp32"
    named = fault(broken)
    with pytest.raises(BundleError, match=named.replace(".", r"\.")):
        verify_bundle(broken)
    with caplog.at_level(logging.WARNING, logger="maskgate.runtimes.select"):
        selection = open_best(copy, MODEL, prefer="cpu")  # OpenVINO would be first on the CPU
    with selection.runner:
        assert selection.format == "onnx"
    said = " ".join(selection.fallbacks) + " ".join(r.getMessage() for r in caplog.records)
    assert str(broken) in said and named in said


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_manifest_parser_never_fails_other_than_bundle_error(value):
    try:
        validate_manifest(value)
    except BundleError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["name", "model", "task", "format", "precision", "input", "inputs", "outputs",
                                        "files", "schema_version", "class_names", "priors", "detection"]), JSON,
                       min_size=1, max_size=4))
@example({"inputs": True})  # found by this test: the parser iterated a non-list
def test_a_mutated_manifest_is_read_or_refused_never_crashes(builds, tmp_path_factory, changes):
    from maskgate.deployed import spec_from_manifest

    good = json.loads((builds / f"{MODEL}-onnx-fp32" / "manifest.json").read_text())
    folder = tmp_path_factory.mktemp("m")
    (folder / "manifest.json").write_text(json.dumps({**good, **changes}))
    try:
        manifest = read_manifest(folder)
        spec_from_manifest(manifest)
    except BundleError:
        pass


@pytest.mark.parametrize("fmt, damage", [("onnx", "weights"), ("openvino", "graph")])
def test_a_damaged_model_whose_checksums_match_is_named_with_its_load_error(builds, tmp_path, fmt, damage):
    """A model file written damaged, its manifest re-bound to it (so every checksum matches):
    the error names the file and what the runtime said, with no device advice beside the point
    (the CPU was there; the model would not run on it)."""
    from maskgate.converters.bundle import write_manifest
    from maskgate.runtimes.select import NoUsableBuildError, open_best

    copy = tmp_path / "builds"
    shutil.copytree(builds / f"{MODEL}-{fmt}-fp32", copy / f"{MODEL}-{fmt}-fp32")
    bundle = copy / f"{MODEL}-{fmt}-fp32"
    if damage == "weights":  # the middle of the weights: the graph still parses
        path = bundle / "model.onnx"
        data = bytearray(path.read_bytes())
        data[len(data) // 3: len(data) // 3 + 4000] = b"\xff" * 4000
    else:  # an IR whose first layer names an operation no opset has
        path = bundle / "model.xml"
        data = bytearray(path.read_bytes().replace(b'type="Parameter"', b'type="NoSuchOperation"', 1))
    path.write_bytes(bytes(data))
    write_manifest(bundle, read_manifest(bundle))  # rehashed and restamped, as a build would
    verify_bundle(bundle)  # the checksums and the binding hold
    with pytest.raises(NoUsableBuildError) as caught:
        open_best(copy, MODEL, formats=(fmt,))
    message = str(caught.value)
    first, *rest = message.splitlines()
    assert "failed to load or run" in first and str(path) in message, message
    assert ("not finite" in message) if damage == "weights" else ("NoSuchOperation" in message), message
    assert "allow a fallback" not in message and "no usable" not in message, message


def test_the_user_sees_the_damaged_file_and_its_load_error_in_one_error(make_builds, tmp_path):
    """As a user meets it: 'maskgate run --builds' on a detector bundle whose weights were
    damaged after the build and whose manifest was re-bound to them."""
    import subprocess
    import sys
    from pathlib import Path

    from maskgate.converters.bundle import write_manifest
    from tests.conftest import ROOT

    built = make_builds("damaged-detector", models=("retinaface_mnet025",), formats=("onnx",), precisions=("fp32",))
    bundle = tmp_path / "builds" / "retinaface_mnet025-onnx-fp32"
    shutil.copytree(built / bundle.name, bundle)
    model = bundle / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 3: len(data) // 3 + 4000] = b"\xff" * 4000
    model.write_bytes(bytes(data))
    write_manifest(bundle, read_manifest(bundle))
    exe = str(Path(sys.executable).with_name("maskgate"))
    done = subprocess.run([exe, "run", "examples/images", "--builds", str(bundle.parent), "--mask-model", "none",
                           "--pose-model", "none"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    errors = [line for line in done.stderr.splitlines() if line.startswith("maskgate: error: ")]
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-1500:]
    assert "failed to load or run" in errors[0] and "allow a fallback" not in done.stderr, done.stderr[-1500:]
    assert f"{model} (onnx fp32 on onnxruntime" in done.stderr and "not finite" in done.stderr
