"""Only verified builds run: the manifest bound to its model, site signatures, the build's
gate verdict obeyed by the selector, hidden folders ignored, and a replaced bundle never
lost (issue 14, faults 3 to 6)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MASK = "mask_mobilenetv2"
DETECTOR = "retinaface_mnet025"


@pytest.fixture(scope="module")
def builds(make_builds):
    """fp32 mask classifier bundles of every format (each format stamps its own way)."""
    return make_builds("trust-builds", models=(MASK,), formats=("onnx", "openvino", "tflite"), precisions=("fp32",))


def _copy(bundle: Path, where: Path, name: str | None = None) -> Path:
    target = where / (name or bundle.name)
    shutil.copytree(bundle, target)
    return target


def _edit(bundle: Path, **changes) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest, indent=1))


def _check(path: Path, *extra: str) -> tuple[int, str]:
    done = subprocess.run([str(Path(sys.executable).parent / "maskgate"), "check", str(path), "--runs", "2", *extra],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return done.returncode, done.stdout + done.stderr


def test_every_format_stamps_the_manifest_digest_and_the_plain_readers_agree(builds):
    import onnx
    import openvino as ov

    from maskgate.converters.binding import STAMP_KEY, manifest_digest, read_stamp
    from maskgate.converters.bundle import verify_bundle
    from maskgate.converters.tflite import read_metadata

    for fmt, model_file in (("onnx", "model.onnx"), ("openvino", "model.xml"), ("tflite", "model.tflite")):
        bundle = builds / f"{MASK}-{fmt}-fp32"
        manifest = verify_bundle(bundle)
        stamp = read_stamp(fmt, bundle / model_file)
        assert stamp[STAMP_KEY] == manifest_digest(manifest) and stamp["maskgate_model"] == MASK
        if fmt == "onnx":  # the hand-written readers see what each format's own library sees
            library = {p.key: p.value for p in onnx.load(str(bundle / model_file)).metadata_props}
        elif fmt == "openvino":
            rt_info = ov.Core().read_model(str(bundle / model_file)).get_rt_info()["maskgate"]
            library = {key: rt_info[key].astype(str) for key in stamp}
        else:
            library = read_metadata(bundle / model_file)
        assert library == stamp, fmt
        assert manifest["verdict"]["passed"] is True and manifest["verdict"]["failures"] == []


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_an_edited_manifest_fails_the_check_and_never_runs(builds, tmp_path, fmt):
    """Fault 3: swapping class_names (mask <-> no_mask) or relabelling the precision passed
    'maskgate check' and the pipeline then called masked people unmasked."""
    from maskgate.runtimes.select import NoUsableBuildError, open_best

    source = builds / f"{MASK}-{fmt}-fp32"
    untouched = _copy(source, tmp_path / "ok")
    reindented = json.loads((untouched / "manifest.json").read_text())
    (untouched / "manifest.json").write_text(json.dumps(reindented, indent=4))  # layout is not content
    assert _check(untouched)[0] == 0
    for change in ({"class_names": ["no_mask", "mask"]}, {"precision": "int8"},
                   {"input": {**reindented["input"], "mean": [0.0, 0.0, 0.0]}}):
        edited = _copy(source, tmp_path / next(iter(change)))
        _edit(edited, **change)
        code, text = _check(edited)
        assert code == 1, text
        assert "was changed after the build" in text and "Traceback" not in text, text
        if "class_names" in change:
            assert "class_names ['no_mask', 'mask'] (the model says ['mask', 'no_mask'])" in text, text
        with pytest.raises(NoUsableBuildError, match="was changed after the build"):
            open_best(edited, MASK, prefer="cpu")


def test_site_signatures_ed25519_and_hmac(builds, tmp_path, monkeypatch):
    from maskgate.cli import main
    from maskgate.runtimes.select import NoUsableBuildError, open_best

    pytest.importorskip("cryptography")
    bundle = _copy(builds / f"{MASK}-onnx-fp32", tmp_path / "signed")
    unsigned = _copy(builds / f"{MASK}-onnx-fp32", tmp_path / "unsigned")
    assert main(["keygen", str(tmp_path / "site.key")]) == 0
    assert main(["keygen", str(tmp_path / "other.key")]) == 0
    assert oct((tmp_path / "site.key").stat().st_mode & 0o777) == "0o600"
    assert main(["keygen", str(tmp_path / "site.key")]) == 2  # never overwritten
    assert main(["sign", str(tmp_path / "signed"), "--key", str(tmp_path / "site.key")]) == 0
    public = tmp_path / "site.key.pub"
    config = tmp_path / "maskgate.toml"
    config.write_text('[trust]\nverify_key = "site.key.pub"\n')  # relative to the config file
    monkeypatch.setenv("MASKGATE_CONFIG", str(config))
    code, text = _check(tmp_path / "signed")
    assert code == 0, text
    code, text = _check(unsigned)
    assert code == 1 and "not signed" in text, text
    with pytest.raises(NoUsableBuildError, match="not signed"):
        open_best(unsigned, MASK, prefer="cpu")
    with open_best(bundle, MASK, prefer="cpu").runner:
        pass
    other = _copy(unsigned, tmp_path / "other")
    assert main(["sign", str(other), "--key", str(tmp_path / "other.key")]) == 0
    code, text = _check(other)
    assert code == 1 and "not with the configured ed25519 key" in text, text
    signature = json.loads((bundle / "signature.json").read_text())
    other_signature = json.loads((other / "signature.json").read_text())["signature"]
    (bundle / "signature.json").write_text(json.dumps(dict(signature, signature=other_signature)))
    code, text = _check(bundle)
    assert code == 1 and "does not match the manifest" in text, text
    assert main(["sign", str(bundle), "--key", str(public)]) == 2  # a public key cannot sign
    monkeypatch.delenv("MASKGATE_CONFIG")
    assert main(["keygen", "--hmac", str(tmp_path / "site.secret")]) == 0
    assert main(["sign", str(unsigned), "--key", str(tmp_path / "site.secret")]) == 0
    assert _check(unsigned, "--verify-key", str(tmp_path / "site.secret"))[0] == 0
    code, text = _check(unsigned, "--verify-key", str(public))
    assert code == 1 and "signed with hmac-sha256" in text, text
    # Signed by the build itself; a later build that rewrites a manifest drops the stale signature.
    out = tmp_path / "built-signed"
    assert main(["build", "--models", MASK, "--formats", "onnx", "--precisions", "fp32", "--verify-samples", "4",
                 "--check-runs", "2", "--no-progress", "--sign-key", str(tmp_path / "site.key"),
                 "--out", str(out)]) == 0
    assert _check(out, "--verify-key", str(public))[0] == 0


@pytest.fixture(scope="module")
def blank_calibrated(tmp_path_factory):
    """A detector calibrated on blank frames: a genuinely bad int8 build (12 % of the
    reference's faces found) beside its fp32 sibling; returns (builds folder, exit status)."""
    import cv2

    pytest.importorskip("onnxscript")
    pytest.importorskip("openvino")
    from maskgate.cli import main

    work = tmp_path_factory.mktemp("blank")
    (work / "frames").mkdir()
    for i in range(16):
        cv2.imwrite(str(work / "frames" / f"blank_{i:02d}.jpg"), np.full((480, 640, 3), 114, np.uint8))
    code = main(["build", "--models", DETECTOR, "--formats", "openvino", "--precisions", "fp32,int8",
                 "--calib", str(work / "frames"), "--verify-samples", "8", "--check-runs", "2", "--no-progress",
                 "--out", str(work / "builds")])
    return work / "builds", code


def test_a_key_that_signed_none_of_the_bundles_is_one_warning_not_one_per_bundle_and_device(builds, tmp_path,
                                                                                             monkeypatch, caplog):
    from maskgate.cli import main
    from maskgate.runtimes.select import NoUsableBuildError, open_best

    pytest.importorskip("cryptography")
    assert main(["keygen", str(tmp_path / "site.key")]) == 0
    (tmp_path / "maskgate.toml").write_text('[trust]\nverify_key = "site.key.pub"\n')
    monkeypatch.setenv("MASKGATE_CONFIG", str(tmp_path / "maskgate.toml"))
    with caplog.at_level(logging.INFO, logger="maskgate.runtimes.select"):
        with pytest.raises(NoUsableBuildError, match="not signed"):
            open_best(builds, MASK, prefer="npu,gpu,cpu")  # 3 unsigned bundles, each a candidate on several devices
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"{MASK}: passing over 3 bundle(s) that do not verify: " in warnings[0] and "2 more" in warnings[0]
    each = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "not signed" in r.getMessage()]
    assert len(each) == 3, each  # one per bundle, for --verbose


