"""Every pass/fail threshold in MaskGate, in one table: the least a build must reach against its
fp32 reference, per precision (``DEFAULT_GATES``; the config file's ``[gates.<precision>]``,
then ``[gates.<precision>.<format>]``, override it), and the least two machines running the
same builds must share (``SAME_BUILDS``, ``[gates.same_builds]``: ``maskgate agree``).

The gates are per task by their fields: ``min_cosine`` for every output, ``min_top1`` for
the classifiers, ``min_recall`` and ``max_landmark_nme`` for the detector. A whole
pipeline's faces against the reference pipeline's are held to the same fields: the share
of reference faces found to ``min_recall``, the share with the same mask label to
``min_top1`` (``maskgate.check.gates.pipeline_gates``). The checker, ``maskgate.check.gates``,
applies them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace


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

@dataclass(frozen=True)
class GateOverrides:
    """``[gates.<precision>]``: any of the Gate's thresholds, the others from DEFAULT_GATES."""

    min_cosine: float | None = None
    min_top1: float | None = None
    min_recall: float | None = None
    max_landmark_nme: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_cosine", "min_top1", "min_recall"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} is a share between 0 and 1, got {value}")
        if self.max_landmark_nme is not None and self.max_landmark_nme < 0:
            raise ValueError(f"max_landmark_nme must be >= 0, got {self.max_landmark_nme}")




@dataclass(frozen=True)
class SameBuildsGate:
    """The same builds on two machines (a camera against the workstation): kernels and
    rounding differ, the models do not, so the faces agree more closely than any build
    agrees with fp32."""

    min_found: float = 0.99  # share of the reference machine's faces found (box IoU >= 0.5)
    min_same_mask: float = 0.995  # share of matched faces with the same mask label

    def __post_init__(self) -> None:
        for name in ("min_found", "min_same_mask"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a share between 0 and 1, got {getattr(self, name)}")


SAME_BUILDS = SameBuildsGate()


@dataclass(frozen=True)
class GateSettings:
    """The config file's ``[gates]``: ``precisions`` from ``[gates.int8]``, ``formats`` from
    ``[gates.int8.rknn]`` (keyed (precision, format)), ``same_builds`` from ``[gates.same_builds]``."""

    precisions: dict[str, GateOverrides] = field(default_factory=dict)
    formats: dict[tuple[str, str], GateOverrides] = field(default_factory=dict)
    same_builds: SameBuildsGate = SAME_BUILDS


# one threshold of each name: a Gate field with no override (or one the Gate lacks) is a mistake here
assert [f.name for f in dataclasses.fields(GateOverrides)] == [f.name for f in dataclasses.fields(Gate)]
