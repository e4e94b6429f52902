"""Alignment on real faces: the eye line is level after eye-roll alignment."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from maskgate import InputError, align_face, eye_roll_degrees
from maskgate.align import FACE_TEMPLATE_112, umeyama_similarity
from maskgate.sources import read_image


def _rotated_faces(detector, shared_data, rng, count=24):
    """Real faces, each turned by a random roll of up to 30 degrees, with their detections."""
    paths = sorted((shared_data / "faces" / "without_mask").glob("*"))[: count * 5 : 5]
    paths += sorted((shared_data / "faces" / "with_mask").glob("*"))[: count * 5 : 5]
    out = []
    for path in paths:
        image = read_image(path)
        h, w = image.shape[:2]
        turn = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-30, 30), 1.0)
        image = cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)
        found = detector.detect(image)
        if len(found):
            i = int(np.argmax(found.scores))
            out.append((image, found.boxes[i], found.landmarks[i]))
    assert len(out) >= count  # the detector finds faces in nearly all of them
    return out


@pytest.mark.shared_data
def test_eye_roll_levels_the_eye_line_within_one_degree(detector, shared_data, rng):
    faces = _rotated_faces(detector, shared_data, rng)
    before = [abs(eye_roll_degrees(points)) for _, _, points in faces]
    assert np.mean(before) > 5  # the test faces really are tilted
    for image, box, points in faces:
        aligned = align_face(image, box, points, size=(128, 128), method="eye_roll")
        assert aligned.image.shape == (128, 128, 3)
        assert abs(eye_roll_degrees(aligned.to_crop(points))) < 1.0
        # The face stays in frame: the nose lands in the central three quarters of the crop.
        nose = aligned.to_crop(points[2])[0]
        assert 16 <= nose[0] <= 112 and 16 <= nose[1] <= 112


@pytest.mark.shared_data
def test_redetection_on_aligned_crops_confirms_the_correction(detector, shared_data, rng):
    """An independent check: the detector run again on the aligned crop sees far less roll.

    The MobileNet0.25 landmarks themselves are noisy by several degrees, so this checks
    the direction and size of the correction, not the 1-degree figure.
    """
    faces = _rotated_faces(detector, shared_data, rng)
    before, after = [], []
    for image, box, points in faces:
        aligned = align_face(image, box, points, size=(256, 256), method="eye_roll")
        again = detector.detect(aligned.image)
        if len(again):
            before.append(abs(eye_roll_degrees(points)))
            after.append(abs(eye_roll_degrees(again.landmarks[int(np.argmax(again.scores))])))
    assert len(after) >= 0.9 * len(faces)
    assert np.median(after) < 0.5 * np.median(before)


@pytest.mark.shared_data
def test_similarity_alignment_puts_landmarks_on_the_template(detector, shared_data, rng):
    residuals = []
    for image, box, points in _rotated_faces(detector, shared_data, rng, count=12):
        aligned = align_face(image, box, points, size=(112, 112), method="similarity")
        residuals.append(np.linalg.norm(aligned.to_crop(points) - FACE_TEMPLATE_112, axis=1).mean())
        assert abs(eye_roll_degrees(aligned.to_crop(points))) < 10
    # Pixels on a 112 px crop: yawed faces cannot fit the frontal template exactly.
    assert np.median(residuals) < 6.0, residuals


def test_umeyama_recovers_a_known_similarity(rng):
    src = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = np.radians(17), 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = scale * src @ rot.T + shift
    matrix = umeyama_similarity(src, dst)
    np.testing.assert_allclose(matrix[:, :2], scale * rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_eye_roll_sign_convention():
    level = np.array([[10, 10], [30, 10], [20, 20], [12, 28], [28, 28]], float)
    assert eye_roll_degrees(level) == 0
    tilted = level.copy()
    tilted[1, 1] = 30  # right eye 20 px lower: +45 degrees
    assert eye_roll_degrees(tilted) == pytest.approx(45)
    frame = np.zeros((60, 60, 3), np.uint8)
    aligned = align_face(frame, np.array([5, 5, 40, 40.0]), tilted, size=(64, 64))
    assert abs(eye_roll_degrees(aligned.to_crop(tilted))) < 1e-9


def test_bad_alignment_input_is_refused():
    frame = np.zeros((60, 60, 3), np.uint8)
    with pytest.raises(InputError, match="five"):
        align_face(frame, np.array([0, 0, 10, 10.0]), np.zeros((4, 2)), size=(64, 64))
    with pytest.raises(InputError, match="no area"):
        align_face(frame, np.array([5, 5, 5, 5.0]), np.ones((5, 2)), size=(64, 64))
    with pytest.raises(InputError, match="unknown alignment method"):
        align_face(frame, np.array([0, 0, 10, 10.0]), np.ones((5, 2)), size=(64, 64), method="affine")
