"""Tuning the detector for the turnstile canvas (``maskgate tune-detector``): the frames it
trains on keep their boxes on the faces, anchors are matched as biubug6's recipe, only the
context modules and face scores move, and the shipped tuned weights are what the turnstile
profile builds with."""
from __future__ import annotations

import numpy as np
import pytest

TUNED = ("ssh1.", "ssh2.", "ssh3.", "ClassHead.")


def test_camera_frames_keep_each_box_on_its_face():
    from maskgate.training.detector import camera_frame

    image = np.zeros((300, 400, 3), np.uint8)
    boxes = np.array([[40, 50, 120, 150], [250, 100, 330, 200]], float)
    for x1, y1, x2, y2 in boxes.astype(int):
        image[y1:y2, x1:x2] = 255
    rng = np.random.default_rng(0)
    flipped = 0
    for _ in range(20):
        frame, moved = camera_frame(image, boxes, rng, scale_range=(0.6, 1.6))
        assert frame.shape == (480, 640, 3) and len(moved)
        for x1, y1, x2, y2 in moved:
            inner = frame[int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2]
            assert inner.size and inner.mean() > 250, (x1, y1, x2, y2)  # white: the box is on its face
        flipped += moved[0, 0] > moved[-1, 0] if len(moved) == 2 else 0
    assert flipped  # the left face ends up on the right in some frames


def test_anchors_match_a_face_at_iou_035_and_each_face_gets_its_best():
    from maskgate.postprocess import prior_boxes
    from maskgate.registry import get_spec
    from maskgate.training.detector import anchor_labels

    priors = prior_boxes(get_spec("retinaface_mnet025").priors, (320, 256))
    corners = np.concatenate([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1)
    assert anchor_labels(np.zeros((0, 4)), corners, (320, 256)).sum() == 0
    face = np.array([[100.0, 60.0, 164.0, 124.0]])  # a 64 px face: the 64 px anchors at stride 16 cover it
    labels = anchor_labels(face, corners, (320, 256))
    assert 1 <= labels.sum() <= 12
    odd = np.array([[10.0, 10.0, 13.0, 40.0]])  # no anchor reaches IoU 0.35 with a 3x30 sliver
    assert anchor_labels(odd, corners, (320, 256)).sum() == 1  # its best anchor all the same


def _changed(state: dict, reference: dict) -> set[str]:
    return {k for k, v in state.items() if not np.array_equal(v.numpy(), reference[k].numpy())}


@pytest.mark.shared_data
def test_tuning_moves_only_the_context_modules_and_face_scores(shared_data, tmp_path):
    import torch

    from maskgate.registry import create_model
    from maskgate.training.detector import DetectorTuning, tune_detector

    # Three steps: on the first the tuned model is the teacher, so the distilled heads get no gradient.
    options = DetectorTuning(epochs=1, batch_size=2, show_progress=False)
    metrics = tune_detector(shared_data, tmp_path, options, limit=6)
    assert metrics["best_epoch"] == 1 and 0.0 <= metrics["history"][0]["val_recall_32px_up"] <= 1.0
    tuned = torch.load(tmp_path / "model.pt", weights_only=True)
    packaged = create_model("retinaface_mnet025").state_dict()
    changed = _changed(tuned, packaged)
    assert changed and all(k.startswith(TUNED) for k in changed), sorted(changed)[:5]
    assert not any("running_" in k for k in changed)  # BatchNorm statistics as shipped


def test_the_turnstile_profile_builds_with_the_shipped_tuned_weights():
    import torch

    from maskgate.builder import BuildConfig
    from maskgate.profiles import PROFILES
    from maskgate.registry import create_model

    gate = PROFILES["turnstile"]
    config = BuildConfig.for_profile("turnstile", formats=("onnx",))
    assert config.detector_size == gate.detector_size
    assert config.weights == {"retinaface_mnet025": str(gate.detector_weights_path)}
    assert BuildConfig.for_profile("turnstile", weights={"retinaface_mnet025": "mine.pt"}).weights == {
        "retinaface_mnet025": "mine.pt"}
    assert BuildConfig.for_profile("general").weights == {}
    # Its converter defaults apply unless the build chose converter options of its own.
    import dataclasses

    from maskgate.registry import get_spec

    detector, classifier = get_spec("retinaface_mnet025"), get_spec("pose_mobilenetv2_skip")
    assert config.options_for(detector).tflite.calibration == "moving_average"
    assert config.options_for(classifier).tflite.calibration == "minmax"  # shared with the general profile
    assert BuildConfig.for_profile("general").options_for(detector).tflite.calibration == "minmax"
    own = config.options.replace(tflite=dataclasses.replace(config.options.tflite, channel_last_io=True))
    assert BuildConfig.for_profile("turnstile", options=own).options_for(detector).tflite.calibration == "minmax"
    shipped = torch.load(gate.detector_weights_path, weights_only=True)
    changed = _changed(shipped, create_model("retinaface_mnet025").state_dict())
    assert changed and all(k.startswith(TUNED) for k in changed)
    create_model("retinaface_mnet025", weights=gate.detector_weights_path)  # loads as a checkpoint
