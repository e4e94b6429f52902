"""Calibration data as the model's own input tensors (NNCF's Dataset idea).

The detector is calibrated on whole frames, letterboxed exactly as at run time; the
classifiers on the aligned crops the detector and aligner cut from those frames, which is
what they see on the device. A set is re-iterable, materialised once (a few hundred
tensors), and records its sample count and hashes for the build manifest.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from maskgate.errors import CalibrationError
from maskgate.preprocess import letterbox, to_tensor
from maskgate.specs import InputSpec, ModelSpec

from .frames import FrameSet

DEFAULT_SAMPLES = 128


@dataclass
class CalibrationSet:
    """Model-ready input tensors (each a batch of one, shaped like ``spec.input.shape``)."""

    input_name: str
    tensors: list[np.ndarray]
    source: str  # what the frames were, for people
    source_sha256: str  # hash of the frame files
    keys: list[str] = field(default_factory=list)  # frame key of each tensor

    def __post_init__(self):
        if not self.tensors:
            raise CalibrationError(f"calibration set from {self.source} is empty: no usable frames or faces; "
                                   "pass --calib with images that show faces")

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.tensors)

    def feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for x in self.tensors:
            yield {self.input_name: x}

    def sha256(self) -> str:
        """Hash of the tensors themselves: changes with the frames and the preprocessing."""
        return self._sha256

    @cached_property
    def _sha256(self) -> str:
        # The tensors are not changed after the set is made (to_layout makes a new set).
        digest = hashlib.sha256()
        for x in self.tensors:
            digest.update(np.ascontiguousarray(x).tobytes())
        return digest.hexdigest()

    def record(self) -> dict:
        return {"samples": len(self), "source": self.source, "source_sha256": self.source_sha256,
                "tensors_sha256": self.sha256()}

    def to_layout(self, layout: str) -> CalibrationSet:
        """The same samples for a model whose input is NHWC (channel-last TFLite builds)."""
        if layout == "NCHW":
            return self
        return CalibrationSet(self.input_name, [in_layout(x, layout) for x in self.tensors],
                              self.source, self.source_sha256, list(self.keys))


def in_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """An NCHW tensor as the given layout (NHWC for channel-last builds)."""
    return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def frames_for_detector(frames: FrameSet, spec: InputSpec, *, limit: int = DEFAULT_SAMPLES,
                        progress: Callable[[Iterable], Iterable] = lambda it: it) -> CalibrationSet:
    """Whole frames, letterboxed onto the detector's fixed canvas."""
    keys, tensors = [], []
    for key, frame in progress(frames.frames(limit=limit)):
        canvas, _ = letterbox(frame, spec)
        keys.append(key)
        tensors.append(to_tensor(canvas, spec))
    return CalibrationSet(spec.name, tensors, frames.describe(), frames.sha256(), keys)


def crops_for_classifier(
    frames: FrameSet,
    spec: ModelSpec,
    detector,
    *,
    limit: int = DEFAULT_SAMPLES,
    crop_margin: float = 0.25,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> CalibrationSet:
    """Aligned crops of every face ``detector`` finds in the frames (at most ``limit``)."""
    from maskgate.align import align_face
    from maskgate.classifier import crop_to_tensor

    keys, tensors = [], []
    for key, frame in progress(frames.frames()):
        found = detector.detect(frame)
        for i in np.argsort(-found.scores):
            crop = align_face(frame, found.boxes[i], found.landmarks[i], size=spec.input.size, margin=crop_margin).image
            keys.append(f"{key}@{i}")
            tensors.append(crop_to_tensor(crop, spec))
        if len(tensors) >= limit:
            break
    return CalibrationSet(
        spec.input.name, tensors[:limit], f"faces found in {frames.describe()}", frames.sha256(), keys[:limit]
    )


def calibration_set(model: ModelSpec, frames: FrameSet, *, detector=None, limit: int = DEFAULT_SAMPLES,
                    progress: Callable[[Iterable], Iterable] = lambda it: it) -> CalibrationSet:
    """The right kind of set for ``model``: frames for a detector, crops for a classifier."""
    if model.task == "face_detection":
        return frames_for_detector(frames, model.input, limit=limit, progress=progress)
    if detector is None:
        raise CalibrationError(f"{model.name} is calibrated on detected face crops: pass the detector that cuts them")
    return crops_for_classifier(frames, model, detector, limit=limit, progress=progress)