def test_a_bundle_below_its_gates_is_built_with_exit_1_and_never_chosen(blank_calibrated, caplog):
    """Fault 4: the selector tried int8 first on the CPU whatever the build had measured."""
    from maskgate.converters.bundle import read_manifest
    from maskgate.runtimes.select import NoUsableBuildError, open_best
    from maskgate.runtimes.trust import TrustPolicy

    builds, code = blank_calibrated
    assert code == 1  # maskgate build: a bundle below its gates
    with caplog.at_level(logging.WARNING, logger="maskgate.runtimes.select"):
        selection = open_best(builds, DETECTOR, prefer="cpu")
    with selection.runner:
        assert selection.precision == "fp32"  # the CPU tries int8 first: not this one
    bad = read_manifest(builds / f"{DETECTOR}-openvino-int8")
    assert bad["verdict"]["passed"] is False and any("min_recall" in f for f in bad["verdict"]["failures"])
    assert read_manifest(builds / f"{DETECTOR}-openvino-fp32")["verdict"]["passed"] is True
    assert any("failed its gates when built" in r.getMessage() and "int8" in r.getMessage() for r in caplog.records)
    with pytest.raises(NoUsableBuildError, match="failed its gates when built"):
        open_best(builds, DETECTOR, prefer="cpu", precisions=("int8",))
    forced = open_best(builds, DETECTOR, prefer="cpu", trust=TrustPolicy(allow_failed_builds=True))
    with forced.runner:
        assert forced.precision == "int8"  # the user's explicit choice
    code, text = _check(builds)
    assert code == 1, text
    assert "1 of 2 bundle(s) passed" in text and f"FAILED {DETECTOR}-openvino-int8" in text, text


