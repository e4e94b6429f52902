"""What has gone wrong with a spool's file, said once per problem, and what is done about it:
the spool itself (``maskgate.publish.spool``) keeps deciding events' fate; this keeps the
account a site reads in health (``problem``, ``unspooled``, ``set_aside``, ``durable``)."""
from __future__ import annotations

import datetime
from pathlib import Path

_SIDE_FILES = ("-wal", "-shm", "-journal")


def kind(exc: BaseException) -> str:
    """damaged | full | read-only | io | other, from SQLite's error code (3.11+) or its message."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB" or "malformed" in text or "not a database" in text:
        return "damaged"
    if name == "SQLITE_FULL" or "disk is full" in text or "no space" in text:
        return "full"
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return "read-only"
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in text:
        return "io"
    return "other"


def damaged(exc: BaseException) -> bool:
    return kind(exc) == "damaged"


def set_aside(path: Path) -> Path:
    """Move a damaged spool file (and its WAL) aside as ``spool.damaged-<UTC time>.sqlite3``,
    kept for inspection; returns where it went."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}")
    for suffix in ("", *_SIDE_FILES):
        source = Path(f"{path}{suffix}")
        if source.exists():
            source.rename(f"{target}{suffix}")
    return target


class SpoolHealth:
    def __init__(self, path: Path, *, log=None):
        self.path = path
        self._log = log or (lambda message: None)
        self.problem: str | None = None  # what is wrong now; None once a write succeeds again
        self.durable = True
        self.unspooled = 0  # events that could not be stored, this run
        self.set_aside_files: list[str] = []
        self._said: str | None = None

    def _say(self, message: str) -> None:
        if message != self._said:
            self._said = message
            self._log(f"publish: {message}")

    def failed(self, what: str, exc: BaseException) -> None:
        why = {"full": "the disk is full", "read-only": "the spool is read-only", "io": "a disk I/O error"}.get(
            kind(exc), f"{type(exc).__name__}: {exc}")
        self.problem = f"{self.path}: {what} failed ({why}); the gate decides on, these events are not kept"
        self._say(f"{self.problem}; trying again with every event")

    def wrote(self) -> None:
        if self.problem is not None and self.durable:
            self._log(f"publish: {self.path}: writing again ({self.unspooled} event(s) could not be kept)")
            self.problem, self._said = None, None

    def set_aside(self, where: Path, exc: BaseException) -> None:
        self.set_aside_files.append(str(where))
        self.problem = (f"{self.path} was damaged ({exc}): set aside as {where.name} (its events kept there, not "
                        "sent) and a new spool started")
        self._log(f"publish: {self.problem}")

    def in_memory(self, exc: BaseException) -> None:
        self.durable = False
        self.problem = (f"{self.path}: no spool file can be kept here ({exc}); events are spooled in memory only, "
                        "lost if the camera restarts before the site has them")
        self._log(f"publish: {self.problem}")

    def on_disk(self, moved: int) -> None:
        self.durable, self.problem, self._said = True, None, None
        self._log(f"publish: {self.path}: the spool is on disk again ({moved} event(s) moved from memory)")

    def fields(self) -> dict:
        return {"unspooled": self.unspooled, "problem": self.problem, "durable": self.durable,
                "set_aside": tuple(self.set_aside_files)}
