"""Pass/fail thresholds per precision (defaults below, overridable per call, flag or config)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Gate:
    """The least a build of one precision must reach against its fp32 reference."""

    min_cosine: float  # every output, every golden sample
    min_top1: float  # classifiers: top-1 agreement
    min_recall: float  # detector: share of the reference detections found (IoU >= 0.5)
    max_landmark_nme: float  # detector: landmark error over inter-ocular distance, matched faces

    def with_overrides(self, **values) -> Gate:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


DEFAULT_GATES = {
    "fp32": Gate(min_cosine=0.99999, min_top1=1.0, min_recall=1.0, max_landmark_nme=0.01),
    "fp16": Gate(min_cosine=0.999, min_top1=0.99, min_recall=0.98, max_landmark_nme=0.03),
    "int8": Gate(min_cosine=0.98, min_top1=0.99, min_recall=0.98, max_landmark_nme=0.08),
}


@dataclass
class GateResult:
    name: str
    value: float | None
    threshold: float
    passed: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.6g}"
        return f"{self.name} {shown} ({'>=' if self.name.startswith('min') else '<='} {self.threshold:g})"


def apply(gate: Gate, *, cosine: float | None, top1: float | None, recall: float | None,
          landmark_nme: float | None) -> list[GateResult]:
    """The gates that apply to these figures (None: not measured for this model)."""
    out = []
    for name, value, threshold, lower_is_better in (
        ("min_cosine", cosine, gate.min_cosine, False), ("min_top1", top1, gate.min_top1, False),
        ("min_recall", recall, gate.min_recall, False), ("max_landmark_nme", landmark_nme, gate.max_landmark_nme, True),
    ):
        if value is None:
            continue
        passed = value <= threshold if lower_is_better else value >= threshold
        out.append(GateResult(name, float(value), threshold, bool(passed)))
    return out
