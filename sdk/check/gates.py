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

import dataclasses
import math
from dataclasses import asdict, dataclass

from ..config.gates import DEFAULT_GATES, Gate  # noqa: F401  (re-exported: the checker's gates)

CONFIDENCE_Z = 1.96  # 95 %, two-sided


def configured_gates(overrides: dict | None = None) -> dict[str, Gate]:
    """The gate of each precision: the defaults, then ``[gates.<precision>]`` of the MaskGate
    config (``maskgate.config.active_config``), then ``overrides`` (flags, for every precision;
    None values ignored)."""
    from ..config import active_config

    tables = active_config().gates
    return {precision: gate.with_overrides(**dataclasses.asdict(tables[precision]) if precision in tables else {})
            .with_overrides(**(overrides or {})) for precision, gate in DEFAULT_GATES.items()}


def gate_for(gates: dict[str, Gate], precision: str, *, what: str) -> Gate:
    """The gate of ``precision``; a precision with none is refused (``what``: the bundle), not
    held to another precision's gates."""
    try:
        return gates[precision]
    except KeyError:
        from ..errors import BundleError

        raise BundleError(f"{what}: precision {precision!r} has no gates (known: {', '.join(gates)}); a bundle of "
                          "another MaskGate version? rebuild it with 'maskgate build'") from None


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
