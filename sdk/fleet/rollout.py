"""Who may take a release: a share of the fleet (stable hashing of the camera id), named
groups, or nobody (halted). The plan (``rollout.json``, a signed target of the repository)
holds one entry per release, in the order they were released.

A camera's place in the fleet is ``sha256(release + camera id)`` read as a number in
[0, 100): raising a release's percent from 10 to 50 keeps the first 10 % on it and adds
others; each release draws its own canaries, so the same cameras do not take every risk.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace

from ..errors import ReleaseError

ROLLOUT_TARGET = "rollout.json"


@dataclass(frozen=True)
class ReleasePlan:
    version: str
    sequence: int  # the order of release: a camera takes the newest it is admitted to
    channel: str
    percent: float = 0.0
    groups: tuple[str, ...] = ()  # cameras in these groups take it whatever the percent
    halted: bool = False
    halt_reason: str = ""
    max_failures: int = 2  # more cameras than this failing it halts it (the agents count, fleet status)

    def admits(self, camera: str, *, channel: str, groups: tuple[str, ...] = ()) -> bool:
        if self.halted or channel != self.channel:
            return False
        if set(groups) & set(self.groups):
            return True
        return place(self.version, camera) < self.percent

    def to_dict(self) -> dict:
        return {**asdict(self), "groups": list(self.groups)}


def place(version: str, camera: str) -> float:
    """The camera's place in [0, 100) for this release (stable across runs and machines)."""
    digest = hashlib.sha256(f"maskgate-rollout\n{version}\n{camera}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


@dataclass(frozen=True)
class RolloutPlan:
    releases: tuple[ReleasePlan, ...] = field(default_factory=tuple)

    def get(self, version: str) -> ReleasePlan | None:
        return next((r for r in self.releases if r.version == version), None)

    def with_release(self, plan: ReleasePlan) -> RolloutPlan:
        kept = tuple(r for r in self.releases if r.version != plan.version)
        return RolloutPlan(tuple(sorted((*kept, plan), key=lambda r: r.sequence)))

    def next_sequence(self) -> int:
        return max((r.sequence for r in self.releases), default=0) + 1

    def changed(self, version: str, *, percent: float | None = None, groups: tuple[str, ...] | None = None,
                halt: bool | None = None, reason: str = "", max_failures: int | None = None) -> RolloutPlan:
        plan = self.get(version)
        if plan is None:
            known = ", ".join(r.version for r in self.releases) or "none"
            raise ReleaseError(f"no release {version!r} in this repository (released: {known})")
        if percent is not None and not 0 <= percent <= 100:
            raise ReleaseError(f"--percent {percent:g}: a share of the fleet between 0 and 100")
        if percent is not None:
            plan = replace(plan, percent=float(percent))
        if groups is not None:
            plan = replace(plan, groups=tuple(sorted(set(plan.groups) | set(groups))))
        if max_failures is not None:
            plan = replace(plan, max_failures=max_failures)
        if halt is not None:
            plan = replace(plan, halted=halt, halt_reason=reason if halt else "")
        return self.with_release(plan)

    def chosen_for(self, camera: str, *, channel: str, groups: tuple[str, ...] = (),
                   refused: frozenset[str] = frozenset()) -> ReleasePlan | None:
        """The newest release this camera is admitted to and has not refused (marked bad)."""
        admitted = [r for r in self.releases if r.version not in refused
                    and r.admits(camera, channel=channel, groups=groups)]
        return max(admitted, key=lambda r: r.sequence, default=None)

    def to_dict(self) -> dict:
        return {"releases": [r.to_dict() for r in self.releases]}

    @classmethod
    def from_dict(cls, data: dict, *, source: str = ROLLOUT_TARGET) -> RolloutPlan:
        try:
            return cls(tuple(ReleasePlan(**{**r, "groups": tuple(r.get("groups") or ())})
                             for r in data["releases"]))
        except (KeyError, TypeError) as exc:
            raise ReleaseError(f"{source}: not a MaskGate rollout plan ({type(exc).__name__}: {exc})") from exc
