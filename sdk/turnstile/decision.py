"""The gate's decision: per frame, then smoothed; the gate acts at once, one summary per passage.

Per frame, the person at the gate is the largest face in the region of interest. What
that frame says (``Decision``): no face; a face turned too far (its yaw class is not a
frontal one): look at the camera; no mask; mask on: open; and, where a verdict the gate
needs is missing or not a number (no mask model, a classifier that failed, a crop that
could not be cut, NaN probabilities): cannot check. The gate fails closed: only a
finite P(mask) at or above the rule, on a face whose pose is known to be frontal, opens.
Single frames flicker (motion blur, a hand at the face), so the gate acts on the last
``window`` frames: OPEN when more than half of them say OPEN, else the most common of
the other decisions. A passage starts when that smoothed decision first
shows a face. The moment it first says OPEN the machine emits a ``GateEvent``
("open": the relay's cue; at most once per passage); while it refuses, a "refuse"
event each time the reason changes (the display's cue). The passage ends when the
decision has shown no face for ``gap_frames`` frames in a row (or the stream ends) and
yields one ``Passage`` summary: OPEN if the gate opened during it, else the last refusal.
"""
from __future__ import annotations

import enum
import math
import statistics
from collections import Counter, deque
from dataclasses import dataclass, field
from time import perf_counter

from ..config.turnstile import GateRules  # noqa: F401  (the rules are config: [turnstile.rules])


class Decision(str, enum.Enum):
    NO_FACE = "NO_FACE"
    LOOK_AT_CAMERA = "LOOK_AT_CAMERA"
    NO_MASK = "NO_MASK"
    CANNOT_CHECK = "CANNOT_CHECK"  # a face at the gate, but a verdict the gate needs is missing
    OPEN = "OPEN"


REFUSALS = (Decision.LOOK_AT_CAMERA, Decision.NO_MASK, Decision.CANNOT_CHECK)


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
    reason: str = ""  # why this decision, in words (shown in events)
    frame: int | None = None  # index of the frame in the stream


def person_at_gate(boxes, *, rules: GateRules, roi: tuple[int, int, int, int] | None = None) -> int | None:
    """Index of the person at the gate among the detected ``boxes`` (x1, y1, x2, y2): the widest
    face of at least ``rules.min_face_px`` whose centre is in ``roi``; None when there is none.
    The pipeline classifies that face alone on the turnstile path, and ``observe`` decides on it."""
    best, best_width = None, -1.0
    for index, box in enumerate(boxes):
        width = _box_width(box)  # NaN boxes: no face
        if width >= rules.min_face_px and width > best_width and _in_roi(box, roi):
            best, best_width = index, width
    return best


def choose_person_at_gate(*, rules: GateRules, roi: tuple[int, int, int, int] | None = None):
    """``Pipeline(frame, classify=...)`` for the turnstile: only the face the gate decides on is
    aligned and classified, so a queue in view costs its detections, not a classifier run per face."""

    def choose(boxes) -> list[int]:
        chosen = person_at_gate(boxes, rules=rules, roi=roi)
        return [] if chosen is None else [chosen]

    return choose


def observe(faces, *, rules: GateRules, time: float, roi: tuple[int, int, int, int] | None = None,
            stages_ms: dict | None = None, frame: int | None = None) -> Observation:
    """The frame's Observation from the pipeline's faces (``FaceResult``s)."""
    chosen = person_at_gate([f.box for f in faces], rules=rules, roi=roi)
    if chosen is None:
        return Observation(Decision.NO_FACE, time, stages_ms=stages_ms, reason="no face at the gate", frame=frame)
    person = faces[chosen]
    mask_prob, mask_problem = _mask_probability(person.mask)
    yaw, pose_problem = _yaw_class(person.pose)
    yaw_label = person.pose.get("label") if isinstance(person.pose, dict) and yaw is not None else None
    if yaw is not None and rules.frontal_yaw_classes and yaw not in rules.frontal_yaw_classes:
        decision, reason = Decision.LOOK_AT_CAMERA, f"head turned away (yaw class {yaw_label}, not frontal)"
    elif mask_problem:
        decision, reason = Decision.CANNOT_CHECK, f"no mask verdict: {mask_problem}"
    elif rules.frontal_yaw_classes and pose_problem:
        decision, reason = Decision.CANNOT_CHECK, f"no head-pose verdict: {pose_problem}"
    elif mask_prob is None or not mask_prob >= rules.min_mask_prob:  # None: a mask_problem, above
        decision, reason = Decision.NO_MASK, f"no mask (P(mask) {mask_prob or 0.0:.2f} < {rules.min_mask_prob:g})"
    else:
        decision, reason = Decision.OPEN, f"mask on (P(mask) {mask_prob:.2f})" + (
            f", facing the camera ({yaw_label})" if yaw_label else "")
    return Observation(decision, time, mask_prob, yaw_label, person.to_dict(), person.runtime, stages_ms, reason, frame)


