"""The camera's durable event spool: every event is on disk before any target sees it, and
leaves only when every configured target acknowledged it.

SQLite in WAL mode with ``synchronous=FULL``: a committed event survives a power cut or a
SIGKILL. Each event gets the next per-camera sequence number (never reused, across
restarts too) and a unique id, so consumers can drop the duplicates that at-least-once
delivery brings. Each target keeps a cursor (the last sequence number it acknowledged) and
takes events strictly in order from there; a target added later starts with what is still
in the spool.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import PublishError

SPOOL_FILE = "spool.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                                   channel TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL);
-- Age limits delete by creation time on every append: an index keeps that off a full scan.
CREATE INDEX IF NOT EXISTS events_created ON events (created);
CREATE TABLE IF NOT EXISTS cursors (target TEXT PRIMARY KEY, acked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class SpooledEvent:
    seq: int
    id: str
    channel: str
    body: str  # the JSON text sent, as written


@dataclass(frozen=True)
class SpoolStats:
    depth: int  # events waiting for at least one target
    oldest_age_s: float | None
    dropped_full: int  # events dropped at max_events (by the on_full policy), ever
    dropped_age: int  # events older than max_age_s, dropped, ever
    pending: dict  # target -> events it has not acknowledged

    def to_dict(self) -> dict:
        return {"depth": self.depth, "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 3),
                "dropped_full": self.dropped_full, "dropped_age": self.dropped_age, "pending": dict(self.pending)}


class Spool:
    def __init__(self, folder: str | Path, *, max_events: int = 100_000, max_age_s: float = 7 * 24 * 3600.0,
                 on_full: str = "drop_oldest"):
        self.folder = Path(folder)
        self.path = self.folder / SPOOL_FILE
        self.max_events, self.max_age_s, self.on_full = max_events, max_age_s, on_full
        self._lock = threading.Lock()
        self._active: set[str] = set()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute("SELECT count(*) FROM events").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise PublishError(f"{self.path}: the event spool cannot be opened ({exc}); check the folder is writable, "
                               "or move a damaged spool file aside (its events are then lost)") from exc

    # -- writing ------------------------------------------------------------------------------
    def append(self, channel: str, make_body) -> SpooledEvent | None:
        """Store one event: ``make_body(id, seq)`` gives the dict sent (it should carry both).
        Returns the stored event, or None when the spool is full and ``on_full`` is
        ``drop_newest`` (the event is counted as dropped)."""
        event_id = uuid.uuid4().hex
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._expire()
                count = self._db.execute("SELECT count(*) FROM events").fetchone()[0]
                if count >= self.max_events and self.on_full == "drop_newest":
                    self._count("dropped_full", 1)
                    self._db.execute("COMMIT")
                    return None
                seq = self._db.execute("INSERT INTO events (id, channel, created, body) VALUES (?, ?, ?, '')",
                                       (event_id, channel, time.time())).lastrowid
                body = json.dumps(make_body(event_id, seq), separators=(",", ":"))
                self._db.execute("UPDATE events SET body = ? WHERE seq = ?", (body, seq))
                if count + 1 > self.max_events:  # drop_oldest
                    over = count + 1 - self.max_events
                    self._db.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
                                     (over,))
                    self._count("dropped_full", over)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return SpooledEvent(seq, event_id, channel, body)

    def _expire(self) -> None:
        cut = self._db.execute("DELETE FROM events WHERE created < ?", (time.time() - self.max_age_s,)).rowcount
        if cut:
            self._count("dropped_age", cut)

    def _count(self, name: str, n: int) -> None:
        self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    # -- targets ------------------------------------------------------------------------------
    def register(self, target: str) -> None:
        """A target that events are delivered to from now on; a new one starts with every
        event still in the spool."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT min(seq) FROM events").fetchone()
            start = (row[0] - 1) if row[0] is not None else self._last_seq()
            self._db.execute("INSERT OR IGNORE INTO cursors (target, acked) VALUES (?, ?)", (target, start))
            self._db.execute("COMMIT")
            self._active.add(target)

    def _last_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0

    def pending(self, target: str, limit: int = 100) -> list[SpooledEvent]:
        """The next events ``target`` has not acknowledged, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, channel, body FROM events WHERE seq > (SELECT acked FROM cursors WHERE target = ?) "
                "ORDER BY seq LIMIT ?", (target, limit)).fetchall()
        return [SpooledEvent(*row) for row in rows]

    def ack(self, target: str, seq: int) -> None:
        """``target`` has every event up to ``seq``; events every active target has are removed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("UPDATE cursors SET acked = max(acked, ?) WHERE target = ?", (seq, target))
            marks = ",".join("?" * len(self._active))
            low = self._db.execute(f"SELECT min(acked) FROM cursors WHERE target IN ({marks})",
                                   tuple(self._active)).fetchone()[0]
            if low is not None:
                self._db.execute("DELETE FROM events WHERE seq <= ?", (low,))
            self._db.execute("COMMIT")

    # -- reading ------------------------------------------------------------------------------
    def stats(self) -> SpoolStats:
        with self._lock:
            depth, oldest = self._db.execute("SELECT count(*), min(created) FROM events").fetchone()
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
            pending = {}
            for target in sorted(self._active):
                pending[target] = self._db.execute(
                    "SELECT count(*) FROM events WHERE seq > (SELECT acked FROM cursors WHERE target = ?)",
                    (target,)).fetchone()[0]
        return SpoolStats(depth=depth, oldest_age_s=None if oldest is None else max(0.0, time.time() - oldest),
                          dropped_full=counters.get("dropped_full", 0), dropped_age=counters.get("dropped_age", 0),
                          pending=pending)

    def close(self) -> None:
        with self._lock:
            self._db.close()
