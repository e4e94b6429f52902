"""Bundle manifests: schema, sha256 verification, atomic writes, and builds of the real models."""
from __future__ import annotations

import json

import pytest

from maskgate.converters.bundle import (
    read_manifest,
    staging,
    update_manifest,
    validate_manifest,
    verify_bundle,
    write_manifest,
)
from maskgate.converters.manifest import SCHEMA_VERSION, Manifest
from maskgate.errors import BundleError


def _manifest(**over) -> dict:
    """A manifest's JSON (digests filled in), as a file would hold it."""
    m = {"schema_version": SCHEMA_VERSION, "sdk_version": "0", "name": "m-onnx-fp32", "model": "m",
         "task": "classification", "format": "onnx", "precision": "fp32", "quantizer": None,
         "input": {"name": "input", "shape": [1, 3, 8, 8], "layout": "NCHW", "dtype": "float32", "color": "RGB",
                   "mean": [0, 0, 0], "std": [1, 1, 1], "size": [8, 8]},
         "inputs": [{"name": "input", "tensor": "input", "shape": [1, 3, 8, 8], "dtype": "float32"}],
         "outputs": [{"name": "probs", "tensor": "probs", "shape": [1, 2], "dtype": "float32"}],
         "class_names": ["a", "b"], "files": {"model.onnx": "0" * 64}, "calibration": None,
         "source_weights_sha256": "x" * 64, "reference": {"runtime": "pytorch/cpu"}, "build_key": "k",
         "created": "now"}
    m.update(over)
    return m


def _new_manifest() -> Manifest:
    """The manifest a build hands to write_manifest (which hashes the files it lists)."""
    return Manifest.from_dict(_manifest())


def _model(path) -> None:
    """A small ONNX model (Identity) carrying the stamp slot a converter leaves in its metadata."""
    onnx = pytest.importorskip("onnx")
    from maskgate.converters.binding import STAMP_KEY, placeholder

    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["input"], ["probs"])], "m",
                                   [onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 2])],
                                   [onnx.helper.make_tensor_value_info("probs", onnx.TensorProto.FLOAT, [1, 2])])
    model = onnx.helper.make_model(graph)
    onnx.helper.set_model_props(model, {STAMP_KEY: placeholder(), "maskgate_model": "m",
                                        "maskgate_class_names": json.dumps(["a", "b"])})
    onnx.save(model, str(path))


def test_schema_names_every_problem():
    with pytest.raises(BundleError) as err:
        validate_manifest({"schema_version": 1, "name": 3, "files": {}})
    text = str(err.value)
    assert "missing 'model'" in text and "'name' should be str" in text and "'files' is empty" in text
    with pytest.raises(BundleError, match=r"schema_version 99 is newer than this SDK reads \(schema_version 2\)"):
        validate_manifest({**_manifest(files={"model.onnx": "a" * 64}), "schema_version": 99})
    with pytest.raises(BundleError, match="plain name"):
        validate_manifest({**_manifest(files={"../x": "a" * 64}), "schema_version": 1})


def test_sha256_is_recorded_and_verified(tmp_path):
    _model(tmp_path / "model.onnx")
    manifest = write_manifest(tmp_path, _new_manifest())
    assert len(manifest["files"]["model.onnx"]) == 64
    assert verify_bundle(tmp_path)["name"] == "m-onnx-fp32"
    (tmp_path / "model.onnx").write_bytes(b"changed")
    with pytest.raises(BundleError, match="does not match"):
        verify_bundle(tmp_path)
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        verify_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="not JSON"):
        read_manifest(tmp_path)


def test_interrupted_write_leaves_no_bundle(tmp_path):
    final = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        with staging(final) as tmp:
            _model(tmp / "model.onnx")
            raise KeyboardInterrupt
    assert not final.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(BundleError, match="no manifest"):
        with staging(final) as tmp:
            (tmp / "model.onnx").write_bytes(b"all")
    assert not final.exists()
    with staging(final) as tmp:
        _model(tmp / "model.onnx")
        write_manifest(tmp, _new_manifest())
    assert verify_bundle(final)


def test_the_manifest_is_bound_to_its_model_and_changed_only_as_a_whole(tmp_path):
    bundle = tmp_path / "b"
    with staging(bundle) as tmp:
        _model(tmp / "model.onnx")
        first = write_manifest(tmp, _new_manifest())
    (bundle / "signature.json").write_text("{}")
    updated = update_manifest(bundle, {"verdict": {"passed": True, "failures": []}})
    assert verify_bundle(bundle) == updated and updated["verdict"]["passed"]
    assert updated["files"]["model.onnx"] != first["files"]["model.onnx"]  # the model carries the new digest
    assert not (bundle / "signature.json").exists()  # it signed the old manifest: dropped, not left lying
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    edited = dict(updated, class_names=["b", "a"])
    (bundle / "manifest.json").write_text(json.dumps(edited))
    with pytest.raises(BundleError, match=r"changed after the build.*class_names \['b', 'a'\]"):
        verify_bundle(bundle)
    # layout is not content:
    (bundle / "manifest.json").write_text(json.dumps(updated.to_dict(), indent=8, sort_keys=True))
    assert verify_bundle(bundle) == updated
    with pytest.raises(BundleError, match=r"schema_version 1 is from an older MaskGate \(this one reads schema_"
                                          r"version 2"):
        validate_manifest({**updated, "schema_version": 1})


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("onnxscript")
    from maskgate import build

    out = tmp_path_factory.mktemp("build")
    return out, build(models=("mask_mobilenetv2",), formats=("onnx",), precisions=("fp32", "int8"), out=out,
                      progress=False, samples=32, verify_samples=40)