def _box_width(box) -> float:
    width = float(box[2]) - float(box[0])
    return width if math.isfinite(width) else -1.0


def _mask_probability(mask) -> tuple[float | None, str]:
    """(P(mask), "") from the mask classifier's result, or (None, why there is no verdict)."""
    if mask is None:
        return None, "the mask classifier gave no result (no mask model, or the face crop could not be cut)"
    try:
        label, prob = mask["label"], float(mask["prob"])
    except (KeyError, TypeError, ValueError):
        return None, f"unreadable mask result {mask!r}"
    if not 0.0 <= prob <= 1.0:  # NaN fails this too
        return None, f"the mask classifier's probability is {prob}"
    if label == "mask":
        return prob, ""
    if label == "no_mask":
        return 1.0 - prob, ""
    return None, f"unknown mask label {label!r} (expected mask or no_mask)"


def _yaw_class(pose) -> tuple[int | None, str]:
    """(yaw class, "") from the pose classifier's result, or (None, why there is none)."""
    if pose is None:
        return None, "the head-pose classifier gave no result (no pose model, or the face crop could not be cut)"
    try:
        yaw = pose["yaw_bin"]
        probs = [float(p) for p in pose.get("probs") or []]
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, f"unreadable head-pose result {pose!r}"
    if not isinstance(yaw, int) or isinstance(yaw, bool) or not all(math.isfinite(p) for p in probs):
        return None, f"the head-pose classifier gave yaw class {yaw!r} from probabilities {probs}"
    return yaw, ""


def _in_roi(box, roi) -> bool:
    """The face's centre lies in the region of interest (x, y, width, height)."""
    if roi is None:
        return True
    x, y, w, h = roi
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return x <= cx < x + w and y <= cy < y + h


@dataclass
class GateEvent:
    """The gate acting, at the frame the smoothed decision reached it: "open" (drive the
    relay) or "refuse" (show why); emitted by ``GateStateMachine.update``."""

    action: str  # "open" | "refuse"
    decision: Decision
    time: float  # stream time of the frame that made the decision
    frame: int | None  # index of that frame
    reason: str
    passage_start: float  # when the person arrived
    mask_prob: float | None = None
    yaw_class: str | None = None
    runtime: dict | None = None
    #: time.perf_counter() when the machine decided (not written): the relay's latency is measured from it
    decided_at: float = field(default_factory=perf_counter, compare=False)

    def to_dict(self) -> dict:
        return {
            "action": self.action,
            "decision": self.decision.value,
            "frame": self.frame,
            "reason": self.reason,
            "passage_start": round(self.passage_start, 3),
            "mask_prob": None if self.mask_prob is None else round(self.mask_prob, 4),
            "yaw_class": self.yaw_class,
            "runtime": self.runtime,
        }


@dataclass
class Passage:
    """One person's passage through the gate: the summary the app writes when it ends."""

    start: float
    end: float
    decision: Decision
    frames: int
    mask_prob: float | None  # median over the passage's frames with a face
    yaw_class: str | None  # most common over those frames
    opened_at: float | None  # when the gate opened, if it did
    runtime: dict | None
    stages_ms: dict | None  # median per stage over the passage's frames
    opened_frame: int | None = None  # the frame the gate opened at
    reason: str = ""  # why the gate opened, or the last refusal's reason

    def to_dict(self) -> dict:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "decision": self.decision.value,
                "reason": self.reason, "frames": self.frames,
                "mask_prob": None if self.mask_prob is None else round(self.mask_prob, 4),
                "yaw_class": self.yaw_class, "opened_at": None if self.opened_at is None else round(self.opened_at, 3),
                "opened_frame": self.opened_frame, "runtime": self.runtime,
                "stages_ms": {k: round(v, 2) for k, v in (self.stages_ms or {}).items()}}


