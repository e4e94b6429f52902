"""Semi-synthetic masks: templates load, the mask lands on the lower face, views follow yaw."""
from __future__ import annotations

import numpy as np
import pytest

from maskgate.align import align_face
from maskgate.errors import SourceError
from maskgate.pose import estimate_yaw, mirror_landmarks
from maskgate.sources import list_images, read_image

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def synthesizer(shared_data):
    from maskgate.datasets.synth import MaskSynthesizer, load_templates

    return MaskSynthesizer(load_templates(shared_data / "mask_templates"))


@pytest.fixture(scope="module")
def unmasked_faces(shared_data, detector):
    """Aligned crops of real unmasked faces with their crop-space landmarks."""
    faces = []
    for path in list_images(shared_data / "faces" / "without_mask")[::150][:8]:
        frame = read_image(path)
        found = detector.detect(frame, score_threshold=0.3)
        if len(found.boxes):
            i = int(np.argmax(found.boxes[:, 2] - found.boxes[:, 0]))
            aligned = align_face(frame, found.boxes[i], found.landmarks[i], size=(128, 128))
            faces.append((aligned.image, aligned.to_crop(found.landmarks[i])))
    assert len(faces) >= 6
    return faces


def test_templates_load_with_six_anchors_and_three_views(shared_data):
    from maskgate.datasets.synth import load_templates

    templates = load_templates(shared_data / "mask_templates")
    assert len(templates) == 21  # the picture-less [empty]/[inpaint] sections are skipped
    assert {t.view for t in templates} == {"front", "left", "right"}
    for t in templates:
        assert t.anchors.shape == (6, 2) and t.image.shape[2] == 4
        a, b, c, d, e, f = t.anchors
        # Corners in place (some anchors sit off the picture, e.g. gas_left's right side).
        assert a[0] < c[0] and d[0] < f[0] and b[1] < e[1] and a[1] < d[1] and c[1] < f[1], t.name


def test_missing_template_folder_is_a_clear_error(tmp_path):
    from maskgate.datasets.synth import load_templates

    with pytest.raises(SourceError, match="masks.cfg"):
        load_templates(tmp_path)


def test_mask_covers_the_lower_face_below_the_eyes(synthesizer, unmasked_faces):
    rng = np.random.default_rng(0)
    for image, points in unmasked_faces:
        for template in (synthesizer.pick(estimate_yaw(points), rng), synthesizer.by_view["front"][0]):
            result = synthesizer.apply(image, points, rng, template=template)
            covered = result.coverage > 0.5
            ys, xs = np.nonzero(covered)
            eye_y = points[:2, 1].mean()
            mouth_y = points[3:, 1].mean()
            # The template's pixels lie below the eyes, the mouth and nose tip are under the mask,
            # the eyes are not, and the picture changed only where the mask is.
            assert covered.sum() > 0.08 * covered.size, template.name
            assert np.mean(ys > eye_y) > 0.97, template.name
            assert ys.mean() > (eye_y + mouth_y) / 2, template.name
            for x, y in points[2:]:
                assert result.coverage[int(round(y)), int(round(x))] > 0.5, (template.name, x, y)
            for x, y in points[:2]:
                assert result.coverage[int(round(y)), int(round(x))] < 0.5, template.name
            changed = np.any(result.image != image, axis=2)
            assert not np.any(changed & (result.coverage == 0))


def test_turned_faces_get_the_side_view_and_mirroring_swaps_it(synthesizer):
    rng = np.random.default_rng(0)
    # Landmarks of a face turned to the image's left (nose left of the eye centre), 128 px crop.
    turned = np.array([[40.0, 50], [75, 50], [38, 72], [45, 92], [72, 92]])
    yaw = estimate_yaw(turned)
    assert yaw < -synthesizer.options.side_yaw
    assert synthesizer.pick(yaw, rng).view == "left"
    mirrored = mirror_landmarks(turned, 128)
    assert synthesizer.pick(estimate_yaw(mirrored), rng).view == "right"


def test_synthesize_crops_keeps_yaw_and_split_and_labels_mask(unmasked_faces, synthesizer):
    from maskgate.datasets.crops import CropSet
    from maskgate.datasets.synth import synthesize_crops

    n = len(unmasked_faces)
    crops = CropSet(
        images=np.stack([f[0] for f in unmasked_faces]), mask=np.ones(n, np.int64),
        yaw=np.array([estimate_yaw(f[1]) for f in unmasked_faces], np.float32),
        landmarks=np.stack([f[1] for f in unmasked_faces]).astype(np.float32), face_px=np.full(n, 100.0, np.float32),
        outside=np.zeros(n, np.float32), split=np.array(["train", "test"] * (n // 2) + ["val"] * (n % 2)),
        origin=np.full(n, "faces"), source=np.array([f"f{i}.jpg" for i in range(n)]),
    )
    synth = synthesize_crops(crops, synthesizer, seed=3)
    assert len(synth) == n and np.all(synth.mask == 0) and np.all(synth.origin == "synth")
    np.testing.assert_array_equal(synth.yaw, crops.yaw)
    np.testing.assert_array_equal(synth.split, crops.split)
    assert not np.array_equal(synth.images, crops.images)
    again = synthesize_crops(crops, synthesizer, seed=3)
    np.testing.assert_array_equal(again.images, synth.images)  # seeded: reproducible
