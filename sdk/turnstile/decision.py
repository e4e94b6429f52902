"""The gate's decision: per frame, then smoothed, then one event per passage.

Per frame, the person at the gate is the largest face in the region of interest. What
that frame says (``Decision``): no face; a face turned too far (its yaw class is not a
frontal one): look at the camera; no mask; mask on: open. Single frames flicker (motion
blur, a hand at the face), so the gate acts on the majority of the last ``window``
frames. A passage starts when that majority first shows a face and ends when it has
shown no face for ``gap_frames`` frames in a row (or the stream ends); it yields one
``Passage`` event: OPEN if the gate opened during it, else the last refusal.
"""
from __future__ import annotations

import enum
import statistics
from collections import Counter, deque
from dataclasses import dataclass, field


class Decision(str, enum.Enum):
    NO_FACE = "NO_FACE"
    LOOK_AT_CAMERA = "LOOK_AT_CAMERA"
    NO_MASK = "NO_MASK"
    OPEN = "OPEN"


@dataclass(frozen=True)
class GateRules:
    """What the turnstile asks of the person at the gate."""

    frontal_yaw_classes: tuple[int, ...] = (1, 2, 3, 4)  # of the six: within +-40 degrees
    min_mask_prob: float = 0.5  # P(mask) needed to open
    min_face_px: float = 48.0  # narrower faces are too far from the gate to count
    window: int = 5  # frames the majority is taken over
    gap_frames: int = 5  # frames without a face that end a passage

    def __post_init__(self):
        if self.window < 1 or self.gap_frames < 1:
            raise ValueError(f"window and gap_frames must be at least 1, got {self.window} and {self.gap_frames}")
        if not 0.0 <= self.min_mask_prob <= 1.0:
            raise ValueError(f"min_mask_prob must be in [0, 1], got {self.min_mask_prob}")


@dataclass
class Observation:
    """One frame's reading of the person at the gate."""

    decision: Decision
    time: float  # seconds (stream or wall clock)
    mask_prob: float | None = None  # P(mask)
    yaw_class: str | None = None
    face: dict | None = None  # FaceResult.to_dict() of the person at the gate
    runtime: dict | None = None  # what ran each model
    stages_ms: dict | None = None  # per-stage latency of this frame


def observe(faces, *, rules: GateRules, time: float, roi: tuple[int, int, int, int] | None = None,
            stages_ms: dict | None = None) -> Observation:
    """The frame's Observation from the pipeline's faces (``FaceResult``s)."""
    candidates = [f for f in faces if f.box[2] - f.box[0] >= rules.min_face_px and _in_roi(f.box, roi)]
    if not candidates:
        return Observation(Decision.NO_FACE, time, stages_ms=stages_ms)
    person = max(candidates, key=lambda f: f.box[2] - f.box[0])
    mask_prob = None
    if person.mask is not None:
        prob = float(person.mask["prob"])
        mask_prob = prob if person.mask["label"] == "mask" else 1.0 - prob
    yaw = person.pose["yaw_bin"] if person.pose is not None else None
    if yaw is not None and yaw not in rules.frontal_yaw_classes:
        decision = Decision.LOOK_AT_CAMERA
    elif mask_prob is not None and mask_prob < rules.min_mask_prob:
        decision = Decision.NO_MASK
    else:
        decision = Decision.OPEN
    face = person.to_dict()
    return Observation(decision, time, mask_prob, person.pose["label"] if person.pose else None, face,
                       person.runtime, stages_ms)


def _in_roi(box, roi) -> bool:
    """The face's centre lies in the region of interest (x, y, width, height)."""
    if roi is None:
        return True
    x, y, w, h = roi
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return x <= cx < x + w and y <= cy < y + h