@dataclass
class GateStateMachine:
    """Feeds on Observations; ``update`` returns the events each one causes, in order:
    a ``GateEvent`` when the gate acts, a ``Passage`` when a passage ends."""

    rules: GateRules = field(default_factory=GateRules)
    state: Decision = Decision.NO_FACE
    _recent: deque = field(default_factory=deque, init=False, repr=False)
    _passage: list = field(default_factory=list, init=False, repr=False)
    _opened: GateEvent | None = field(default=None, init=False, repr=False)
    _last_refusal: GateEvent | None = field(default=None, init=False, repr=False)
    _empty_run: int = field(default=0, init=False, repr=False)

    def update(self, obs: Observation) -> list[GateEvent | Passage]:
        self._recent.append(obs)
        while len(self._recent) > self.rules.window:
            self._recent.popleft()
        # Frames before the first count as no face: one frame at the start opens nothing.
        padding = [Decision.NO_FACE] * (self.rules.window - len(self._recent))
        self.state = _majority(padding + [o.decision for o in self._recent])
        if not self._passage:
            if self.state is Decision.NO_FACE:
                return []
            # The passage began with the first face among the frames that made the majority.
            self._passage = [o for o in self._recent if o.decision is not Decision.NO_FACE]
        else:
            self._passage.append(obs)
        events: list[GateEvent | Passage] = []
        if self._opened is None and self.state is not Decision.NO_FACE:
            gate = self._act(obs)
            if gate is not None:
                events.append(gate)
        self._empty_run = self._empty_run + 1 if obs.decision is Decision.NO_FACE else 0
        if self.state is Decision.NO_FACE and self._empty_run >= self.rules.gap_frames:
            passage = self._close()
            if passage is not None:
                events.append(passage)
        return events

    def _act(self, obs: Observation) -> GateEvent | None:
        """The gate event of this frame: open once, or a refusal whose reason is new."""
        # The reading behind the decision: this frame's, or the latest frame that said it.
        source = next((o for o in reversed(self._recent) if o.decision is self.state), obs)
        action = "open" if self.state is Decision.OPEN else "refuse"
        if action == "refuse" and self._last_refusal is not None and self._last_refusal.decision is self.state:
            return None
        event = GateEvent(action, self.state, obs.time, obs.frame, source.reason, self._passage[0].time,
                          source.mask_prob, source.yaw_class, source.runtime)
        if action == "open":
            self._opened = event
        else:
            self._last_refusal = event
        return event

    def finish(self) -> Passage | None:
        """The stream ended: close a passage still open."""
        return self._close() if self._passage else None

    def blind(self, time: float, reason: str) -> list[GateEvent | Passage]:
        """The camera gives no frames (stalled, reconnecting): nobody can be checked. A passage
        in progress that has not opened is refused as CANNOT_CHECK (the display's cue), then
        ends; the smoothing window is emptied, so when frames come back the decision starts
        afresh, never from the frames before. The state stays CANNOT_CHECK until then."""
        events: list[GateEvent | Passage] = []
        if self._passage:
            if self._opened is None and not (self._last_refusal is not None and
                                             self._last_refusal.decision is Decision.CANNOT_CHECK):
                self._last_refusal = GateEvent("refuse", Decision.CANNOT_CHECK, time, None, reason,
                                               self._passage[0].time)
                events.append(self._last_refusal)
            passage = self._close()
            if passage is not None:
                events.append(passage)
        self._recent.clear()
        self._empty_run = 0
        self.state = Decision.CANNOT_CHECK
        return events

    def _close(self) -> Passage | None:
        frames = [o for o in self._passage if o.decision is not Decision.NO_FACE]
        passage = None
        if frames:
            last = self._opened or self._last_refusal
            decision = last.decision if last else Counter(o.decision for o in frames).most_common(1)[0][0]
            probs = [o.mask_prob for o in frames if o.mask_prob is not None]
            yaws = [o.yaw_class for o in frames if o.yaw_class is not None]
            stages = [o.stages_ms for o in self._passage if o.stages_ms]
            passage = Passage(
                start=frames[0].time, end=frames[-1].time, decision=decision, frames=len(frames),
                mask_prob=statistics.median(probs) if probs else None,
                yaw_class=Counter(yaws).most_common(1)[0][0] if yaws else None,
                opened_at=self._opened.time if self._opened else None,
                runtime=next((o.runtime for o in frames if o.runtime), None),
                stages_ms={k: statistics.median(s.get(k, 0.0) for s in stages) for k in stages[0]} if stages else None,
                opened_frame=self._opened.frame if self._opened else None,
                reason=last.reason if last else "")
        self._passage, self._opened, self._last_refusal, self._empty_run = [], None, None, 0
        self._recent.clear()
        self.state = Decision.NO_FACE
        return passage


def _majority(decisions) -> Decision:
    """OPEN when more than half of the window says OPEN (the gate fails closed: two masked
    frames among five, or a tie, never open it); otherwise the most common of the other
    decisions, a tie going to the most recent of the tied ones."""
    if sum(d is Decision.OPEN for d in decisions) * 2 > len(decisions):
        return Decision.OPEN
    rest = [d for d in decisions if d is not Decision.OPEN]
    counts = Counter(rest)
    best = max(counts.values())
    return next(d for d in reversed(rest) if counts[d] == best)
