"""Accuracy of the crop classifiers: on a crop set's test split, and end to end on scenes.

Runner-agnostic (any backend's CropClassifier / Pipeline), so the same figures can be
taken for the PyTorch reference and for every build.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .classifier import CropClassifier
from .metrics import match_greedy
from .pose import YawBins

_VOC_MASK = {"with_mask": "mask", "without_mask": "no_mask"}


def classify_crops(
    classifier: CropClassifier, images: np.ndarray, *, progress: Callable[[Iterable], Iterable] = lambda it: it
) -> np.ndarray:
    """Probabilities (N, classes) for BGR crops (N, H, W, 3), one runner call per crop."""
    rows = [classifier.probabilities(images[i]) for i in progress(range(len(images)))]
    return np.stack(rows) if rows else np.zeros((0, len(classifier.spec.class_names)))


def mask_labels(crops) -> tuple[np.ndarray, np.ndarray]:
    """Indices of crops with a mask / no_mask label (incorrectly worn left out) and the labels."""
    keep = np.flatnonzero(np.isin(crops.mask, [0, 1]))
    return keep, crops.mask[keep].astype(np.int64)


def pose_labels(crops, *, bins: YawBins = YawBins(), min_face_px: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    keep = np.flatnonzero(np.isin(crops.mask, [0, 1]) & (crops.face_px >= min_face_px))
    return keep, np.array([bins.classify(float(crops.yaw[i])) for i in keep], np.int64)


@dataclass
class EndToEnd:
    """Scenes, detect -> align -> classify, against the VOC mask labels."""

    min_width: float
    iou: float
    faces: int = 0  # labelled faces at least min_width wide
    found: int = 0
    correct: int = 0
    confusion: np.ndarray = field(default_factory=lambda: np.zeros((2, 2), np.int64))  # rows label, cols predicted

    @property
    def accuracy_of_found(self) -> float | None:
        return self.correct / self.found if self.found else None

    @property
    def accuracy_of_all(self) -> float | None:
        """Missed faces count as wrong: what a turnstile would see."""
        return self.correct / self.faces if self.faces else None

    def to_dict(self) -> dict:
        return {
            "min_face_px": self.min_width, "iou": self.iou, "faces": self.faces, "found": self.found,
            "correct": self.correct, "accuracy_of_found": self.accuracy_of_found,
            "accuracy_of_all": self.accuracy_of_all, "confusion": self.confusion.tolist(),
        }


def scenes_end_to_end(
    pipeline, scenes, *, min_width: float = 32.0, iou: float = 0.3, progress=lambda it: it
) -> EndToEnd:
    from .sources import read_image

    names = pipeline.mask.spec.class_names
    acc = EndToEnd(min_width=min_width, iou=iou)
    for item in progress(scenes):
        faces = pipeline(read_image(item.image_path))
        boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
        scores = np.array([f.score for f in faces], np.float32)
        matched = match_greedy(item.boxes, boxes, scores, iou)
        for g, label in enumerate(item.labels):
            if label not in _VOC_MASK or item.boxes[g, 2] - item.boxes[g, 0] < min_width:
                continue
            acc.faces += 1
            if matched[g] < 0:
                continue
            acc.found += 1
            truth = names.index(_VOC_MASK[label])
            predicted = names.index(faces[matched[g]].mask["label"])
            acc.confusion[truth, predicted] += 1
            acc.correct += int(truth == predicted)
    return acc