def test_build_real_classifier_makes_verified_bundles(built):
    out, results = built
    assert [r.status for r in results] == ["built", "built"], [r.error for r in results]
    for r in results:
        manifest = verify_bundle(r.path)
        assert manifest["class_names"] == ["mask", "no_mask"] and manifest["input"]["size"] == [128, 128]
        assert r.fidelity.samples == 40 and r.fidelity.top1_agreement >= 0.99  # the int8 gate, not looser
        assert r.passed and r.verdict["passed"] and manifest["verdict"] == r.verdict, r.failures()
    int8 = verify_bundle(results[1].path)
    assert int8["quantizer"]["format"] == "QDQ" and int8["calibration"]["samples"] == 32
    assert int8["source_weights_sha256"] == verify_bundle(results[0].path)["source_weights_sha256"]
    # 'vs fp32' from the paired rounds (builder.speed): the int8 bundle against its fp32 sibling, the same 12 rounds
    from maskgate.builder.speed import ROUNDS

    assert results[0].vs_fp32 is None and results[1].vs_fp32 is not None and results[1].vs_fp32.rounds == ROUNDS
    assert results[1].vs_fp32.low <= results[1].vs_fp32.ratio <= results[1].vs_fp32.high
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no work or partial folders left


def test_unchanged_build_is_reused_and_a_corrupt_one_rebuilt(built):
    from maskgate import build

    out, results = built
    fp32, int8 = out / "mask_mobilenetv2-onnx-fp32", out / "mask_mobilenetv2-onnx-int8"
    before = {b: (b / "manifest.json").read_bytes() for b in (fp32, int8)}
    (fp32 / "model.onnx").write_bytes(b"corrupt")
    again = build(models=("mask_mobilenetv2",), formats=("onnx",), precisions=("fp32", "int8"), out=out,
                  progress=False, samples=32, verify_samples=40)
    assert [r.status for r in again] == ["built", "reused"]
    assert (int8 / "manifest.json").read_bytes() == before[int8]  # reused untouched: same verdict, nothing rewritten
    rebuilt = verify_bundle(fp32)  # the corrupt file replaced by one that matches the manifest and its stamp
    assert (fp32 / "model.onnx").read_bytes() != b"corrupt" and rebuilt["verdict"]["passed"]


def _verify_as(uid: int, bundle) -> str:
    """verify_bundle in a child process switched to account ``uid``, as the camera's service
    user would run it ("ok", or the BundleError's message). The child is forked with the code
    already imported: this machine's interpreter lives in a folder other accounts cannot enter."""
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.setgid(uid)
            os.setuid(uid)
            verify_bundle(bundle)
            message = "ok"
        except BundleError as exc:
            message = str(exc)
        except BaseException as exc:  # a crash is what the test is about: report it
            message = f"{type(exc).__name__}: {exc}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        return pipe.read()


def test_a_bundle_is_readable_by_other_accounts_and_a_denied_read_says_so(tmp_path_factory):
    """Bundles are read-only artefacts for everyone the umask allows (dirs 0755, files 0644
    under umask 022): the service user verifies a bundle root built; a file it may not read
    is reported as permission denied, not as a damaged bundle to rebuild."""
    import os
    import stat
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("switching to another account needs root")
    where = tempfile.mkdtemp(prefix="maskgate-perm-")  # beside pytest's own 0700 folders
    try:
        os.chmod(where, 0o755)
        bundle = os.path.join(where, "b")
        old = os.umask(0o022)
        try:
            with staging(__import__("pathlib").Path(bundle)) as tmp:
                _model(tmp / "model.onnx")
                write_manifest(tmp, _new_manifest())
        finally:
            os.umask(old)
        assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o755
        assert {stat.S_IMODE(os.stat(os.path.join(bundle, f)).st_mode) for f in os.listdir(bundle)} == {0o644}
        nobody = 65534
        verify_bundle(bundle)  # warm every import the child needs
        assert _verify_as(nobody, bundle) == "ok"
        os.chmod(os.path.join(bundle, "model.onnx"), 0o600)
        line = _verify_as(nobody, bundle)
        assert "permission denied" in line and "rebuild" not in line, line
    finally:
        import shutil

        shutil.rmtree(where, ignore_errors=True)
