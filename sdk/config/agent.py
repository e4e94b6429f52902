"""``[agent]``: the camera's release agent (``maskgate agent``), and ``[agent.probation]``:
what a newly activated set must show before the agent keeps it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

_RELATIVE = {"relative_to_file": True}


@dataclass(frozen=True)
class ProbationSettings:
    """A set that fails any of these within ``minutes`` of its activation is rolled back."""

    minutes: float = 10.0
    min_fps: float = 1.0  # the app's frame rate, averaged over each health period (0: not watched)
    max_error_events: int = 3  # 'error' events the app writes (a source, a model that fails)
    max_cannot_check_share: float = 0.5  # of the passages decided while on probation
    max_restarts: int = 2  # the app started again (another pid in its heartbeat): a crash loop
    heartbeat_timeout_s: float = 30.0  # no heartbeat for this long: the app is down or stuck
    pickup_s: float = 15.0  # the app runs the new slot within this long of the switch

    def __post_init__(self):
        if self.minutes < 0 or self.heartbeat_timeout_s <= 0 or self.pickup_s <= 0:
            raise ValueError("minutes must be >= 0, heartbeat_timeout_s and pickup_s > 0")
        if self.min_fps < 0 or self.max_error_events < 0 or self.max_restarts < 0:
            raise ValueError(f"min_fps, max_error_events and max_restarts must be >= 0, got {self.min_fps}, "
                             f"{self.max_error_events} and {self.max_restarts}")
        if not 0 <= self.max_cannot_check_share <= 1:
            raise ValueError(f"max_cannot_check_share is a share between 0 and 1, got {self.max_cannot_check_share}")


@dataclass(frozen=True)
class AgentSettings:
    repo: str | None = None  # the release repository's URL (or --repo)
    hawkbit: str | None = None  # a hawkBit / goosebit server's URL: releases come as .swu deployments (or --hawkbit)
    hawkbit_tenant: str = "DEFAULT"
    hawkbit_token_env: str | None = None  # the variable holding this camera's target token, where the server asks one
    state: Path = field(default=Path("maskgate-agent"), metadata=_RELATIVE)  # slots, pointer, trusted metadata
    channel: str = "stable"  # stable | canary
    groups: tuple[str, ...] = ()  # named groups this camera is in ('maskgate rollout V --group lobby')
    soc: str | None = None  # this camera's chip (rk3568, qcs6490, ...); default: the device tree's
    poll_s: float = 60.0
    max_backoff_s: float = 600.0  # a repository that cannot be reached is retried after 5, 10, 20 ... s up to this
    check_runs: int = 10  # timed runs per bundle in the on-camera check
    heartbeat: Path | None = field(default=None, metadata=_RELATIVE)  # the app's ([turnstile] heartbeat)
    probation: ProbationSettings = field(default_factory=ProbationSettings)

    def __post_init__(self):
        if self.channel not in ("stable", "canary"):
            raise ValueError(f"channel must be stable or canary, got {self.channel!r}")
        if self.repo and self.hawkbit:
            raise ValueError("give repo (a release repository) or hawkbit (a deployment server), not both")
        if self.poll_s <= 0 or self.max_backoff_s <= 0 or self.check_runs < 1:
            raise ValueError("poll_s and max_backoff_s must be > 0, check_runs >= 1")
