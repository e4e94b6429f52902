"""The turnstile's settings: ``[turnstile]`` and its sub-tables, under flags that override them.

    [turnstile]
    source = "rtsp://127.0.0.1:8554/gate"   # or give SOURCE on the command line
    builds = "builds"
    roi = [160, 60, 320, 400]        # x, y, width, height of the gate area
    events = "events.jsonl"
    [turnstile.rules]
    frontal_yaw_classes = [1, 2, 3, 4]
    min_mask_prob = 0.5
    window = 5
    [turnstile.stream]
    stall_s = 3.0                    # a live source silent this long is reopened, the gate shut
    [turnstile.publish]              # see maskgate.config.publish
    targets = ["mqtt://broker.site:1883"]

Paths in ``[turnstile]`` are taken as written (relative to the working folder), as flags are.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .publish import PublishConfig, read_publish_table

#: where ``maskgate build`` writes and ``run`` / ``turnstile`` look by default: not ./build,
#: which setuptools and pip fill with build/lib and build/bdist.* on ``pip install .``
DEFAULT_BUILDS = Path("builds")


@dataclass(frozen=True)
class GateRules:
    """What the turnstile asks of the person at the gate (``[turnstile.rules]``)."""

    # Yaw classes (of the six) frontal enough: within +-40 degrees. Empty: the site does not
    # check the head pose (and runs without a pose model); otherwise a face without a pose
    # verdict is refused.
    frontal_yaw_classes: tuple[int, ...] = (1, 2, 3, 4)
    min_mask_prob: float = 0.5  # P(mask) needed to open
    min_face_px: float = 48.0  # narrower faces are too far from the gate to count
    window: int = 5  # frames the decision is smoothed over
    gap_frames: int = 5  # frames without a face that end a passage

    def __post_init__(self):
        if self.window < 1 or self.gap_frames < 1:
            raise ValueError(f"window and gap_frames must be at least 1, got {self.window} and {self.gap_frames}")
        if not 0.0 < self.min_mask_prob <= 1.0:  # NaN fails this too; 0 would open for everyone
            raise ValueError(f"min_mask_prob must be in (0, 1], got {self.min_mask_prob}")
        if not math.isfinite(self.min_face_px) or self.min_face_px < 0:
            raise ValueError(f"min_face_px must be a width in pixels >= 0, got {self.min_face_px}")
        if any(not 0 <= k <= 5 for k in self.frontal_yaw_classes):
            raise ValueError(f"frontal_yaw_classes are yaw classes 0-5, got {list(self.frontal_yaw_classes)}")


@dataclass(frozen=True)
class ReuseRules:
    """How far the turnstile trusts what it saw a frame ago (``[turnstile.reuse_rules]``;
    ``[turnstile] reuse = false`` turns reuse off): maskgate.turnstile.reuse."""

    settle_frames: int = 3  # a track's verdicts are reused once this many decisions in a row agree
    reclassify_every: int = 30  # ... and classified again at least every this many frames
    full_every: int = 10  # a full detection at least every this many frames while the scene is still
    # no cell of the 32x24 grey frame changed by more than this (0-255): nothing moved
    still_threshold: float = 4.0
    still_with_people: bool = True  # ... also while people are in view; false: only after a frame with nobody
    face_threshold: float = 6.0  # ... of the 16x16 grey face box: the same face, as it was classified
    min_iou: float = 0.5  # the box overlaps the track's this much: the same person

    def __post_init__(self):
        if self.settle_frames < 1 or self.reclassify_every < 1 or self.full_every < 1:
            raise ValueError("settle_frames, reclassify_every and full_every must be at least 1")
        if self.still_threshold < 0 or self.face_threshold < 0:
            raise ValueError("still_threshold and face_threshold are differences >= 0")
        if not 0 < self.min_iou <= 1:
            raise ValueError(f"min_iou is an overlap in (0, 1], got {self.min_iou}")


@dataclass(frozen=True)
class StreamOptions:
    """How a live source is read (``[turnstile.stream]``)."""

    reconnect: bool | None = None  # None: live sources reconnect, files do not
    first_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_reconnects: int | None = None  # give up after this many failed in a row (None: keep trying until stopped)
    # A live source that sends no frame for this long is stalled: the gate is shut (no face is
    # judged on an old frame), the site is told, and the source is reopened (a reconnect).
    stall_s: float = 3.0
    # FFmpeg's decoding threads for a video file or a URL (None: one per core). One thread took
    # 29 % less CPU per 640x480 MJPEG frame here than FFmpeg's choice (2 cores), CPU the
    # networks need; raise it for a high-resolution stream that one core cannot decode in time.
    decode_threads: int | None = 1

    def __post_init__(self):
        if self.decode_threads is not None and self.decode_threads < 1:
            raise ValueError(f"decode_threads must be >= 1 (or left out: FFmpeg's choice), got {self.decode_threads}")
        if self.first_backoff_s <= 0 or self.max_backoff_s < self.first_backoff_s:
            raise ValueError("first_backoff_s must be > 0 and max_backoff_s >= first_backoff_s")
        if self.stall_s <= 0:
            raise ValueError(f"stall_s must be > 0, got {self.stall_s}")
        if self.max_reconnects is not None and self.max_reconnects < 0:
            raise ValueError(f"max_reconnects must be >= 0, got {self.max_reconnects}")


_TRUST = "it belongs in [trust]: the one place that says which bundles may run"


@dataclass(frozen=True)
class TurnstileConfig:
    """The turnstile app's settings: ``[turnstile]``, then flags (``maskgate.turnstile.load_config``)."""

    source: str | None = None  # camera index, video file, rtsp:// or http:// URL
    builds: Path = DEFAULT_BUILDS
    prefer: str | None = None  # device preference (npu,gpu,cpu by default)
    threads: int | None = None
    roi: tuple[int, int, int, int] | None = None  # x, y, width, height of the gate area
    rules: GateRules = field(default_factory=GateRules)
    stream: StreamOptions = field(default_factory=StreamOptions)
    # Frames that tell the gate nothing new are not paid in full (the same decisions: reuse.py)
    reuse: bool = True
    reuse_rules: ReuseRules = field(default_factory=ReuseRules)
    events: Path | None = None
    video_out: Path | None = None
    health_every_s: float = 10.0
    # A JSON file rewritten every health period (pid, the release running, fps, errors): the
    # release agent's probation reads it ([agent] heartbeat names the same file).
    heartbeat: Path | None = None
    max_frames: int | None = None
    # Which bundles may run: [trust] of the config file, overridden by these flags.
    verify_key: Path | None = field(default=None, metadata={"flag_only": _TRUST})
    allow_failed_builds: bool | None = field(default=None, metadata={"flag_only": _TRUST})
    profile: str = "turnstile"  # the detector canvas wanted (maskgate.profiles); another is taken, logged, if absent
    # where events go ([turnstile.publish], --publish); values it cannot use are its .problem
    publish: PublishConfig | None = field(default=None, metadata={"reader": read_publish_table})
    metrics_port: int | None = None  # serve Prometheus metrics here (0: any free port)
    metrics_address: str = "127.0.0.1"
    # The environment variable holding the token a scraper must send (Authorization: Bearer
    # TOKEN, or basic auth with TOKEN as the password); secrets never sit in the file.
    metrics_token_env: str | None = None
    metrics_insecure: bool = False  # serve metrics on a non-loopback address without a token

    def __post_init__(self):
        from ..profiles import get_profile

        get_profile(self.profile)  # an unknown name fails here, naming the known ones
        if self.roi is not None and (len(self.roi) != 4 or min(self.roi[:2]) < 0 or min(self.roi[2:]) <= 0):
            raise ValueError(f"roi must be x, y, width, height (x, y >= 0, a positive size), got {list(self.roi)}")
        if self.health_every_s <= 0:
            raise ValueError(f"health_every_s must be > 0, got {self.health_every_s}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be a port number (0 for any free one), got {self.metrics_port}")
        if (self.metrics_port is not None and self.metrics_token_env is None and not self.metrics_insecure
                and not is_loopback(self.metrics_address)):
            raise ValueError(f"metrics on {self.metrics_address} (not a loopback address) need a token: set "
                             "metrics_token_env to the variable holding it, or metrics_insecure (--metrics-insecure) "
                             "to serve them to anyone on the network")


def is_loopback(address: str) -> bool:
    """Whether ``address`` is this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"
