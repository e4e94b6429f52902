"""How far a build's outputs are from the fp32 reference's on the same inputs: raw tensors,
top-1 class, detections (one decode, one IoU rule, one landmark error), and the pipeline's
faces, with hand-checkable definitions.

One module for every comparison: the build's held-out pass, ``maskgate check`` on the golden
inputs, ``maskgate agree`` (two machines' faces), accuracy control, the on-device check
(.ci/device_check.py) and the benchmarks. An ``Agreement`` is truthy when the build agrees
at least as well as required (by default on every input) and carries its headline figure:
top-1 agreement for a classifier, the share of the reference's faces found for a detector.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

import numpy as np

from .metrics import iou_matrix, match_greedy
from .postprocess import decode_detections
from .specs import ModelSpec

DETECTION_IOU = 0.5  # a build's face matches a reference face at IoU >= this (greedy by the build's score)
# Landmark error is normalized by the reference's inter-ocular distance, but never by less than
# this share of the reference box's width. A face turned to profile has its eyes nearly on top
# of each other in the image: one golden face with eyes 1.0 px apart in a 46 px box made a
# 4 px landmark error an NME of 4.0, and that one face 0.14 of a 29-face mean. Frontal faces
# here have eyes 0.41-0.46 box widths apart, so the floor leaves them as they were.
NME_MIN_NORMALIZER = 0.3


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
    found: int  # of those, matched by the build at IoU >= DETECTION_IOU
    build: int  # the build's detections
    landmark_nme: float | None  # mean landmark error / inter-ocular distance (floored), over matched faces
    score_diff: float | None  # mean |score - reference score| over matched faces

    @property
    def recall(self) -> float:
        return self.found / self.reference if self.reference else 1.0

    @property
    def precision(self) -> float:
        return self.found / self.build if self.build else 1.0

    def to_dict(self) -> dict:
        return {**asdict(self), "recall": self.recall, "precision": self.precision}


def match_boxes(ref_boxes, boxes, scores=None, *, iou: float = DETECTION_IOU) -> list[tuple[int, int]]:
    """(reference index, build index) of each reference box matched by a build box at IoU >=
    ``iou``, greedily in the order of the build's ``scores`` (as listed, without scores)."""
    ref_boxes, boxes = np.asarray(ref_boxes, np.float64).reshape(-1, 4), np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.ones(len(boxes)) if scores is None else np.asarray(scores)
    match = match_greedy(ref_boxes, boxes, scores, iou)
    return [(i, int(j)) for i, j in enumerate(match) if j >= 0]


def landmark_nme(ref_landmarks, landmarks, ref_box) -> float:
    """One face's mean landmark distance over the reference's inter-ocular distance, that
    never below NME_MIN_NORMALIZER of the reference box's width."""
    ref_lm, lm = np.asarray(ref_landmarks, np.float64).reshape(5, 2), np.asarray(landmarks, np.float64).reshape(5, 2)
    inter_ocular = float(np.linalg.norm(ref_lm[0] - ref_lm[1]))
    normalizer = max(inter_ocular, NME_MIN_NORMALIZER * float(ref_box[2] - ref_box[0]), 1e-6)
    return float(np.linalg.norm(lm - ref_lm, axis=1).mean()) / normalizer


def detection_agreement(ref_boxes, ref_scores, ref_landmarks, boxes, scores, landmarks, *,
                        iou: float = DETECTION_IOU) -> DetectionAgreement:
    """Match the build's detections to the reference's (greedy by the build's score)."""
    ref_boxes, boxes = np.asarray(ref_boxes).reshape(-1, 4), np.asarray(boxes).reshape(-1, 4)
    pairs = match_boxes(ref_boxes, boxes, scores, iou=iou)
    nme = score_diff = None
    if pairs:
        ref_lm = np.asarray(ref_landmarks).reshape(-1, 5, 2)
        lm = np.asarray(landmarks).reshape(-1, 5, 2)
        nme = float(np.mean([landmark_nme(ref_lm[i], lm[j], ref_boxes[i]) for i, j in pairs]))
        score_diff = float(np.mean([abs(float(scores[j]) - float(ref_scores[i])) for i, j in pairs]))
    return DetectionAgreement(len(ref_boxes), len(pairs), len(boxes), nme, score_diff)


