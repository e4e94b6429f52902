"""How far a build is from the fp32 reference: basic figures computed at build time.

Classifiers: top-1 agreement with the reference on held-out aligned crops, and the
largest probability difference. Detector: the share of the reference's detections that
the build also finds (IoU >= 0.5, greedy), and the largest raw-output difference. The
inputs are identical for both sides (the same preprocessed tensors), so any difference
is the build's. The full checker (``maskgate check``) builds on these.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .metrics import match_greedy
from .postprocess import decode_detections
from .specs import ModelSpec

DETECTION_IOU = 0.5


@dataclass
class Fidelity:
    samples: int
    max_abs_diff: float
    top1_agreement: float | None = None  # classifiers
    detections_reference: int | None = None  # detector
    detections_found: int | None = None
    detections_extra: int | None = None  # the build's detections matching no reference one

    @property
    def detection_recall(self) -> float | None:
        if not self.detections_reference:
            return None if self.detections_reference is None else 1.0
        return self.detections_found / self.detections_reference

    @property
    def headline(self) -> float | None:
        return self.top1_agreement if self.top1_agreement is not None else self.detection_recall

    def to_dict(self) -> dict:
        d = asdict(self)
        d["detection_recall"] = self.detection_recall
        return d


def detections_of(outputs: dict[str, np.ndarray], spec: ModelSpec, *, score_threshold: float | None = None):
    loc, conf, landmarks = (np.asarray(outputs[n])[0] for n in spec.outputs)
    options = spec.detection
    if score_threshold is not None:
        import dataclasses

        options = dataclasses.replace(options, score_threshold=score_threshold)
    return decode_detections(loc, conf, landmarks, priors=spec.priors, canvas_size=spec.input.size, options=options)


def sample_agreement(spec: ModelSpec, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> float:
    """1 when a build's outputs for one input agree with the reference's, less when not."""
    if spec.task == "classification":
        name = spec.outputs[0]
        return float(np.argmax(outputs[name]) == np.argmax(reference[name]))
    wanted, found, _ = _match_detections(spec, outputs, reference)
    return found / wanted if wanted else 1.0


def _match_detections(spec: ModelSpec, outputs, reference) -> tuple[int, int, int]:
    """(reference detections, of those found by the build, the build's unmatched extras)."""
    ref, got = detections_of(reference, spec), detections_of(outputs, spec)
    found = int((match_greedy(ref.boxes, got.boxes, got.scores, DETECTION_IOU) >= 0).sum())
    return len(ref.boxes), found, len(got.boxes) - found


def compare(spec: ModelSpec, runner, tensors: list[np.ndarray], references: list[dict[str, np.ndarray]]) -> Fidelity:
    max_diff, agree = 0.0, 0
    ref_n = found = extra = 0
    for x, ref in zip(tensors, references):
        out = runner.infer({spec.input.name: x})
        for name in spec.outputs:
            max_diff = max(max_diff, float(np.max(np.abs(np.asarray(out[name], np.float32) - ref[name]))))
        if spec.task == "classification":
            agree += int(np.argmax(out[spec.outputs[0]]) == np.argmax(ref[spec.outputs[0]]))
        else:
            counts = _match_detections(spec, out, ref)
            ref_n, found, extra = ref_n + counts[0], found + counts[1], extra + counts[2]
    n = len(tensors)
    if spec.task == "classification":
        return Fidelity(samples=n, max_abs_diff=max_diff, top1_agreement=agree / n if n else None)
    return Fidelity(samples=n, max_abs_diff=max_diff, detections_reference=ref_n, detections_found=found,
                    detections_extra=extra)
