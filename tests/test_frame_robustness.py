"""Frames a camera app may hand over, through the pipeline from builds: converted, or
refused with a typed error; never a crash inside a runtime."""
from __future__ import annotations

import numpy as np
import pytest

from maskgate.errors import InputError
from maskgate.metrics import match_greedy


@pytest.fixture(scope="module")
def pipeline(make_builds):
    from maskgate import Pipeline

    out = make_builds("frames", models=("retinaface_mnet025", "mask_mobilenetv2"), formats=("onnx",),
                      precisions=("fp32",))
    with Pipeline.from_builds(out, pose_model=None, prefer="cpu") as p:
        yield p


@pytest.fixture(scope="module")
def picture():
    import cv2

    from tests.conftest import ROOT

    return cv2.imread(str(ROOT / "examples" / "images" / "scene_5.jpg"))


def test_colour_variants_give_the_same_faces(pipeline, picture):
    import cv2

    reference = pipeline(picture)
    assert len(reference) == 5
    bgra = cv2.cvtColor(picture, cv2.COLOR_BGR2BGRA)
    assert len(pipeline(bgra)) == len(reference)
    strided = np.zeros((picture.shape[0], picture.shape[1] * 2, 3), np.uint8)
    strided[:, ::2] = picture
    view = strided[:, ::2]  # a non-contiguous view of the same pixels
    assert not view.flags["C_CONTIGUOUS"]
    got = pipeline(view)
    assert [f.box for f in got] == [f.box for f in reference]
    gray = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY)
    for frame in (gray, gray[:, :, None]):  # a grey frame is expanded to three channels: the same five faces
        faces = pipeline(frame)
        match = match_greedy(np.array([f.box for f in reference]), np.array([f.box for f in faces]).reshape(-1, 4),
                             np.array([f.score for f in faces]), 0.5)
        assert len(faces) == len(reference) and (match >= 0).all(), (frame.shape, match)
        assert [faces[j].mask["label"] for j in match] == [f.mask["label"] for f in reference]


@pytest.mark.parametrize("shape", [(8, 8, 3), (4320, 7680, 3)])
def test_tiny_and_8k_frames_run(pipeline, shape):
    frame = np.full(shape, 127, np.uint8)
    assert pipeline(frame) == []


@pytest.mark.parametrize("frame, message", [
    (np.zeros((0, 0, 3), np.uint8), "empty"),
    (np.zeros((0, 0), np.uint8), "empty"),
    (np.zeros((480, 640, 3), np.uint16), "uint8"),
    (np.zeros((480, 640, 3), np.float32), "uint8"),
    (np.zeros((480, 640, 2), np.uint8), "HxWx3"),
    (np.zeros((2, 480, 640, 3), np.uint8), "HxWx3"),
    ("frame.jpg", "numpy array"),
    (None, "numpy array"),
])
def test_bad_frames_are_refused_with_a_typed_error(pipeline, frame, message):
    with pytest.raises(InputError, match=message):
        pipeline(frame)
