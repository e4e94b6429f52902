"""Classifying many faces at once (``Runner.infer_batch``, ``CropClassifier.probabilities_many``)
gives what one face at a time gives, on the CPU runtimes (crop by crop in one call) and on
the PyTorch reference (one batch)."""
from __future__ import annotations

import numpy as np
import pytest

from maskgate import InputError


def _crops(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    # Smooth random crops: a classifier's outputs vary with them, unlike on constant images.
    base = rng.integers(0, 255, (count, 16, 16, 3), dtype=np.uint8)
    import cv2

    return [cv2.resize(b, (128, 128), interpolation=cv2.INTER_LINEAR) for b in base]


@pytest.mark.parametrize("fmt", ["openvino", "tflite"])
@pytest.mark.parametrize("model", ["mask_mobilenetv2", "pose_mobilenetv2_skip"])
def test_a_batch_gives_what_one_crop_at_a_time_gives(quantized_builds, fmt, model):
    from maskgate.deployed import open_classifier

    classifier, selection = open_classifier(quantized_builds, model, prefer="cpu", formats=(fmt,),
                                            precisions=("int8",), threads=1)
    with classifier.runner:
        for count in (1, 5, 20):
            crops = _crops(count)
            one_by_one = np.stack([classifier.probabilities(c) for c in crops])
            together = classifier.probabilities_many(crops)
            assert together.shape == one_by_one.shape == (count, len(classifier.spec.class_names))
            np.testing.assert_allclose(together, one_by_one, atol=2e-5, err_msg=f"{fmt} {model} x{count}")
            if count > 1:  # the crops give different answers, so a batch that repeats or mixes them up shows
                assert np.ptp(one_by_one, axis=0).max() > 1e-3, f"{fmt} {model}: every crop gives the same output"
                np.testing.assert_allclose(classifier.probabilities_many(crops[::-1]), one_by_one[::-1], atol=2e-5)
        assert classifier.probabilities_many([]).shape == (0, len(classifier.spec.class_names))
        x = classifier.tensor(_crops(1)[0])
        with pytest.raises(InputError, match="stacked"):
            classifier.runner.infer_batch(classifier.spec.input.name, x[:, :, :64])
        with pytest.raises(InputError, match="one input"):
            classifier.runner.infer_batch("image", x)


def test_the_reference_runner_takes_the_batch_in_one_call():
    from maskgate import CropClassifier

    classifier = CropClassifier.reference("mask_mobilenetv2", device="cpu")
    crops = _crops(3)
    np.testing.assert_allclose(classifier.probabilities_many(crops),
                               np.stack([classifier.probabilities(c) for c in crops]), atol=1e-5)
