"""Pass/fail thresholds per precision and format (the table: ``maskgate.config.gates``;
overridable by the config file and by flags), and how a figure is held to one.

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
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..config.gates import DEFAULT_GATES, SAME_BUILDS, Gate, SameBuildsGate  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from ..compare import FaceAgreement

CONFIDENCE_Z = 1.96  # 95 %, two-sided


@dataclass(frozen=True)
class GateTable:
    """The gates in force: one per precision, and one per (precision, format) where the
    config sets one for a format."""

    precisions: dict[str, Gate]
    formats: dict[tuple[str, str], Gate] = field(default_factory=dict)
    same_builds: SameBuildsGate = SAME_BUILDS

    def gate(self, precision: str, fmt: str | None = None, *, what: str) -> Gate:
        """The gate of a bundle of ``precision`` and ``fmt``; a precision with none is refused
        (``what``: the bundle), not held to another precision's gates."""
        if precision not in self.precisions:
            from ..errors import BundleError

            raise BundleError(f"{what}: precision {precision!r} has no gates (known: {', '.join(self.precisions)}); "
                              "a bundle of another MaskGate version? rebuild it with 'maskgate build'")
        return self.formats.get((precision, fmt or ""), self.precisions[precision])

    def to_dict(self) -> dict[str, dict[str, float]]:
        """``{"int8": {...}, "int8.rknn": {...}}``: what a report states it gated with."""
        out = {precision: asdict(gate) for precision, gate in self.precisions.items()}
        out.update({f"{precision}.{fmt}": asdict(gate) for (precision, fmt), gate in self.formats.items()})
        return out


def configured_gates(overrides: dict[str, float | None] | None = None) -> GateTable:
    """The gates: the defaults, then ``[gates.<precision>]`` of the MaskGate config
    (``maskgate.config.active_config``), then ``[gates.<precision>.<format>]``, then
    ``overrides`` (flags, for every precision and format; None values ignored)."""
    from ..config import active_config

    tables = active_config().gates
    flags = overrides or {}

    def of(precision: str) -> Gate:
        given = tables.precisions.get(precision)
        return DEFAULT_GATES[precision].with_overrides(**(dataclasses.asdict(given) if given else {}))

    precisions = {p: of(p).with_overrides(**flags) for p in DEFAULT_GATES}
    formats = {(p, fmt): of(p).with_overrides(**dataclasses.asdict(given)).with_overrides(**flags)
               for (p, fmt), given in tables.formats.items()}
    return GateTable(precisions, formats, tables.same_builds)


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


def pipeline_gates(gate: Gate, faces: FaceAgreement, *, frontal: bool = False) -> list[GateResult]:
    """A pipeline's faces against the reference pipeline's (``maskgate.compare.compare_faces``)
    held to a precision's gate: the share of reference faces found to ``min_recall``, the
    share of found faces with the same mask label (and with ``frontal``, the same frontal
    reading, what a turnstile acts on) to ``min_top1``, each by its 95 % upper bound on the
    faces counted (a few dozen pictures are a sample)."""
    shares = [("min_recall", "faces found", faces.found, faces.reference),
              ("min_top1", "same mask label", faces.same_mask, faces.found)]
    if frontal:
        shares.append(("min_top1", "same frontal reading", faces.same_frontal, faces.found))
    out = []
    for name, what, count, total in shares:
        if not total:
            continue
        share = count / total
        (result,) = apply(gate, cosine=None, landmark_nme=None, top1=share if name == "min_top1" else None,
                          recall=share if name == "min_recall" else None, top1_samples=total, recall_samples=total)
        out.append(dataclasses.replace(result, name=f"{name} ({what})"))
    return out
