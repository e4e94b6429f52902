"""What the spool hands out: an event as stored, and a dead letter."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SpooledEvent:
    seq: int
    id: str
    channel: str
    body: str  # the JSON text sent, as written


@dataclass(frozen=True)
class DeadLetter:
    target: str
    seq: int
    id: str
    channel: str
    created: float
    reason: str  # the target's last refusal
    tries: int
    dead_at: float
    state: str  # dead | replay
    body: str

    def to_dict(self) -> dict:
        return {"target": self.target, "seq": self.seq, "id": self.id, "channel": self.channel,
                "created": self.created, "reason": self.reason, "tries": self.tries, "dead_at": self.dead_at,
                "state": self.state}
