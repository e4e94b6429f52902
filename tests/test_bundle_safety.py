"""Bundles read safely (issue 29, line 9): anything wrong in one bundle is that bundle's
BundleError and the next one runs; no symbolic link inside a bundle is accepted; the runtime
loads the bytes that were hashed, so a file swapped after the check never runs."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from maskgate.converters.bundle import read_verified, verify_bundle
from maskgate.errors import BundleError

MODEL = "mask_mobilenetv2"
ONNX = f"{MODEL}-onnx-fp32"


@pytest.fixture(scope="module")
def builds(make_builds):
    return make_builds("safety", models=(MODEL,), formats=("onnx", "tflite"), precisions=("fp32",))


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _quantization(bundle: Path) -> str:
    manifest = _manifest(bundle)
    manifest["outputs"][0]["quantization"] = "xy"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return "'quantization' should be [scale, zero point]"


def _deep_manifest(bundle: Path) -> str:
    (bundle / "manifest.json").write_text(_deep(50_000))
    return "nested too deeply"


def _huge_manifest(bundle: Path) -> str:
    (bundle / "manifest.json").write_bytes(b" " * (9 << 20) + b"{}")
    return "more than the"


def _linked_model(bundle: Path) -> str:
    outside = bundle.parent.parent / "outside.tflite"
    shutil.move(bundle / "model.tflite", outside)
    (bundle / "model.tflite").symlink_to(outside)
    return "a symbolic link"


def _unlisted_model(bundle: Path) -> str:
    manifest = _manifest(bundle)
    del manifest["files"]["model.tflite"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return "does not list the model file model.tflite"


@pytest.mark.parametrize("fault", [_quantization, _deep_manifest, _huge_manifest, _linked_model, _unlisted_model])
def test_whatever_is_wrong_with_a_bundle_is_its_bundle_error_and_the_next_one_runs(builds, tmp_path, fault, caplog):
    from maskgate.runtimes.select import open_best

    copy = tmp_path / "builds"
    shutil.copytree(builds, copy)
    broken = copy / f"{MODEL}-tflite-fp32"
    said = fault(broken)
    with pytest.raises(BundleError, match=re.escape(said)):
        verify_bundle(broken)
    with caplog.at_level(logging.WARNING, logger="maskgate.runtimes.select"):
        selection = open_best(copy, MODEL, prefer="cpu", formats=None)
    with selection.runner:
        assert selection.format == "onnx"
    logged = " ".join(selection.fallbacks) + " ".join(r.getMessage() for r in caplog.records)
    assert str(broken) in logged and said in logged, logged


def test_a_deep_signature_is_a_bundle_error(builds, tmp_path):
    from maskgate.converters.signing import generate_key, load_key

    bundle = tmp_path / ONNX
    shutil.copytree(builds / ONNX, bundle)
    generate_key(tmp_path / "site.secret", algorithm="hmac-sha256")
    (bundle / "signature.json").write_text(_deep(50_000))
    with pytest.raises(BundleError, match="signature.json: nested too deeply"):
        verify_bundle(bundle, key=load_key(tmp_path / "site.secret"))


def test_a_link_anywhere_in_a_bundle_is_refused_by_sign_check_and_build(builds, tmp_path):
    from maskgate.cli import main
    from maskgate.converters.bundle import read_manifest, write_manifest

    bundle = tmp_path / ONNX
    shutil.copytree(builds / ONNX, bundle)
    (bundle / "notes.txt").symlink_to("/etc/hostname")  # not even listed in the manifest
    with pytest.raises(BundleError, match="notes.txt: a symbolic link"):
        verify_bundle(bundle)
    assert main(["keygen", "--hmac", str(tmp_path / "site.secret")]) == 0
    assert main(["sign", str(bundle), "--key", str(tmp_path / "site.secret")]) == 2
    assert not (bundle / "signature.json").exists()
    assert main(["check", str(bundle), "--runs", "1"]) == 1
    with pytest.raises(BundleError, match="a symbolic link in a bundle being written"):
        write_manifest(bundle, read_manifest(bundle))


def _inverted(model: bytes) -> bytes:
    """The mask classifier with its two output rows exchanged: mask and no_mask swapped."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model)
    graph = proto.graph
    last = next(n for n in reversed(graph.node) if n.op_type in ("Gemm", "MatMul"))
    weights = {i.name: i for i in graph.initializer}
    for name in last.input[1:]:
        if name in weights:
            value = numpy_helper.to_array(weights[name])
            axis = 0 if (last.op_type == "Gemm" and any(a.name == "transB" and a.i for a in last.attribute)) or \
                value.ndim == 1 else value.ndim - 1
            weights[name].CopyFrom(numpy_helper.from_array(np.flip(value, axis=axis).copy(), name))
    return proto.SerializeToString()