def merge_detections(parts: list[DetectionAgreement]) -> DetectionAgreement:
    found = sum(p.found for p in parts)

    def weighted(attr):
        values = [(getattr(p, attr), p.found) for p in parts if getattr(p, attr) is not None and p.found]
        return float(sum(v * n for v, n in values) / sum(n for _, n in values)) if values else None

    return DetectionAgreement(sum(p.reference for p in parts), found, sum(p.build for p in parts),
                              weighted("landmark_nme"), weighted("score_diff"))


def detections_of(outputs: dict[str, np.ndarray], spec: ModelSpec, *, score_threshold: float | None = None):
    """The detector's raw outputs for one input, decoded as the pipeline decodes them."""
    loc, conf, landmarks = (np.asarray(outputs[n])[0] for n in spec.outputs)
    options, priors = spec.detection, spec.priors
    if options is None or priors is None:
        raise ValueError(f"{spec.name} is not a detector spec (no detection options or priors)")
    if score_threshold is not None:
        options = dataclasses.replace(options, score_threshold=score_threshold)
    return decode_detections(loc, conf, landmarks, priors=priors, canvas_size=spec.input.size, options=options)


def match_detections(spec: ModelSpec, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> DetectionAgreement:
    """One input's detections (decoded from both raw outputs) against the reference's."""
    ref, build = detections_of(want, spec), detections_of(got, spec)
    return detection_agreement(ref.boxes, ref.scores, ref.landmarks, build.boxes, build.scores, build.landmarks)


def sample_agreement(spec: ModelSpec, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> float:
    """1 when a build's outputs for one input agree with the reference's, less when not."""
    if spec.task == "classification":
        name = spec.outputs[0]
        return float(np.argmax(got[name]) == np.argmax(want[name]))
    return match_detections(spec, got, want).recall


@dataclass
class Agreement:
    """A build's outputs against the reference's on the same inputs."""

    task: str
    samples: int
    outputs: dict[str, TensorError] = field(default_factory=dict)  # per output, worst case over the inputs
    top1_agreement: float | None = None  # classifiers
    detections: DetectionAgreement | None = None  # detector
    required: float = 1.0  # the headline at which it passes

    @property
    def max_abs_diff(self) -> float:
        return max((e.max_abs for e in self.outputs.values()), default=0.0)

    @property
    def headline(self) -> float | None:
        if self.task == "classification":
            return self.top1_agreement
        return self.detections.recall if self.detections is not None else None

    @property
    def passed(self) -> bool:
        return self.headline is None or self.headline >= self.required

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        """The held-out figures a build records (``BuildResult.fidelity``)."""
        d = self.detections
        return {"samples": self.samples, "max_abs_diff": self.max_abs_diff, "top1_agreement": self.top1_agreement,
                "detections_reference": d.reference if d else None, "detections_found": d.found if d else None,
                "detections_extra": d.build - d.found if d else None,
                "detection_recall": d.recall if d else None}


def compare_outputs(spec: ModelSpec, got: list[dict[str, np.ndarray]], want: list[dict[str, np.ndarray]], *,
                    required: float = 1.0) -> Agreement:
    """Each input's outputs (logical output names) against the reference's for the same input."""
    if len(got) != len(want):
        raise ValueError(f"{len(got)} build outputs against {len(want)} reference outputs")
    errors = {name: merge_errors([tensor_error(g[name], w[name]) for g, w in zip(got, want)]) for name in spec.outputs}
    result = Agreement(spec.task, len(got), errors, required=required)
    if spec.task == "classification":
        name = spec.outputs[0]
        result.top1_agreement = (top1_agreement(np.concatenate([np.asarray(g[name]) for g in got]),
                                                np.concatenate([np.asarray(w[name]) for w in want])) if got else None)
    else:
        result.detections = merge_detections([match_detections(spec, g, w) for g, w in zip(got, want)])
    return result


def compare(spec: ModelSpec, runner, tensors: list[np.ndarray], references: list[dict[str, np.ndarray]], *,
            required: float = 1.0) -> Agreement:
    """Run ``runner`` on ``tensors`` (the model's input) and compare with ``references``."""
    got = [runner.infer({spec.input.name: x}) for x in tensors]
    return compare_outputs(spec, got, references, required=required)


# -- the pipeline's faces (maskgate run --json objects, FaceResult.to_dict()) -----------------

def face_label(face: dict, what: str):
    """The mask or pose label of a face object ("mask" / "pose": a verdict dict or a label)."""
    value = face.get(what)
    return value.get("label") if isinstance(value, dict) else value


def _yaw_bin(face: dict) -> int | None:
    pose = face.get("pose")
    return pose.get("yaw_bin") if isinstance(pose, dict) else None


@dataclass
class FaceAgreement:
    """Another run's faces against the reference's, matched by box (``match_boxes``); the
    label counts are over the matched faces."""

    reference: int = 0  # the reference's faces
    other: int = 0  # the other run's
    found: int = 0  # reference faces the other run found
    same_mask: int = 0
    same_yaw: int = 0  # the same yaw class
    same_frontal: int = 0  # both frontal or both not (``frontal_classes``)
    ious: list = field(default_factory=list)  # per matched face
    nmes: list = field(default_factory=list)  # per matched face with landmarks in both
    score_diffs: list = field(default_factory=list)  # |score difference| per matched face
    missed: list = field(default_factory=list)  # indices of the reference's faces not found

    @property
    def extra(self) -> int:
        return self.other - self.found

    def add(self, part: FaceAgreement) -> None:
        """Count ``part`` (another image's) in; its ``missed`` indices are its own to report."""
        for name in ("reference", "other", "found", "same_mask", "same_yaw", "same_frontal"):
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.ious += part.ious
        self.nmes += part.nmes
        self.score_diffs += part.score_diffs


def compare_faces(reference: list[dict], other: list[dict], *, iou: float = DETECTION_IOU,
                  frontal_classes=()) -> FaceAgreement:
    """One image's faces of another run (a build, another machine) against the reference's.
    Faces are ``maskgate run --json`` objects: box, score, landmarks, mask, pose."""
    ref_boxes = np.array([f["box"] for f in reference], np.float64).reshape(-1, 4)
    boxes = np.array([f["box"] for f in other], np.float64).reshape(-1, 4)
    scores = [float(f.get("score", 1.0)) for f in other]
    pairs = match_boxes(ref_boxes, boxes, scores, iou=iou)
    result = FaceAgreement(reference=len(reference), other=len(other), found=len(pairs))
    matched = {i for i, _ in pairs}
    result.missed = [i for i in range(len(reference)) if i not in matched]
    frontal = set(frontal_classes)
    for i, j in pairs:
        a, b = reference[i], other[j]
        result.ious.append(float(iou_matrix(ref_boxes[i], boxes[j])[0, 0]))  # match_boxes keeps only the pairs
        result.same_mask += face_label(a, "mask") == face_label(b, "mask")
        result.same_yaw += face_label(a, "pose") == face_label(b, "pose")
        result.same_frontal += (_yaw_bin(a) in frontal) == (_yaw_bin(b) in frontal)
        if "score" in a and "score" in b:
            result.score_diffs.append(abs(float(a["score"]) - float(b["score"])))
        if a.get("landmarks") and b.get("landmarks"):
            result.nmes.append(landmark_nme(a["landmarks"], b["landmarks"], ref_boxes[i]))
    return result
