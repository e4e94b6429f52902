"""Probation: what a newly activated set must show in the app's heartbeat before it is kept.

The agent reads the heartbeat file the turnstile rewrites every health period
(``maskgate.turnstile.heartbeat``) and compares it with what it saw at the switch. The set
fails, and is rolled back, when the app
- does not run it within ``pickup_s`` (it failed to open it: the app says why),
- stops reporting for ``heartbeat_timeout_s`` (crashed, killed, stuck),
- started again more than ``max_restarts`` times (a crash loop),
- wrote more than ``max_error_events`` error events,
- decided more than ``max_cannot_check_share`` of at least 5 passages CANNOT_CHECK,
- ran below ``min_fps`` on three health periods in a row while its camera sent frames.
It passes when ``minutes`` have gone by with none of that. A camera that stalls is not the
set's fault: those periods neither fail it nor count against the fps floor.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..config.agent import ProbationSettings

MIN_PASSAGES = 5
LOW_FPS_PERIODS = 3


@dataclass
class ProbationWatch:
    release: str
    slot_path: str
    since_unix: float
    settings: ProbationSettings
    baseline: dict | None = None  # the heartbeat at the switch (its pid, errors, decisions)
    lives: list = field(default_factory=list)  # (pid, started_unix) of each app run seen since
    low_fps: int = 0
    errors: dict = field(default_factory=dict)  # "pid:started" -> error events that run wrote since the switch

    def to_dict(self) -> dict:
        return {"release": self.release, "slot_path": self.slot_path, "since_unix": self.since_unix,
                "baseline": self.baseline, "lives": self.lives, "low_fps": self.low_fps,
                "errors": self.errors}

    @classmethod
    def from_dict(cls, data: dict, settings: ProbationSettings) -> ProbationWatch:
        return cls(release=data["release"], slot_path=data["slot_path"], since_unix=data["since_unix"],
                   settings=settings, baseline=data.get("baseline"), lives=[list(x) for x in data.get("lives", [])],
                   low_fps=data.get("low_fps", 0), errors=dict(data.get("errors") or {}))

    def _base(self, key: str, beat: dict):
        """The baseline value for ``key`` when ``beat`` is the same app run as the baseline, else 0."""
        base = self.baseline or {}
        same = base.get("pid") == beat.get("pid") and base.get("started_unix") == beat.get("started_unix")
        return base.get(key) if same else None

    def verdict(self, beat: dict | None, *, now: float | None = None) -> tuple[str, str]:
        """("fail", why) | ("pass", summary) | ("wait", what is still being watched)."""
        s = self.settings
        now = time.time() if now is None else now
        elapsed = now - self.since_unix
        if beat is None or now - float(beat.get("at_unix", 0)) > s.heartbeat_timeout_s:
            last = "never" if beat is None else f"{now - float(beat.get('at_unix', 0)):.0f} s ago"
            if elapsed > s.heartbeat_timeout_s:
                return "fail", f"the app has not reported for {s.heartbeat_timeout_s:g} s (last heartbeat {last}): " \
                               "down, crash-looping or stuck"
            return "wait", "waiting for the app's heartbeat"
        life = [beat.get("pid"), beat.get("started_unix")]
        if life not in self.lives:
            self.lives.append(life)
        restarts = len(self.lives) - 1  # the first run seen since the switch is not a restart
        if restarts > s.max_restarts:
            return "fail", f"the app started {restarts} times since the switch (a crash loop)"
        if beat.get("builds") != self.slot_path:
            if beat.get("models_problem"):
                return "fail", f"the app could not open the new set: {beat['models_problem']}"
            if elapsed > s.pickup_s:
                return "fail", f"the app still runs {beat.get('builds')} {elapsed:.0f} s after the switch"
            return "wait", "waiting for the app to take the new set"
        self.errors[f"{life[0]}:{life[1]}"] = int(beat.get("errors") or 0) - (self._base("errors", beat) or 0)
        new_errors = sum(self.errors.values())
        if new_errors > s.max_error_events:
            return "fail", f"{new_errors} error events since the switch (at most {s.max_error_events})"
        decisions = dict(beat.get("decisions") or {})
        base = self._base("decisions", beat) or {}
        passages = sum(decisions.values()) - sum(base.values())
        cannot = decisions.get("CANNOT_CHECK", 0) - base.get("CANNOT_CHECK", 0)
        if passages >= MIN_PASSAGES and cannot / passages > s.max_cannot_check_share:
            return "fail", f"{cannot} of {passages} passages CANNOT_CHECK since the switch"
        if beat.get("status") == "online" and s.min_fps > 0:
            self.low_fps = self.low_fps + 1 if float(beat.get("fps") or 0) < s.min_fps else 0
            if self.low_fps >= LOW_FPS_PERIODS:
                return "fail", f"the app ran below {s.min_fps:g} fps for {self.low_fps} health periods"
        if elapsed >= s.minutes * 60:
            base_dropped = self._base("dropped", beat)
            dropped = "" if base_dropped is None or "dropped" not in beat else \
                f", {int(beat['dropped']) - int(base_dropped)} frames dropped"
            return "pass", f"{elapsed:.0f} s on probation: {passages} passages, {new_errors} errors, " \
                           f"{restarts} restarts{dropped}"
        return "wait", f"on probation, {s.minutes * 60 - elapsed:.0f} s to go"
