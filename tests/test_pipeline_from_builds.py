"""The pipeline from bundles gives the reference pipeline's faces and mask labels, per
backend, on held-out scenes (fp32 builds: detections matched at IoU >= 0.5 >= 98 %,
mask labels >= 99 % equal)."""
from __future__ import annotations

import numpy as np
import pytest

from sdk.metrics import match_greedy

SCENES = 40


@pytest.fixture(scope="module")
def fp32_builds(make_builds):
    return make_builds("fp32-builds", models=("retinaface_mnet025", "mask_mobilenetv2"), precisions=("fp32",))


@pytest.fixture(scope="module")
def scenes_and_reference(shared_data):
    import cv2

    from calibration.frames import FrameSet
    from sdk import Pipeline

    held_out = FrameSet.from_path(shared_data, split="test").paths  # the project's test split
    frames = [cv2.imread(str(p)) for p in held_out if p.relative_to(shared_data).parts[0] == "scenes"][:SCENES]
    with Pipeline.reference(device="cpu", pose_model=None) as reference:
        return frames, [reference(frame) for frame in frames]


@pytest.mark.shared_data
@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_pipeline_from_fp32_builds_matches_the_reference(fp32_builds, scenes_and_reference, fmt):
    from sdk import Pipeline

    frames, expected = scenes_and_reference
    wanted = found = same_label = 0
    with Pipeline.from_builds(fp32_builds, pose_model=None, prefer="cpu", formats=(fmt,)) as pipeline:
        assert {s.format for s in pipeline.selections.values()} == {fmt}
        for frame, ref in zip(frames, expected):
            got = pipeline(frame)
            assert all(face.runtime and fmt in face.runtime["detector"] for face in got)
            ref_boxes = np.array([f.box for f in ref]).reshape(-1, 4)
            got_boxes = np.array([f.box for f in got]).reshape(-1, 4)
            match = match_greedy(ref_boxes, got_boxes, np.array([f.score for f in got]), 0.5)
            wanted += len(ref)
            for i, j in enumerate(match):
                if j >= 0:
                    found += 1
                    same_label += ref[i].mask["label"] == got[j].mask["label"]
    assert wanted > 50
    assert found / wanted >= 0.98, (fmt, found, wanted)
    assert same_label / found >= 0.99, (fmt, same_label, found)
