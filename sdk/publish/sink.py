"""What every publish target implements: take spooled events in order, say how far they were
acknowledged, and say why not when it cannot."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from .spool import SpooledEvent


class TargetUnavailable(Exception):
    """The target cannot take events now (broker down, receiver failing); the reason is the message."""


class EventRefused(Exception):
    """The target answered, and refused this one event (HTTP 4xx, a broker's negative PUBACK):
    sending it again as it is will not help. ``acked``: the last sequence number acknowledged
    before it (None: none in this batch)."""

    def __init__(self, seq: int, reason: str, *, acked: int | None = None):
        super().__init__(reason)
        self.seq, self.reason, self.acked = seq, reason, acked


@dataclass(frozen=True)
class TargetStatus:
    target: str
    connected: bool
    reason: str  # why not connected (or the last failure), "" when all is well
    reconnects: int
    delivered: int

    def to_dict(self) -> dict:
        return {"connected": self.connected, "reason": self.reason, "reconnects": self.reconnects,
                "delivered": self.delivered}


class Sink(ABC):
    #: seconds the publisher waits after TargetUnavailable before the next try (a sink may back off itself)
    retry_s: float = 0.5

    def __init__(self, name: str):
        self.name = name
        self.delivered = 0

    def start(self) -> None:
        """Begin connecting (in the background: never blocks the camera)."""
        return None

    @abstractmethod
    def deliver(self, events: list[SpooledEvent], *, timeout_s: float) -> int | None:
        """Send ``events`` (oldest first, in sequence order); return the last sequence number
        acknowledged with every one before it, None when none was; raise TargetUnavailable
        when nothing can be sent now, or EventRefused when the target refused one of them."""

    def publish_state(self, channel: str, body: str) -> None:
        """A latest-value message (health): sent if connected, else skipped. Default: none."""
        return None

    @abstractmethod
    def status(self) -> TargetStatus: ...

    def close(self, *, offline_reason: str | None = None) -> None:
        """Stop sending; events not acknowledged stay in the spool. ``offline_reason``: a
        target that carries health marks the camera offline with it first."""
        return None
