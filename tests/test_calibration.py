"""Calibration frames, model-ready sets and the quantizer adapters."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from maskgate.calibration import DEFAULT_DIR, CalibrationSet, FrameSet, default_frames, frames_for_detector
from maskgate.errors import CalibrationError
from maskgate.registry import get_spec


def test_default_set_ships_disjoint_calibrate_and_verify_parts():
    import json

    index = json.loads((DEFAULT_DIR / "index.json").read_text())
    parts = {
        part: {f["origin"] for f in index["files"] if f["file"].startswith(part + "/")}
        for part in ("calibrate", "verify")
    }
    assert parts["calibrate"] and parts["verify"] and not parts["calibrate"] & parts["verify"]
    assert {f["split"] for f in index["files"] if f["file"].startswith("verify/")} == {"test"}
    assert (DEFAULT_DIR / "ATTRIBUTION.md").is_file()
    assert len(default_frames("calibrate").paths) == len(parts["calibrate"])


def test_hash_follows_content_and_limit_spreads(tmp_path):
    for i, src in enumerate(default_frames("verify").paths[:6]):
        shutil.copyfile(src, tmp_path / f"{i}.jpg")
    frames = FrameSet.from_path(tmp_path)
    first = frames.sha256()
    assert FrameSet.from_path(tmp_path).sha256() == first
    (tmp_path / "0.jpg").write_bytes((tmp_path / "1.jpg").read_bytes())
    assert FrameSet.from_path(tmp_path).sha256() != first
    picked = FrameSet.from_path(tmp_path, limit=3).paths
    assert [p.name for p in picked] == ["0.jpg", "2.jpg", "5.jpg"]


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CalibrationError, match="no images"):
        FrameSet.from_path(tmp_path)
    with pytest.raises(CalibrationError, match="no such"):
        FrameSet.from_path(tmp_path / "nope")
    with pytest.raises(CalibrationError, match="empty"):
        CalibrationSet("input", [], "nothing", "0")


@pytest.mark.shared_data
def test_data_folder_split_selection(shared_data):
    from maskgate.datasets.crops import split_of

    test = FrameSet.from_path(shared_data, split="test", limit=40)
    assert len(test.paths) == 40
    assert all(split_of(p.relative_to(shared_data).as_posix()) == "test" for p in test.paths)
    assert {p.relative_to(shared_data).parts[0] for p in test.paths} == {"faces", "scenes"}


def test_detector_set_is_letterboxed_frames():
    spec = get_spec("retinaface_mnet025")
    cset = frames_for_detector(default_frames("calibrate"), spec.input, limit=4)
    assert len(cset) == 4 and all(x.shape == (1, 3, 480, 640) and x.dtype == np.float32 for x in cset)
    record = cset.record()
    assert record["samples"] == 4 and len(record["tensors_sha256"]) == 64


def test_classifier_set_is_detected_crops(detector):
    from maskgate.calibration import crops_for_classifier

    cset = crops_for_classifier(default_frames("calibrate"), get_spec("mask_mobilenetv2"), detector, limit=10)
    assert len(cset) == 10 and all(x.shape == (1, 3, 128, 128) for x in cset)
    nhwc = cset.to_layout("NHWC")
    assert nhwc.tensors[0].shape == (1, 128, 128, 3)
    np.testing.assert_array_equal(nhwc.tensors[0][0, 5, 7], cset.tensors[0][0, :, 5, 7])


def test_adapters_yield_model_inputs():
    from maskgate.calibration.adapters import litert_calibration, nncf_dataset, ort_reader

    rng = np.random.default_rng(0)
    cset = CalibrationSet("input", [rng.normal(size=(1, 3, 8, 8)).astype(np.float32) for _ in range(3)], "r", "0")
    pytest.importorskip("onnxruntime")
    reader = ort_reader(cset)
    feeds = [reader.get_next() for _ in range(4)]
    assert [f["input"].shape for f in feeds[:3]] == [(1, 3, 8, 8)] * 3 and feeds[3] is None
    reader.rewind()
    assert reader.get_next()["input"] is cset.tensors[0]
    litert = litert_calibration(cset, signature="serving_default", input_name="args_0")
    assert len(litert["serving_default"]) == 3 and litert["serving_default"][1]["args_0"].shape == (1, 3, 8, 8)
    pytest.importorskip("nncf")
    items = list(nncf_dataset(cset).get_inference_data())
    assert len(items) == 3 and items[2].shape == (1, 3, 8, 8)
