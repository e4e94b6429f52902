"""The camera's durable event spool: every event is on disk before any target sees it, and
leaves only when every configured target acknowledged it (or gave it up as a dead letter).

SQLite in WAL mode with ``synchronous=FULL``: a committed event survives a power cut or a
SIGKILL. Each event gets the next per-camera sequence number (never reused, across
restarts too) and a unique id, so consumers can drop the duplicates that at-least-once
delivery brings. Each target keeps a cursor (the last sequence number it acknowledged) and
takes events strictly in order from there; a target added later starts with what is still
in the spool. An event a target refuses (an HTTP 4xx, a broker's negative PUBACK) is moved,
for that target, to the ``dead`` table after a few tries, so it holds nothing back;
``maskgate spool PATH --replay`` queues dead letters to be sent again.

Nothing the disk does stops the gate (``maskgate.publish.spool_health``): a full or read-only
disk leaves the event unspooled (counted, said once) and the next append tries again; a
damaged file is set aside for inspection (``spool.damaged-*.sqlite3``) and a new one started,
its numbering continuing above the old; a folder that takes no file at all gives a spool in
memory (not durable, said so), which goes back to disk, its events with it, once the folder
takes a file again (tried every ``RETRY_DISK_S``).
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
from .deadletters import DeadLetters
from .records import DeadLetter, SpooledEvent  # noqa: F401  (the spool's own types)
from .spool_health import SpoolHealth, damaged, set_aside

SPOOL_FILE = "spool.sqlite3"
RETRY_DISK_S = 5.0  # a spool in memory tries its folder again this often
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                                   channel TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL);
-- Age limits delete by creation time on every append: an index keeps that off a full scan.
CREATE INDEX IF NOT EXISTS events_created ON events (created);
CREATE TABLE IF NOT EXISTS cursors (target TEXT PRIMARY KEY, acked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Events a target refused, kept for it; state 'replay': queued to be sent to it again.
CREATE TABLE IF NOT EXISTS dead (target TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
                                 channel TEXT NOT NULL, created REAL NOT NULL, body TEXT NOT NULL,
                                 reason TEXT NOT NULL, tries INTEGER NOT NULL, dead_at REAL NOT NULL,
                                 state TEXT NOT NULL DEFAULT 'dead', PRIMARY KEY (target, seq));
"""


@dataclass(frozen=True)
class SpoolStats:
    depth: int  # events waiting for at least one target
    oldest_age_s: float | None
    dropped_full: int  # events dropped at max_events (by the on_full policy), ever
    dropped_age: int  # events older than max_age_s, dropped, ever
    pending: dict  # target -> events it has not acknowledged
    dead: int = 0  # dead letters kept (every target)
    unspooled: int = 0  # events that could not be stored this run (full or read-only disk, damage)
    problem: str | None = None  # what is wrong with the spool now (None: all is well)
    durable: bool = True  # False: the spool is in memory (no folder took its file)
    set_aside: tuple[str, ...] = ()  # damaged spool files moved aside this run

    def to_dict(self) -> dict:
        return {"depth": self.depth, "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 3),
                "dropped_full": self.dropped_full, "dropped_age": self.dropped_age, "pending": dict(self.pending),
                "dead": self.dead, "unspooled": self.unspooled, "problem": self.problem, "durable": self.durable,
                "set_aside": list(self.set_aside)}