def test_a_hidden_folder_is_never_a_bundle(builds, tmp_path):
    """Fault 5: a complete copy of a bundle renamed like a staging folder was picked and checked."""
    from maskgate.check import check_builds
    from maskgate.errors import BundleError
    from maskgate.runtimes.select import open_best

    hidden_only = tmp_path / "hidden-only"
    hidden_only.mkdir()
    _copy(builds / f"{MASK}-onnx-fp32", hidden_only, f".{MASK}-onnx-fp32.partial-abc")
    with pytest.raises(BundleError, match="no bundle of"):
        open_best(hidden_only, MASK, prefer="cpu")
    with pytest.raises(BundleError, match="no bundle here"):
        check_builds(hidden_only, runs=1)
    beside = tmp_path / "beside"
    beside.mkdir()
    _copy(builds / f"{MASK}-onnx-fp32", beside)
    _copy(builds / f"{MASK}-openvino-fp32", beside, f".{MASK}-openvino-fp32.old-x")
    assert [Path(r.bundle).name for r in check_builds(beside, runs=1)] == [f"{MASK}-onnx-fp32"]
    selection = open_best(beside, MASK, prefer="cpu")  # OpenVINO ranks first on the CPU: the hidden one would win
    with selection.runner:
        assert selection.bundle.name == f"{MASK}-onnx-fp32"


_DIE_AT = '''
import os, pathlib, shutil, sys
from maskgate.converters import bundle
source, final, die_at, exchange = sys.argv[1], pathlib.Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
calls = [0]
def dying(call):
    def wrapped(*args, **kwargs):
        calls[0] += 1
        if calls[0] == die_at:
            os._exit(9)  # the power goes, mid-replacement
        return call(*args, **kwargs)
    return wrapped
os.rename = dying(os.rename)  # pathlib's rename and replace call these
os.replace = dying(os.replace)
if hasattr(bundle, "_exchange"):
    bundle._exchange = dying(bundle._exchange) if exchange else (lambda a, b: False)
with bundle.staging(final) as tmp:
    shutil.copytree(source, tmp, dirs_exist_ok=True)
'''


@pytest.mark.parametrize("exchange", [True, False], ids=["atomic-exchange", "set-aside"])
def test_a_bundle_being_replaced_is_never_lost(builds, tmp_path, exchange):
    """Fault 6: the old bundle was removed before the new one was renamed into place; a
    process dying between the two lost both. Die at every step of the replacement: the
    folder holds a whole, verified bundle, straight away where the OS swaps folders
    atomically, else once the next build has put the set-aside one back."""
    from maskgate.converters.bundle import exclusive_folder, verify_bundle

    source = builds / f"{MASK}-onnx-fp32"
    for die_at in (1, 2, 3, 4):
        out = tmp_path / f"die-{die_at}"
        out.mkdir()
        final = _copy(source, out)
        done = subprocess.run([sys.executable, "-c", _DIE_AT, str(source), str(final), str(die_at),
                               "1" if exchange else "0"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 9), done.stderr[-2000:]
        if exchange:
            verify_bundle(final)  # never a moment without it
        with exclusive_folder(out):  # what the next 'maskgate build' does first
            pass
        verify_bundle(final)
        assert sorted(p.name for p in out.iterdir()) == [final.name], (die_at, sorted(out.iterdir()))
