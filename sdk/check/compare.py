"""Compare a build's outputs with the reference's: raw tensors, top-1, detections.

Pure numpy, with hand-checkable definitions (see tests/test_check_compare.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..metrics import match_greedy

DETECTION_IOU = 0.5


@dataclass
class TensorError:
    max_abs: float
    mean_abs: float
    cosine: float  # of the flattened tensors; 1.0 when both are all zeros

    def to_dict(self) -> dict:
        return asdict(self)


def tensor_error(got: np.ndarray, want: np.ndarray) -> TensorError:
    got = np.asarray(got, np.float64).reshape(-1)
    want = np.asarray(want, np.float64).reshape(-1)
    if got.shape != want.shape:
        raise ValueError(f"output has {got.size} values, the reference {want.size}")
    diff = np.abs(got - want)
    norm = np.linalg.norm(got) * np.linalg.norm(want)
    cosine = float(got @ want / norm) if norm > 0 else float(np.allclose(got, want))
    return TensorError(float(diff.max(initial=0.0)), float(diff.mean()) if diff.size else 0.0, cosine)


def merge_errors(errors: list[TensorError]) -> TensorError:
    """Worst case over samples: largest max, mean of means, smallest cosine."""
    if not errors:
        return TensorError(0.0, 0.0, 1.0)
    return TensorError(max(e.max_abs for e in errors), float(np.mean([e.mean_abs for e in errors])),
                       min(e.cosine for e in errors))


def top1_agreement(got: np.ndarray, want: np.ndarray) -> float:
    """Share of rows (samples) whose arg-max class is the same; inputs [N, classes]."""
    got, want = np.asarray(got).reshape(len(got), -1), np.asarray(want).reshape(len(want), -1)
    if len(got) != len(want) or not len(got):
        raise ValueError(f"{len(got)} build rows against {len(want)} reference rows")
    return float(np.mean(got.argmax(1) == want.argmax(1)))


@dataclass
class DetectionAgreement:
    reference: int  # reference detections
    found: int  # of those, matched by the build at IoU >= 0.5
    build: int  # the build's detections
    landmark_nme: float | None  # mean landmark error / inter-ocular distance, over matched faces
    score_diff: float | None  # mean |score - reference score| over matched faces

    @property
    def recall(self) -> float:
        return self.found / self.reference if self.reference else 1.0

    @property
    def precision(self) -> float:
        return self.found / self.build if self.build else 1.0

    def to_dict(self) -> dict:
        return {**asdict(self), "recall": self.recall, "precision": self.precision}


def detection_agreement(ref_boxes, ref_scores, ref_landmarks, boxes, scores, landmarks, *,
                        iou: float = DETECTION_IOU) -> DetectionAgreement:
    """Match the build's detections to the reference's (greedy by the build's score)."""
    ref_boxes, boxes = np.asarray(ref_boxes).reshape(-1, 4), np.asarray(boxes).reshape(-1, 4)
    match = match_greedy(ref_boxes, boxes, np.asarray(scores), iou)
    pairs = [(i, j) for i, j in enumerate(match) if j >= 0]
    nme = score_diff = None
    if pairs:
        ref_lm = np.asarray(ref_landmarks).reshape(-1, 5, 2)
        lm = np.asarray(landmarks).reshape(-1, 5, 2)
        errors = []
        for i, j in pairs:
            inter_ocular = max(float(np.linalg.norm(ref_lm[i, 0] - ref_lm[i, 1])), 1e-6)
            errors.append(float(np.linalg.norm(lm[j] - ref_lm[i], axis=1).mean()) / inter_ocular)
        nme = float(np.mean(errors))
        score_diff = float(np.mean([abs(float(scores[j]) - float(ref_scores[i])) for i, j in pairs]))
    return DetectionAgreement(len(ref_boxes), len(pairs), len(boxes), nme, score_diff)


def merge_detections(parts: list[DetectionAgreement]) -> DetectionAgreement:
    found = sum(p.found for p in parts)

    def weighted(attr):
        values = [(getattr(p, attr), p.found) for p in parts if getattr(p, attr) is not None and p.found]
        return float(sum(v * n for v, n in values) / sum(n for _, n in values)) if values else None

    return DetectionAgreement(sum(p.reference for p in parts), found, sum(p.build for p in parts),
                              weighted("landmark_nme"), weighted("score_diff"))
