"""The ``--events`` file: one JSON line per event, appended whole or not at all. A disk that is
full, gone read-only or failing never stops the gate: the line that could not be written is
cut back off (no half line is left), counted, said once, and the next event tries again, so
writing resumes by itself once there is space."""
from __future__ import annotations

import json
import os
from pathlib import Path


class EventLog:
    def __init__(self, path: Path, *, say):
        """``say(message)``: where the one line about a failing file goes."""
        self.path = Path(path)
        self._say = say
        self.unwritten = 0  # events that could not be written, this run
        self.problem: str | None = None
        self._fd: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict) -> bool:
        """Append ``record`` as one line (flushed to the OS at once); False when it could not be."""
        line = (json.dumps(record) + "\n").encode()
        if self._fd is None:
            return self._failed(OSError("the events file is closed"))
        try:
            size = os.fstat(self._fd).st_size
            written = os.write(self._fd, line)
            if written != len(line):  # the disk filled in the middle of the line
                raise OSError(28, "No space left on device (a short write)")
        except OSError as exc:
            try:
                os.ftruncate(self._fd, size)  # no half line: a reader parses every line there is
            except (OSError, UnboundLocalError):
                pass
            return self._failed(exc)
        if self.problem is not None:
            self._say(f"{self.path}: writing events again ({self.unwritten} event(s) could not be written)")
            self.problem = None
        return True

    def _failed(self, exc: OSError) -> bool:
        self.unwritten += 1
        if self.problem is None:
            self.problem = f"{self.path}: cannot write events ({exc.strerror or exc})"
            self._say(f"{self.problem}; the gate decides on, the events are counted (and still go to the site)")
        return False

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
