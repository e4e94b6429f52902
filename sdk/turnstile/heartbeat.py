"""The app's heartbeat file: what a supervisor (the release agent's probation) reads of it.

Rewritten whole (a hidden partial file renamed over it) every health period. ``pid`` and
``started_unix`` tell a restart from a long run; ``builds`` and ``release`` the set of models
it runs now; ``errors`` and ``decisions`` count from the app's start. Writing it never stops
the gate: a failure is said once.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .follow import slot_release

STARTED = time.time()


class Heartbeat:
    def __init__(self, path: Path, *, say):
        self.path = Path(path)
        self._say = say
        self._failed = False

    def write(self, app, fields: dict) -> None:
        builds = app.running_builds
        record = {"pid": os.getpid(), "started_unix": round(STARTED, 3), "at_unix": round(time.time(), 3),
                  "builds": None if builds is None else str(builds),
                  "release": None if builds is None else slot_release(builds),
                  "models_problem": app.models_problem(),
                  "status": fields["status"], "fps": fields["fps"], "frames": fields["frames"],
                  "dropped": fields["dropped"], "detector_skipped": fields["detector_skipped"],
                  "verdicts_reused": fields["verdicts_reused"],
                  "passages": app.summary.passages, "decisions": dict(app.summary.decisions),
                  "errors": len(app.summary.errors), "state": fields["state"]}
        tmp = self.path.with_name(f".{self.path.name}.partial")
        try:
            tmp.write_text(json.dumps(record) + "\n")
            tmp.replace(self.path)
            self._failed = False
        except OSError as exc:
            if not self._failed:
                self._say(f"heartbeat: cannot write {self.path} ({exc.strerror or exc}); the gate goes on")
            self._failed = True


def read_heartbeat(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
