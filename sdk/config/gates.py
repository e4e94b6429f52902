"""The least a build must reach against its fp32 reference, per precision: the defaults of the
config file's ``[gates.<precision>]`` tables (the checker, ``maskgate.check.gates``, applies them)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace


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


# one threshold of each name: a Gate field with no override (or one the Gate lacks) is a mistake here
assert [f.name for f in dataclasses.fields(GateOverrides)] == [f.name for f in dataclasses.fields(Gate)]
