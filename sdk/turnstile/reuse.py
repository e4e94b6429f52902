"""Temporal reuse on the turnstile path: a frame that tells the gate nothing new is not paid in full.

Most frames at a gate are empty, or show the same person as the frame before. Two savings,
each bounded so that the gate decides what it would have decided on every frame:

- **The still check.** Each frame's 32x24 grey thumbnail (each cell the mean of a 20x20
  patch of a 640x480 frame) is compared with the one of the last frame the detector ran on.
  While no cell changed by more than ``still_threshold`` (0-255), the detector is skipped and
  that frame's faces are this frame's, at the same places; a full detection runs at least
  every ``full_every`` frames. The largest cell change, not the mean: a 48 px face stepping
  into an empty scene moves the mean by less than 1 of 255 but its cells by 50 and more,
  while sensor noise, averaged over a cell, moves none by more than 1. ``still_with_people =
  false``: only after a frame with nobody in view.
- **The track.** The person at the gate is followed frame to frame: the detector's box of
  that person overlaps the last one (IoU >= ``min_iou``) and a 16x16 grey thumbnail of
  the face box stays within ``face_threshold`` of the one last classified (a new person at
  the same place, a mask put on or taken off, a head turned all change it). The classifiers
  are not run again while the track's last ``settle_frames`` decisions agree and fewer than
  ``reclassify_every`` frames have passed since its last classification; a track that is
  not settled is classified on every frame, so a person who arrives is decided on the same
  frame as without reuse (the third at ``window`` 5 with ``settle_frames`` 3).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..config.turnstile import ReuseRules
from ..postprocess import Detections

THUMB = (32, 24)
FACE_THUMB = (16, 16)


@dataclass
class ReuseStats:
    frames: int = 0
    detector_skipped: int = 0  # frames the still check answered
    verdicts_reused: int = 0  # frames whose person's verdicts came from the track


@dataclass
class _Detected:
    """The last frame the detector ran on, as the still check compares with it."""
    thumb: np.ndarray
    found: Detections


@dataclass
class _Track:
    box: np.ndarray
    face: np.ndarray  # the face thumbnail when last classified
    mask: object
    pose: object
    since: int = 0  # frames since the last classification
    decisions: deque = field(default_factory=deque)


def _grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame


def _thumb(grey: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA).astype(np.int16)


def _face_thumb(grey: np.ndarray, box) -> np.ndarray | None:
    h, w = grey.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    return _thumb(grey[y1:y2, x1:x2], FACE_THUMB)


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def _largest_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def iou(a, b) -> float:
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


class FrameReuse:
    """``faces = reuse(pipeline, frame, choose=..., timings=...)`` in place of
    ``pipeline(frame, classify=choose, timings=...)``; then ``reuse.observed(obs)`` with the
    frame's Observation (the track's decisions)."""

    def __init__(self, rules: ReuseRules | None = None, *, stats: ReuseStats | None = None):
        """``stats``: counts to add to (the app keeps one across the pipelines it swaps in)."""
        self.rules = rules or ReuseRules()
        self.stats = stats if stats is not None else ReuseStats()
        self._detected: _Detected | None = None
        self._skipped_run = 0
        self._track: _Track | None = None
        self._tracked_now = False  # this frame's person is the track's

    def __call__(self, pipeline, frame: np.ndarray, *, choose, timings: dict | None = None) -> list:
        rules = self.rules
        self.stats.frames += 1
        self._tracked_now = False
        grey = _grey(frame)
        thumb = _thumb(grey, THUMB)
        found = self._still_detections(thumb)
        if found is None:
            self._skipped_run = 0
            from ..preprocess import as_bgr_frame

            found = pipeline.detector.detect(as_bgr_frame(frame), timings=timings)
            self._detected = _Detected(thumb, found)
        else:
            self._skipped_run += 1
            self.stats.detector_skipped += 1
            if not len(found.boxes):
                if timings is not None:
                    from ..pipeline import STAGES

                    timings.update(dict.fromkeys(STAGES, 0.0))
                return []
        plan: dict = {}

        def classify(boxes) -> list[int]:
            chosen = list(choose(boxes))
            if not chosen:
                return []
            index = chosen[0]
            box = np.asarray(boxes[index], dtype=float)
            face = _face_thumb(grey, box)
            plan["index"], plan["box"], plan["face"] = index, box, face
            if self._reusable(box, face):
                plan["reuse"] = True
                return []
            return chosen

        faces = pipeline(frame, timings=timings, classify=classify, detections=found)
        if "index" not in plan:  # nobody at the gate
            self._track = None
            return faces
        person = faces[plan["index"]]
        track = self._track
        if plan.get("reuse") and track is not None:  # _reusable: only with a track
            person.mask, person.pose = track.mask, track.pose
            track.box, track.since = plan["box"], track.since + 1
            self.stats.verdicts_reused += 1
            self._tracked_now = True
            return faces
        same = track is not None and iou(plan["box"], track.box) >= rules.min_iou and plan["face"] is not None \
            and track.face is not None and _difference(plan["face"], track.face) <= rules.face_threshold
        if track is None or not same:
            self._track = track = _Track(box=plan["box"], face=plan["face"], mask=None, pose=None)
        track.box, track.face, track.since = plan["box"], plan["face"], 0
        track.mask, track.pose = person.mask, person.pose
        self._tracked_now = True
        return faces

    def _still_detections(self, thumb: np.ndarray) -> Detections | None:
        """The last detected frame's faces when nothing moved since it (None: run the detector)."""
        last, rules = self._detected, self.rules
        if last is None or self._skipped_run + 1 >= rules.full_every \
                or _largest_change(thumb, last.thumb) > rules.still_threshold:
            return None
        if len(last.found.boxes) and not rules.still_with_people:
            return None
        return last.found

    def _reusable(self, box: np.ndarray, face: np.ndarray | None) -> bool:
        track, rules = self._track, self.rules
        if track is None or face is None or track.face is None or track.mask is None and track.pose is None:
            return False
        if track.since + 1 >= rules.reclassify_every or len(track.decisions) < rules.settle_frames:
            return False
        recent = list(track.decisions)[-rules.settle_frames:]
        if any(d != recent[0] for d in recent):
            return False
        return iou(box, track.box) >= rules.min_iou and _difference(face, track.face) <= rules.face_threshold

    def observed(self, obs) -> None:
        """The frame's decision, for the track it was made on (a new track starts its count)."""
        track = self._track
        if track is None or not self._tracked_now:
            return
        track.decisions.append(obs.decision)
        while len(track.decisions) > self.rules.settle_frames:
            track.decisions.popleft()