def test_a_model_swapped_after_its_check_never_runs(builds, tmp_path):
    """The audit's race: a thread exchanges the model file for one with mask and no_mask
    inverted (same stamp) while the camera selects builds under a verify key; whatever the
    timing, a selection either refuses the bundle or runs the signed model: 0 of 40 inverted."""
    pytest.importorskip("onnx")
    from maskgate.converters.bundle import sign_bundle
    from maskgate.converters.signing import generate_key, load_key
    from maskgate.runtimes.select import NoUsableBuildError, open_best
    from maskgate.runtimes.trust import TrustPolicy

    bundle = tmp_path / "builds" / ONNX
    shutil.copytree(builds / ONNX, bundle)
    generate_key(tmp_path / "site.secret", algorithm="hmac-sha256")
    key = load_key(tmp_path / "site.secret")
    sign_bundle(bundle, key)
    good = (bundle / "model.onnx").read_bytes()
    evil = _inverted(good)
    (tmp_path / "good.onnx").write_bytes(good)
    (tmp_path / "evil.onnx").write_bytes(evil)
    with np.load(bundle / "golden.npz") as data:
        x = np.ascontiguousarray(data["inputs"][:4], dtype=np.float32)
        reference = data[[k for k in data.files if k != "inputs"][0]][:4]
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            for source in ("evil.onnx", "good.onnx"):
                shutil.copyfile(tmp_path / source, tmp_path / "next.onnx")
                os.replace(tmp_path / "next.onnx", bundle / "model.onnx")

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    ran, inverted, refused = 0, 0, 0
    try:
        for _ in range(40):
            try:
                selection = open_best(bundle.parent, MODEL, prefer="cpu", trust=TrustPolicy(key=key))
            except NoUsableBuildError:
                refused += 1
                continue
            with selection.runner as runner:
                out = np.concatenate([runner.infer({selection.manifest.input.name: x[i:i + 1]})[
                    selection.manifest.output_names[0]] for i in range(len(x))])
            ran += 1
            inverted += int(not np.allclose(out, reference, atol=1e-3))
    finally:
        stop.set()
        swapper.join()
    assert ran > 0 and refused > 0, (ran, refused)  # both timings happened
    assert inverted == 0, f"{inverted} of {ran} selections ran the swapped model"


def test_the_verified_bytes_are_what_a_private_copy_holds(builds):
    verified = read_verified(builds / ONNX)
    with verified.private_copy() as folder:
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
        assert (folder / "model.onnx").read_bytes() == verified.model == (builds / ONNX / "model.onnx").read_bytes()
        verify_bundle(folder)
    assert not folder.exists()


def test_keygen_refuses_a_missing_folder_or_a_taken_pub_file_before_writing_anything(tmp_path, capsys):
    """It crashed with a FileNotFoundError into a folder that was not there; a .pub already there
    left a private key without its public half."""
    pytest.importorskip("cryptography")
    from maskgate.cli import main

    assert main(["keygen", str(tmp_path / "no" / "site.key")]) == 2
    assert "no such folder for the key site.key" in capsys.readouterr().err
    (tmp_path / "site.key.pub").write_text("someone else's")
    assert main(["keygen", str(tmp_path / "site.key")]) == 2
    assert "site.key.pub: exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.key.pub"]  # no private key written beside it
    assert (tmp_path / "site.key.pub").read_text() == "someone else's"
