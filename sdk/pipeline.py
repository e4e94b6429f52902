"""The per-frame pipeline: detect faces, align and crop each one.

The mask and head-pose classifiers of later steps plug in here; until then ``mask``
and ``pose`` stay None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .align import AlignMethod, align_face, eye_roll_degrees
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

    def __init__(self, detector: FaceDetector, *, align: AlignConfig | None = AlignConfig()):
        self.detector = detector
        self.align = align

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
    ) -> Pipeline:
        """The PyTorch fp32 reference pipeline (needs the [torch] extra)."""
        det = FaceDetector.reference(
            detector, weights=weights, device=device, input_size=input_size, score_threshold=score_threshold
        )
        return cls(det, align=align)

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
                )
            )
        return results

    @property
    def device(self) -> str:
        return self.detector.runner.describe()

    def close(self) -> None:
        self.detector.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
