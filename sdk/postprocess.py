"""RetinaFace decoding in numpy: priors, box/landmark decoding, score filter, NMS, top-k.

Pure numpy so that every runtime (PyTorch, ONNX Runtime, OpenVINO, LiteRT) shares it
and a torch-free device install decodes exactly as the reference does.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product

import numpy as np

from .specs import DetectionDefaults, PriorSpec


@dataclass(frozen=True)
class Detections:
    """Faces found in one image: boxes [N,4] (x1,y1,x2,y2), scores [N], landmarks [N,5,2].

    Landmark order: left eye, right eye, nose, left mouth corner, right mouth corner,
    where left and right are as seen in the image (the subject's right eye is point 0).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


@lru_cache(maxsize=16)
def _priors_cached(priors: PriorSpec, width: int, height: int) -> np.ndarray:
    rows: list[tuple[float, float, float, float]] = []
    for step, min_sizes in zip(priors.steps, priors.min_sizes):
        fh, fw = -(-height // step), -(-width // step)  # ceil: the conv stride rounds up
        for i, j in product(range(fh), range(fw)):
            cx, cy = (j + 0.5) * step / width, (i + 0.5) * step / height
            rows.extend((cx, cy, s / width, s / height) for s in min_sizes)
    out = np.asarray(rows, dtype=np.float32)
    if priors.clip:
        np.clip(out, 0.0, 1.0, out=out)
    out.setflags(write=False)
    return out


def prior_boxes(priors: PriorSpec, canvas_size: tuple[int, int]) -> np.ndarray:
    """Anchors [A,4] as (cx, cy, w, h), normalised to the canvas, in the heads' order."""
    return _priors_cached(priors, int(canvas_size[0]), int(canvas_size[1]))


def decode_boxes(loc: np.ndarray, priors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """Offsets [A,4] -> normalised corner boxes [A,4] (x1, y1, x2, y2)."""
    centers = priors[:, :2] + loc[:, :2] * variances[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(loc[:, 2:] * variances[1])
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1)


def decode_landmarks(pre: np.ndarray, priors: np.ndarray, variances: tuple[float, float]) -> np.ndarray:
    """Offsets [A,10] -> normalised points [A,5,2]."""
    pts = pre.reshape(-1, 5, 2)
    return priors[:, None, :2] + pts * variances[0] * priors[:, None, 2:]


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box [4] against boxes [N,4] (corner format)."""
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, highest score first.

    A box is suppressed when its IoU with a kept box is strictly above the threshold.
    Ties in score keep the lower index first (stable sort), so results are reproducible.
    """
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode_detections(
    loc: np.ndarray,
    conf: np.ndarray,
    landmarks: np.ndarray,
    *,
    priors: PriorSpec,
    canvas_size: tuple[int, int],
    options: DetectionDefaults,
) -> Detections:
    """Raw outputs of one image (no batch axis) -> detections in canvas pixels."""
    anchors = prior_boxes(priors, canvas_size)
    if loc.shape[0] != anchors.shape[0]:
        raise ValueError(
            f"detector returned {loc.shape[0]} anchors, the {canvas_size[0]}x{canvas_size[1]} canvas has "
            f"{anchors.shape[0]}: the model's input size and the spec disagree"
        )
    scores = conf[:, 1]
    idx = np.flatnonzero(scores > options.score_threshold)
    if idx.size == 0:
        return Detections.empty()
    idx = idx[np.argsort(-scores[idx], kind="stable")[: options.pre_nms_top_k]]
    w, h = canvas_size
    boxes = decode_boxes(loc[idx], anchors[idx], priors.variances) * np.array([w, h, w, h], np.float32)
    points = decode_landmarks(landmarks[idx], anchors[idx], priors.variances) * np.array([w, h], np.float32)
    keep = nms(boxes, scores[idx], options.nms_iou)[: options.max_detections]
    return Detections(
        boxes=boxes[keep].astype(np.float32),
        scores=scores[idx][keep].astype(np.float32),
        landmarks=points[keep].astype(np.float32),
    )