@dataclass
class Passage:
    """One person's passage through the gate: the event the app writes."""

    start: float
    end: float
    decision: Decision
    frames: int
    mask_prob: float | None  # median over the passage's frames with a face
    yaw_class: str | None  # most common over those frames
    opened_at: float | None  # when the gate opened, if it did
    runtime: dict | None
    stages_ms: dict | None  # median per stage over the passage's frames

    def to_dict(self) -> dict:
        return {"time": round(self.start, 3), "end": round(self.end, 3), "decision": self.decision.value,
                "frames": self.frames, "mask_prob": None if self.mask_prob is None else round(self.mask_prob, 4),
                "yaw_class": self.yaw_class, "opened_at": None if self.opened_at is None else round(self.opened_at, 3),
                "runtime": self.runtime,
                "stages_ms": {k: round(v, 2) for k, v in (self.stages_ms or {}).items()}}


@dataclass
class GateStateMachine:
    """Feeds on Observations; returns the Passage each one closes (or None)."""

    rules: GateRules = field(default_factory=GateRules)
    state: Decision = Decision.NO_FACE
    _recent: deque = field(default_factory=deque, init=False, repr=False)
    _passage: list = field(default_factory=list, init=False, repr=False)
    _opened_at: float | None = field(default=None, init=False, repr=False)
    _last_refusal: Decision | None = field(default=None, init=False, repr=False)
    _empty_run: int = field(default=0, init=False, repr=False)

    def update(self, obs: Observation) -> Passage | None:
        self._recent.append(obs)
        while len(self._recent) > self.rules.window:
            self._recent.popleft()
        # Frames before the first count as no face: one frame at the start opens nothing.
        padding = [Decision.NO_FACE] * (self.rules.window - len(self._recent))
        self.state = _majority(padding + [o.decision for o in self._recent])
        if not self._passage:
            if self.state is Decision.NO_FACE:
                return None
            # The passage began with the first face among the frames that made the majority.
            self._passage = [o for o in self._recent if o.decision is not Decision.NO_FACE]
        else:
            self._passage.append(obs)
        if self.state is Decision.OPEN and self._opened_at is None:
            self._opened_at = obs.time
        elif self.state in (Decision.NO_MASK, Decision.LOOK_AT_CAMERA):
            self._last_refusal = self.state
        self._empty_run = self._empty_run + 1 if obs.decision is Decision.NO_FACE else 0
        if self.state is Decision.NO_FACE and self._empty_run >= self.rules.gap_frames:
            return self._close()
        return None

    def finish(self) -> Passage | None:
        """The stream ended: close a passage still open."""
        return self._close() if self._passage else None

    def _close(self) -> Passage | None:
        frames = [o for o in self._passage if o.decision is not Decision.NO_FACE]
        passage = None
        if frames:
            decision = Decision.OPEN if self._opened_at is not None else (
                self._last_refusal or Counter(o.decision for o in frames).most_common(1)[0][0])
            probs = [o.mask_prob for o in frames if o.mask_prob is not None]
            yaws = [o.yaw_class for o in frames if o.yaw_class is not None]
            stages = [o.stages_ms for o in self._passage if o.stages_ms]
            passage = Passage(
                start=frames[0].time, end=frames[-1].time, decision=decision, frames=len(frames),
                mask_prob=statistics.median(probs) if probs else None,
                yaw_class=Counter(yaws).most_common(1)[0][0] if yaws else None, opened_at=self._opened_at,
                runtime=next((o.runtime for o in frames if o.runtime), None),
                stages_ms={k: statistics.median(s.get(k, 0.0) for s in stages) for k in stages[0]} if stages else None)
        self._passage, self._opened_at, self._last_refusal, self._empty_run = [], None, None, 0
        self._recent.clear()
        self.state = Decision.NO_FACE
        return passage


def _majority(decisions) -> Decision:
    """The most common decision; a tie goes to the most recent of the tied ones."""
    counts = Counter(decisions)
    best = max(counts.values())
    return next(d for d in reversed(decisions) if counts[d] == best)
