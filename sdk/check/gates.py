"""Pass/fail thresholds per precision (defaults below, overridable per call, flag or config).

Shares (top-1 agreement, detection recall) are measured on a finite sample: a golden set
of 32 crops or a few frames, a held-out set of some hundreds. A share gate therefore fails
when the sample shows the build is below the threshold: when even the upper end of the
95 % Wilson interval of the observed share is under it. One flip in 32 crops (96.9 %,
upper bound 99.4 %) passes a 99 % gate; two (93.8 %, upper 98.3 %) fail it; a threshold
of 1.0 (fp32) still allows no miss at all, and a large sample converges on the plain
threshold. Without a sample size the observed value is compared as it is: that is how
``maskgate build`` gates its held-out figures, the build's real accuracy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

CONFIDENCE_Z = 1.96  # 95 %, two-sided


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
    # int8 landmarks: 0.036-0.064 over every shipped held-out frame, up to 0.088 on the golden
    # frames (the most crowded scenes, 20-40 px faces); 0.1 of the eye distance moves the
    # aligned crop's roll by a few degrees at most.
    "int8": Gate(min_cosine=0.98, min_top1=0.99, min_recall=0.98, max_landmark_nme=0.1),
}


def configured_gates(overrides: dict | None = None) -> dict[str, Gate]:
    """The gate of each precision: the defaults, then ``[gates.<precision>]`` tables of the
    MaskGate config file (``MASKGATE_CONFIG`` or ./maskgate.toml), then ``overrides`` (flags,
    for every precision; None values ignored)."""
    from ..config import read_config
    from ..errors import InputError

    path, config = read_config()
    tables = config.get("gates", {})
    fields = set(Gate.__dataclass_fields__)
    if not isinstance(tables, dict) or not set(tables) <= set(DEFAULT_GATES):
        raise InputError(f"{path}: [gates] holds one table per precision ({', '.join(DEFAULT_GATES)}), "
                         f"e.g. [gates.int8] min_top1 = 0.98")
    out = {}
    for precision, gate in DEFAULT_GATES.items():
        table = tables.get(precision, {})
        if not isinstance(table, dict) or not set(table) <= fields or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in table.values()):
            raise InputError(f"{path}: [gates.{precision}] may set numbers for {', '.join(sorted(fields))}; "
                             f"got {table!r}")
        out[precision] = gate.with_overrides(**{k: float(v) for k, v in table.items()}).with_overrides(
            **(overrides or {})
        )
    return out


def wilson_upper(share: float, n: int, *, z: float = CONFIDENCE_Z) -> float:
    """Upper end of the Wilson score interval of a share observed on n samples."""
    if n <= 0:
        return 1.0
    if share >= 1.0:
        return 1.0
    denominator = 1 + z * z / n
    centre = share + z * z / (2 * n)
    margin = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return min(1.0, (centre + margin) / denominator)


@dataclass
class GateResult:
    name: str
    value: float | None
    threshold: float
    passed: bool
    samples: int | None = None  # shares: the sample size behind the value
    upper_bound: float | None = None  # shares: the 95 % Wilson upper bound the threshold is held against

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        shown = "n/a" if self.value is None else f"{self.value:.6g}"
        of = f" of {self.samples}" if self.samples else ""
        bound = (f", 95 % upper bound {self.upper_bound:.4g}" if self.upper_bound is not None and self.threshold < 1
                 else "")
        return f"{self.name} {shown}{of} ({'>=' if self.name.startswith('min') else '<='} {self.threshold:g}{bound})"


def apply(gate: Gate, *, cosine: float | None, top1: float | None, recall: float | None,
          landmark_nme: float | None, top1_samples: int | None = None,
          recall_samples: int | None = None) -> list[GateResult]:
    """The gates that apply to these figures (None: not measured for this model);
    ``*_samples``: how many samples a share was measured on (see the module docstring)."""
    out = []
    for name, value, threshold, lower_is_better, samples in (
        ("min_cosine", cosine, gate.min_cosine, False, None), ("min_top1", top1, gate.min_top1, False, top1_samples),
        ("min_recall", recall, gate.min_recall, False, recall_samples),
        ("max_landmark_nme", landmark_nme, gate.max_landmark_nme, True, None),
    ):
        if value is None:
            continue
        bound = wilson_upper(float(value), samples) if samples else None
        if lower_is_better:
            passed = value <= threshold
        elif threshold >= 1.0 or bound is None:
            passed = value >= threshold  # a share of 1.0 is asked for exactly: no miss allowed
        else:
            passed = bound >= threshold
        out.append(GateResult(name, float(value), threshold, bool(passed), samples, bound))
    return out
