"""The per-frame pipeline: detect faces, align and crop each one, classify the crop.

Mask and head-pose classifiers are optional: without them ``mask`` and ``pose`` stay None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .align import AlignMethod, align_face, eye_roll_degrees
from .classifier import DEFAULT_MASK_MODEL, DEFAULT_POSE_MODEL, CropClassifier, mask_result, pose_result
from .detector import DEFAULT_DETECTOR, FaceDetector
from .preprocess import as_bgr_frame


@dataclass(frozen=True)
class AlignConfig:
    method: AlignMethod = "eye_roll"
    size: tuple[int, int] = (128, 128)
    margin: float = 0.25


@dataclass
class FaceResult:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float
    landmarks: tuple[tuple[float, float], ...]  # left eye, right eye, nose, left/right mouth (image sides)
    roll_degrees: float
    crop: np.ndarray | None = field(default=None, repr=False)  # aligned BGR crop
    mask: dict | None = None
    pose: dict | None = None

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "roll": round(self.roll_degrees, 2),
            "mask": self.mask,
            "pose": self.pose,
        }


class Pipeline:
    """BGR uint8 frame -> list of FaceResult, largest score first."""

    def __init__(
        self,
        detector: FaceDetector,
        *,
        align: AlignConfig | None = AlignConfig(),
        mask: CropClassifier | None = None,
        pose: CropClassifier | None = None,
    ):
        if (mask is not None or pose is not None) and align is None:
            raise ValueError("the classifiers read aligned crops: pass an AlignConfig (align=None only without classifiers)")
        self.detector = detector
        self.align = align
        self.mask = mask
        self.pose = pose

    @classmethod
    def reference(
        cls,
        *,
        detector: str = DEFAULT_DETECTOR,
        weights: str | Path | None = None,
        device: str = "auto",
        score_threshold: float | None = None,
        input_size: tuple[int, int] | None = None,
        align: AlignConfig | None = AlignConfig(),
        mask_model: str | None = DEFAULT_MASK_MODEL,
        mask_weights: str | Path | None = None,
        pose_model: str | None = DEFAULT_POSE_MODEL,
        pose_weights: str | Path | None = None,
    ) -> Pipeline:
        """The PyTorch fp32 reference pipeline (needs the [torch] extra).

        ``mask_model=None`` / ``pose_model=None`` leave that classifier out.
        """
        det = FaceDetector.reference(
            detector, weights=weights, device=device, input_size=input_size, score_threshold=score_threshold
        )
        mask = CropClassifier.reference(mask_model, weights=mask_weights, device=device) if mask_model else None
        pose = CropClassifier.reference(pose_model, weights=pose_weights, device=device) if pose_model else None
        return cls(det, align=align, mask=mask, pose=pose)

    def __call__(self, frame: np.ndarray) -> list[FaceResult]:
        frame = as_bgr_frame(frame)
        found = self.detector.detect(frame)
        results = []
        for box, score, points in zip(found.boxes, found.scores, found.landmarks):
            crop, roll = None, eye_roll_degrees(points)
            if self.align is not None:
                aligned = align_face(frame, box, points, size=self.align.size, method=self.align.method, margin=self.align.margin)
                crop, roll = aligned.image, aligned.roll_degrees
            results.append(
                FaceResult(
                    box=tuple(float(v) for v in box),
                    score=float(score),
                    landmarks=tuple((float(x), float(y)) for x, y in points),
                    roll_degrees=roll,
                    crop=crop,
                    mask=self._classify(self.mask, crop, mask_result),
                    pose=self._classify(self.pose, crop, pose_result),
                )
            )
        return results

    @staticmethod
    def _classify(classifier: CropClassifier | None, crop: np.ndarray | None, result) -> dict | None:
        if classifier is None or crop is None:
            return None
        return result(classifier.probabilities(crop), classifier.spec.class_names)

    @property
    def device(self) -> str:
        return self.detector.runner.describe()

    def close(self) -> None:
        self.detector.close()
        for classifier in (self.mask, self.pose):
            if classifier is not None:
                classifier.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