class Spool(DeadLetters):
    @classmethod
    def inspect(cls, folder: str | Path) -> Spool:
        """An existing spool opened to read and queue replays (``maskgate spool``), beside a running
        app: nothing is created, and a damaged file is an error, not set aside."""
        path = Path(folder)
        path = path.parent if path.name == SPOOL_FILE else path
        if not (path / SPOOL_FILE).is_file():
            raise PublishError(f"{path}: no spool here (no {SPOOL_FILE}); give the folder a turnstile's --spool names")
        try:
            db = sqlite3.connect(f"file:{path / SPOOL_FILE}?mode=rw", uri=True, check_same_thread=False,
                                 isolation_level=None, timeout=30)
            db.execute("SELECT count(*) FROM events").fetchone()
            db.executescript(_SCHEMA)  # a spool from before dead letters gains the table
            targets = [row[0] for row in db.execute("SELECT target FROM cursors ORDER BY target")]
        except sqlite3.Error as exc:
            raise PublishError(f"{path / SPOOL_FILE}: cannot be read ({exc}); a running turnstile sets a damaged "
                               "spool aside by itself") from None
        spool = cls.__new__(cls)
        spool.folder, spool.path = path, path / SPOOL_FILE
        spool.max_events, spool.max_age_s, spool.on_full = 0, 0.0, "drop_oldest"
        spool._lock, spool._active, spool._last_seq = threading.RLock(), set(targets), 0
        spool.health = SpoolHealth(spool.path)
        spool._db = db
        return spool

    def __init__(self, folder: str | Path, *, max_events: int = 100_000, max_age_s: float = 7 * 24 * 3600.0,
                 on_full: str = "drop_oldest", log=None):
        """``log``: where the spool says, once per problem, what went wrong (default: nowhere)."""
        self.folder = Path(folder)
        self.path = self.folder / SPOOL_FILE
        self.max_events, self.max_age_s, self.on_full = max_events, max_age_s, on_full
        self._lock = threading.RLock()
        self._active: set[str] = set()
        self.health = SpoolHealth(self.path, log=log)
        self._last_seq = 0
        self._disk_tried = time.monotonic()
        self._db = self._open()

    # -- the file, and what to do when it fails ----------------------------------------------------
    def _open(self, *, after: int = 0) -> sqlite3.Connection:
        """The spool file (a damaged one set aside first); a connection in memory when no file
        can be made here. ``after``: the numbering continues above this."""
        for attempt in range(2):
            try:
                db = self._connect_disk()
                try:
                    self._continue_numbering(db, after)
                except BaseException:
                    db.close()
                    raise
                return db
            except sqlite3.DatabaseError as exc:
                if attempt == 0 and damaged(exc) and self.path.exists():
                    after = max(after, _unix_ms())  # its numbering cannot be read: start above any it held
                    self.health.set_aside(set_aside(self.path), exc)
                    continue
                return self._in_memory(exc, after)
            except OSError as exc:
                return self._in_memory(exc, after)
        raise AssertionError("unreachable")

    def _connect_disk(self) -> sqlite3.Connection:
        self.folder.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            db.execute("SELECT count(*) FROM events").fetchone()
        except BaseException:
            db.close()
            raise
        return db

    def _back_to_disk(self) -> None:
        """A spool in memory: try the folder again, and move what memory holds there (call with the lock)."""
        self._disk_tried = time.monotonic()
        try:
            disk = self._connect_disk()
        except (sqlite3.Error, OSError):
            return
        memory = self._db
        try:
            disk.execute("BEGIN IMMEDIATE")
            rows = memory.execute("SELECT seq, id, channel, created, body FROM events ORDER BY seq").fetchall()
            disk.executemany("INSERT OR IGNORE INTO events (seq, id, channel, created, body) VALUES (?, ?, ?, ?, ?)",
                             rows)
            dead = memory.execute("SELECT target, seq, id, channel, created, body, reason, tries, dead_at, state "
                                  "FROM dead").fetchall()
            disk.executemany("INSERT OR IGNORE INTO dead VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", dead)
            for name, value in memory.execute("SELECT name, value FROM counters").fetchall():
                self._count(disk, name, value)
            for target in sorted(self._active):  # old events on disk first, then those from memory
                disk.execute("INSERT OR IGNORE INTO cursors (target, acked) VALUES (?, (SELECT coalesce(min(seq) - 1, "
                             "0) FROM events))", (target,))
            disk.execute("COMMIT")
        except sqlite3.Error:
            disk.close()
            return
        self._db = disk
        memory.close()
        self.health.on_disk(len(rows))

    def _in_memory(self, exc: Exception, after: int) -> sqlite3.Connection:
        self.health.in_memory(exc)
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        db.executescript(_SCHEMA)
        self._continue_numbering(db, max(after, _unix_ms()))
        return db

    def _continue_numbering(self, db: sqlite3.Connection, after: int) -> None:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        current = row[0] if row else 0
        if after > current:
            db.execute("INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (after,))
        self._last_seq = max(current, after, self._last_seq)

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        """A statement failed: roll back what is open, say it once; a damaged file is set aside
        and the spool goes on in a new one (its targets registered again)."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if damaged(exc) and self.health.durable:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
            self.health.set_aside(set_aside(self.path), exc)
            self._db = self._open(after=self._last_seq)
            for target in sorted(self._active):
                self._db.execute("INSERT OR IGNORE INTO cursors (target, acked) VALUES (?, ?)",
                                 (target, self._last_seq))
        else:
            self.health.failed(what, exc)

    def _write(self, what: str, statements) -> bool:
        """Run ``statements(db)`` in one IMMEDIATE transaction; False (said once) when it failed."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                statements(self._db)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._failed(what, exc)
                return False
            self.health.wrote()
            return True

    def _read(self, what: str, query, default):
        with self._lock:
            try:
                return query(self._db)
            except sqlite3.Error as exc:
                self._failed(what, exc)
                return default

    # -- writing ------------------------------------------------------------------------------
    def append(self, channel: str, make_body) -> SpooledEvent | None:
        """Store one event: ``make_body(id, seq)`` gives the dict sent (it should carry both).
        Returns the stored event, or None when it could not be stored: the spool is full and
        ``on_full`` is ``drop_newest`` (counted as dropped), or the disk refused it (counted
        as unspooled, ``stats().problem`` says why)."""
        event_id = uuid.uuid4().hex
        stored: list[SpooledEvent] = []

        def insert(db: sqlite3.Connection) -> None:
            self._expire(db)
            count = db.execute("SELECT count(*) FROM events").fetchone()[0]
            if count >= self.max_events and self.on_full == "drop_newest":
                self._count(db, "dropped_full", 1)
                return
            seq = db.execute("INSERT INTO events (id, channel, created, body) VALUES (?, ?, ?, '')",
                             (event_id, channel, time.time())).lastrowid
            assert seq is not None  # an INSERT always sets it
            body = json.dumps(make_body(event_id, seq), separators=(",", ":"))
            db.execute("UPDATE events SET body = ? WHERE seq = ?", (body, seq))
            if count + 1 > self.max_events:  # drop_oldest
                over = count + 1 - self.max_events
                db.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)", (over,))
                self._count(db, "dropped_full", over)
            stored.append(SpooledEvent(seq, event_id, channel, body))

        if not self.health.durable and time.monotonic() - self._disk_tried >= RETRY_DISK_S:
            with self._lock:
                self._back_to_disk()
        if not self._write("storing an event", insert):
            self.health.unspooled += 1
            return None
        if stored:
            self._last_seq = max(self._last_seq, stored[0].seq)
        return stored[0] if stored else None

    def _expire(self, db: sqlite3.Connection) -> None:
        cut = db.execute("DELETE FROM events WHERE created < ?", (time.time() - self.max_age_s,)).rowcount
        if cut:
            self._count(db, "dropped_age", cut)

    @staticmethod
    def _count(db: sqlite3.Connection, name: str, n: int) -> None:
        db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, n))

    # -- targets ------------------------------------------------------------------------------
    def register(self, target: str) -> None:
        """A target that events are delivered to from now on; a new one starts with every
        event still in the spool."""
        def add(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT min(seq) FROM events").fetchone()
            start = (row[0] - 1) if row[0] is not None else self._last_sequence(db)
            db.execute("INSERT OR IGNORE INTO cursors (target, acked) VALUES (?, ?)", (target, start))

        with self._lock:
            self._active.add(target)
            self._write("registering a target", add)

    @staticmethod
    def _last_sequence(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0

    def pending(self, target: str, limit: int = 100) -> list[SpooledEvent]:
        """The next events ``target`` has not acknowledged, oldest first."""
        rows = self._read("reading events", lambda db: db.execute(
            "SELECT seq, id, channel, body FROM events WHERE seq > (SELECT acked FROM cursors WHERE target = ?) "
            "ORDER BY seq LIMIT ?", (target, limit)).fetchall(), [])
        return [SpooledEvent(*row) for row in rows]

    def ack(self, target: str, seq: int) -> None:
        """``target`` has every event up to ``seq``; events every active target has are removed."""
        self._write("recording a delivery", lambda db: self._advance(db, target, seq))

    def _advance(self, db: sqlite3.Connection, target: str, seq: int) -> None:
        db.execute("UPDATE cursors SET acked = max(acked, ?) WHERE target = ?", (seq, target))
        marks = ",".join("?" * len(self._active))
        low = db.execute(f"SELECT min(acked) FROM cursors WHERE target IN ({marks})",
                         tuple(self._active)).fetchone()[0]
        if low is not None:
            db.execute("DELETE FROM events WHERE seq <= ?", (low,))

    # -- reading ------------------------------------------------------------------------------
    def stats(self) -> SpoolStats:
        def query(db: sqlite3.Connection) -> SpoolStats:
            depth, oldest = db.execute("SELECT count(*), min(created) FROM events").fetchone()
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
            dead = db.execute("SELECT count(*) FROM dead").fetchone()[0]
            pending = {}
            for target in sorted(self._active):
                pending[target] = db.execute(
                    "SELECT count(*) FROM events WHERE seq > (SELECT acked FROM cursors WHERE target = ?)",
                    (target,)).fetchone()[0]
            return SpoolStats(depth=depth, oldest_age_s=None if oldest is None else max(0.0, time.time() - oldest),
                              dropped_full=counters.get("dropped_full", 0), dropped_age=counters.get("dropped_age", 0),
                              pending=pending, dead=dead, **self.health.fields())

        return self._read("reading its state", query,
                          None) or SpoolStats(0, None, 0, 0, {}, **self.health.fields())

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass


def _unix_ms() -> int:
    return int(time.time() * 1000)
