"""Dead letters: events a target refused (an HTTP 4xx about the event, a broker's negative
PUBACK) kept in the spool's ``dead`` table for that target, so they hold nothing back;
``maskgate spool PATH --replay ID|all`` queues them to be sent again. A mixin of
``maskgate.publish.spool.Spool``, on its ``_write`` / ``_read`` (one transaction each, never
raising a disk's error)."""
from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from .records import DeadLetter, SpooledEvent


class DeadLetters:
    if TYPE_CHECKING:  # the Spool's, which this mixes into
        def _write(self, what: str, statements) -> bool: ...
        def _read(self, what: str, query, default): ...
        def _advance(self, db: sqlite3.Connection, target: str, seq: int) -> None: ...

    def dead_letter(self, target: str, event: SpooledEvent, *, reason: str, tries: int) -> None:
        """``target`` refused ``event`` ``tries`` times: keep it in ``dead`` for that target and
        move the target's cursor past it, so later events go on."""
        def move(db: sqlite3.Connection) -> None:
            created = db.execute("SELECT created FROM events WHERE seq = ?", (event.seq,)).fetchone()
            db.execute("INSERT OR REPLACE INTO dead (target, seq, id, channel, created, body, reason, tries, dead_at, "
                       "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'dead')",
                       (target, event.seq, event.id, event.channel, created[0] if created else time.time(),
                        event.body, reason, tries, time.time()))
            self._advance(db, target, event.seq)

        self._write("keeping a dead letter", move)

    def dead(self, target: str | None = None) -> list[DeadLetter]:
        """The dead letters (of one target, or all), oldest first."""
        where, args = ("WHERE target = ?", (target,)) if target is not None else ("", ())
        rows = self._read("reading dead letters", lambda db: db.execute(
            "SELECT target, seq, id, channel, created, reason, tries, dead_at, state, body FROM dead "
            f"{where} ORDER BY seq", args).fetchall(), [])
        return [DeadLetter(*row) for row in rows]

    def replay(self, which: str = "all") -> int:
        """Queue dead letters to be sent again (``which``: an event id, or "all"); how many."""
        queued: list[int] = []

        def mark(db: sqlite3.Connection) -> None:
            sql = "UPDATE dead SET state = 'replay' WHERE state = 'dead'"
            queued.append(db.execute(sql if which == "all" else sql + " AND id = ?",
                                     () if which == "all" else (which,)).rowcount)

        self._write("queueing a replay", mark)
        return queued[0] if queued else 0

    def replays(self, target: str) -> list[SpooledEvent]:
        """Dead letters of ``target`` queued to be sent again, oldest first."""
        rows = self._read("reading replays", lambda db: db.execute(
            "SELECT seq, id, channel, body FROM dead WHERE target = ? AND state = 'replay' ORDER BY seq",
            (target,)).fetchall(), [])
        return [SpooledEvent(*row) for row in rows]

    def replayed(self, target: str, seq: int, *, refused: str | None = None) -> None:
        """A queued replay was delivered (removed), or ``refused`` again (dead once more)."""
        if refused is None:
            self._write("recording a replay", lambda db: db.execute(
                "DELETE FROM dead WHERE target = ? AND seq = ?", (target, seq)))
        else:
            self._write("recording a refused replay", lambda db: db.execute(
                "UPDATE dead SET state = 'dead', reason = ?, tries = tries + 1, dead_at = ? WHERE target = ? AND "
                "seq = ?", (refused, time.time(), target, seq)))

