"""The pipeline from bundles gives the reference pipeline's faces and mask labels, per
backend, on held-out scenes: fp32 builds every face (IoU >= 0.5) and every label; int8
builds, which the selector picks first on a CPU, within the int8 gates (>= 98 % of the
reference's faces, >= 99 % of their mask labels), and they pass 'maskgate check'."""
from __future__ import annotations

import pytest

SCENES = 40


@pytest.fixture(scope="module")
def fp32_builds(make_builds):
    return make_builds("fp32-builds", models=("retinaface_mnet025", "mask_mobilenetv2"), precisions=("fp32",))


@pytest.fixture(scope="module")
def scenes_and_reference(shared_data):
    import cv2

    from maskgate import Pipeline
    from maskgate.calibration.frames import FrameSet

    held_out = FrameSet.from_path(shared_data, split="test").paths  # the project's test split
    frames = [cv2.imread(str(p)) for p in held_out if p.relative_to(shared_data).parts[0] == "scenes"][:SCENES]
    with Pipeline.reference(device="cpu", pose_model=None) as reference:
        return frames, [reference(frame) for frame in frames]


def _agreement(pipeline, frames, expected, fmt: str) -> tuple[int, int, int]:
    """(reference faces, found by the pipeline at IoU >= 0.5, with the same mask label)."""
    from maskgate.compare import FaceAgreement, compare_faces

    total = FaceAgreement()
    for frame, ref in zip(frames, expected):
        got = pipeline(frame)
        assert all(face.runtime and fmt in face.runtime["detector"] for face in got)
        total.add(compare_faces([f.to_dict() for f in ref], [f.to_dict() for f in got]))
    return total.reference, total.found, total.same_mask


@pytest.mark.shared_data
@pytest.mark.parametrize("fmt", ["onnx", "openvino", "tflite"])
def test_pipeline_from_fp32_builds_matches_the_reference(fp32_builds, scenes_and_reference, fmt):
    from maskgate import Pipeline

    frames, expected = scenes_and_reference
    with Pipeline.from_builds(fp32_builds, pose_model=None, prefer="cpu", formats=(fmt,)) as pipeline:
        assert {s.format for s in pipeline.selections.values()} == {fmt}
        wanted, found, same_label = _agreement(pipeline, frames, expected, fmt)
    assert wanted > 50
    assert found == wanted and same_label == found, (fmt, wanted, found, same_label)  # fp32: the same pipeline


@pytest.mark.shared_data
@pytest.mark.parametrize("fmt", ["openvino", "tflite"])
def test_pipeline_from_int8_builds_is_chosen_and_agrees_with_the_reference(quantized_builds, scenes_and_reference,
                                                                           fmt):
    from maskgate import Pipeline
    from maskgate.check import check_builds
    from maskgate.check.gates import DEFAULT_GATES

    frames, expected = scenes_and_reference
    with Pipeline.from_builds(quantized_builds, pose_model=None, prefer="cpu", formats=(fmt,)) as pipeline:
        assert {s.precision for s in pipeline.selections.values()} == {"int8"}  # the CPU's first choice, verified
        wanted, found, same_label = _agreement(pipeline, frames, expected, fmt)
    gate = DEFAULT_GATES["int8"]
    assert wanted > 50
    assert found / wanted >= gate.min_recall and same_label / found >= gate.min_top1, (fmt, wanted, found, same_label)
    checks = [c for c in check_builds(quantized_builds, runs=2) if c.format == fmt and c.precision == "int8"]
    assert len(checks) == 3 and all(checks), [c.failures() for c in checks]
