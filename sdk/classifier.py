"""Crop classifiers (mask, head pose) over any runner: aligned crops -> class probabilities.

Like ``FaceDetector``, the preprocessing here is shared by every backend, so a build
differs from the reference only by what its runner computes.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .errors import InputError, ModelError
from .pose import YawBins
from .preprocess import to_tensor
from .registry import create_model, get_spec
from .specs import ModelSpec

if TYPE_CHECKING:  # runtimes imports maskgate.errors: a top-level import here would be circular
    from maskgate.runtimes.base import Runner

DEFAULT_MASK_MODEL = "mask_mobilenetv2"
DEFAULT_POSE_MODEL = "pose_mobilenetv2_skip"


class CropClassifier:
    def __init__(self, spec: ModelSpec, runner: Runner):
        if spec.task != "classification" or not spec.class_names:
            raise ModelError(f"{spec.name} is a {spec.task} model, not a crop classifier")
        self.spec = spec
        self.runner = runner

    @classmethod
    def reference(cls, name: str, *, weights: str | Path | None = None, device: str = "auto") -> CropClassifier:
        """The PyTorch fp32 reference classifier (shipped weights unless ``weights`` is given)."""
        from maskgate.runtimes.pytorch import TorchRunner

        spec = get_spec(name)
        model = create_model(name, weights=weights)
        return cls(spec, TorchRunner(model, input_names=(spec.input.name,), output_names=spec.outputs, device=device))

    def tensor(self, crop_bgr: np.ndarray) -> np.ndarray:
        return crop_to_tensor(crop_bgr, self.spec)

    def probabilities(self, crop_bgr: np.ndarray) -> np.ndarray:
        out = self.runner.infer({self.spec.input.name: self.tensor(crop_bgr)})
        return np.asarray(out[self.spec.outputs[0]], np.float64).reshape(-1)

    def probabilities_many(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """Class probabilities (N, classes) of N crops in one runner call: one batch where
        the runtime takes one (``Runner.infer_batch``), else one crop after another with
        the model's weights still in cache."""
        if not len(crops_bgr):
            return np.zeros((0, len(self.spec.class_names)))
        batch = np.concatenate([self.tensor(crop) for crop in crops_bgr])
        out = self.runner.infer_batch(self.spec.input.name, batch)
        return np.asarray(out[self.spec.outputs[0]], np.float64).reshape(len(crops_bgr), -1)

    def close(self) -> None:
        self.runner.close()


def crop_to_tensor(crop_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """An aligned BGR crop -> the classifier's input tensor (any backend, calibration too)."""
    if crop_bgr is None or crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3:
        raise InputError(f"{spec.name} expects an aligned BGR crop (H, W, 3), got {getattr(crop_bgr, 'shape', None)}")
    w, h = spec.input.size
    if crop_bgr.shape[:2] != (h, w):
        # Crops cut at another --crop-size are resampled to what the model was trained on.
        crop_bgr = cv2.resize(
            crop_bgr, (w, h), interpolation=cv2.INTER_AREA if crop_bgr.shape[1] > w else cv2.INTER_LINEAR
        )
    return to_tensor(crop_bgr, spec.input)


def mask_result(probs: np.ndarray, names: tuple[str, ...]) -> dict:
    """``{"label", "prob"}``: prob is the probability of the reported label."""
    k = int(np.argmax(probs))
    return {"label": names[k], "prob": round(float(probs[k]), 5)}


def pose_result(probs: np.ndarray, names: tuple[str, ...]) -> dict:
    k = int(np.argmax(probs))
    return {"label": names[k], "yaw_bin": k, "probs": [round(float(p), 5) for p in probs]}


def check_pose_classes(spec: ModelSpec, bins: YawBins = YawBins()) -> None:
    if len(spec.class_names) != bins.count:
        raise ModelError(f"{spec.name} has {len(spec.class_names)} classes; a yaw model needs {bins.count}")
