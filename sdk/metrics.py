"""Detection metrics against ground-truth boxes: matching and recall by face size."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Face-width buckets in pixels of the original image: [lo, hi).
SIZE_BUCKETS: tuple[tuple[float, float], ...] = ((0, 10), (10, 20), (20, 32), (32, 64), (64, 128), (128, float("inf")))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N,4] with every box in b [M,4] -> [N,M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_greedy(gt: np.ndarray, pred: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """For each ground-truth box, the index of its matched prediction or -1.

    Predictions are taken by descending score; each matches the unmatched ground truth
    it overlaps most, at IoU >= threshold (the usual VOC protocol).
    """
    matched = np.full(len(gt), -1, dtype=np.int64)
    if len(gt) == 0 or len(pred) == 0:
        return matched
    ious = iou_matrix(pred, gt)
    for p in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(matched < 0, ious[p], -1.0)
        g = int(np.argmax(cand))
        if cand[g] >= iou_threshold:
            matched[g] = p
    return matched


@dataclass
class RecallBySize:
    """Recall accumulated over images, overall and per face-width bucket."""

    iou_threshold: float = 0.3
    buckets: tuple[tuple[float, float], ...] = SIZE_BUCKETS
    found: np.ndarray = field(init=False)
    total: np.ndarray = field(init=False)
    predictions: int = 0
    true_positives: int = 0

    def __post_init__(self):
        self.found = np.zeros(len(self.buckets), np.int64)
        self.total = np.zeros(len(self.buckets), np.int64)

    def add(self, gt: np.ndarray, pred: np.ndarray, scores: np.ndarray) -> None:
        gt = np.asarray(gt, np.float64).reshape(-1, 4)
        matched = match_greedy(gt, pred, scores, self.iou_threshold)
        widths = gt[:, 2] - gt[:, 0]
        for i, (lo, hi) in enumerate(self.buckets):
            sel = (widths >= lo) & (widths < hi)
            self.total[i] += int(sel.sum())
            self.found[i] += int((matched[sel] >= 0).sum())
        self.predictions += len(pred)
        self.true_positives += int((matched >= 0).sum())

    def recall(self, *, min_width: float = 0.0) -> float:
        sel = np.array([lo >= min_width for lo, _ in self.buckets])
        total = self.total[sel].sum()
        return float(self.found[sel].sum() / total) if total else float("nan")

    @property
    def precision(self) -> float:
        return self.true_positives / self.predictions if self.predictions else float("nan")

    def rows(self) -> list[dict]:
        out = []
        for (lo, hi), f, t in zip(self.buckets, self.found, self.total):
            label = f"{lo:g}-{hi:g} px" if np.isfinite(hi) else f">= {lo:g} px"
            out.append({"bucket": label, "faces": int(t), "found": int(f), "recall": float(f / t) if t else None})
        return out


# --- classification ---------------------------------------------------------------


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates over all score thresholds (ties handled together)."""
    positive = np.asarray(positive, bool)
    scores = np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]
    tp = np.cumsum(p)[last_of_tie]
    fp = np.cumsum(~p)[last_of_tie]
    pos, neg = max(int(p.sum()), 1), max(int((~p).sum()), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        raise ValueError("ROC AUC needs both classes among the labels")
    fpr, tpr = roc_curve(positive, scores)
    return float(np.trapezoid(tpr, fpr))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    out = np.zeros((classes, classes), np.int64)
    np.add.at(out, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return out


def per_class_accuracy(confusion: np.ndarray) -> list[float | None]:
    """Per-class accuracy (recall of each class, the pose paper's CA); None for an absent class."""
    totals = confusion.sum(1)
    return [float(confusion[i, i] / totals[i]) if totals[i] else None for i in range(len(confusion))]


def mask_scores(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Labels 0 = mask, 1 = no_mask; probs (N, 2). The positive class of ROC is 'mask'."""
    pred = probs.argmax(1)
    conf = confusion_matrix(labels, pred, 2)
    tp, fn, fp = conf[0, 0], conf[0, 1], conf[1, 0]
    out = {
        "n": int(len(labels)),
        "accuracy": float(np.mean(pred == labels)) if len(labels) else None,
        "mask_recall": float(tp / max(tp + fn, 1)),
        "mask_precision": float(tp / max(tp + fp, 1)),
        "no_mask_recall": float(conf[1, 1] / max(conf[1].sum(), 1)),  # bare faces caught: what a turnstile stops
        "confusion": conf.tolist(),
    }
    try:
        out["roc_auc"] = roc_auc(labels == 0, probs[:, 0])
    except ValueError:
        out["roc_auc"] = None
    return out


def pose_scores(labels: np.ndarray, probs: np.ndarray, classes: int) -> dict:
    pred = probs.argmax(1)
    conf = confusion_matrix(labels, pred, classes)
    return {
        "n": int(len(labels)),
        "overall_accuracy": float(np.mean(pred == labels)) if len(labels) else None,
        "per_class_accuracy": per_class_accuracy(conf),
        "within_one_class": float(np.mean(np.abs(pred - labels) <= 1)) if len(labels) else None,
        "confusion": conf.tolist(),
        "labels": "landmark-derived yaw (solvePnP on the detector's five landmarks), not measured head pose",
    }
