"""The camera's publisher: events into the spool first, then out to every target, each on its
own thread, in order, until acknowledged.

    publisher = Publisher(publish_config(targets=["mqtt://broker:1883"], site="hq", camera="gate-1"))
    publisher.start()
    publisher.publish("events", {"event": "passage", ...})   # on disk when this returns
    publisher.health({...})                                   # retained, latest only, not spooled
    publisher.close()                                         # drains for a moment, then stops

A target that cannot take events (broker down, receiver failing) leaves them in the spool
and says so, once per outage, through ``log``; the camera never waits for it.
"""
from __future__ import annotations

import datetime
import json
import sys
import threading
import time

from ..config.publish import PublishConfig
from .sink import EventRefused, Sink, TargetUnavailable
from .spool import Spool


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wall_time() -> str:
    """Now, UTC, ISO 8601 to the millisecond: the ``wall_time`` of every event and message."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class Publisher:
    def __init__(self, config: PublishConfig, *, role: str = "turnstile", log=_stderr, will: bool = True):
        """``role`` tells this camera's clients apart on a broker (the turnstile app and a
        ``maskgate check`` run of the same camera connect side by side); ``will``: leave a
        retained "offline" on the health topic if this client vanishes."""
        self.config = config
        self._log = log
        self._wake = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.spool = Spool(config.spool, max_events=config.max_events, max_age_s=config.max_age_s,
                           on_full=config.on_full, log=log)
        self.sinks: list[Sink] = []
        try:
            for target in config.targets:
                self.sinks.append(self._sink(target, role=role, will=will))
        except BaseException:
            self.close(drain_s=0)
            raise
        for sink in self.sinks:
            self.spool.register(sink.name)

    def _sink(self, target, *, role: str, will: bool) -> Sink:
        config = self.config
        if target.kind == "mqtt":
            from .mqtt import MqttSink

            return MqttSink(target, config.mqtt, client_id=f"maskgate-{config.site}-{config.camera}-{role}",
                            health_topic=config.topic("health") if will else None, site=config.site,
                            camera=config.camera, topic_of=config.topic)
        from .webhook import WebhookSink

        return WebhookSink(target, config.webhook)

    def start(self) -> Publisher:
        for sink in self.sinks:
            sink.start()
            thread = threading.Thread(target=self._deliver_loop, args=(sink,), name=f"publish {sink.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    # -- what the app calls -------------------------------------------------------------------------
    def publish(self, channel: str, record: dict) -> dict | None:
        """Spool ``record`` (with its id, per-camera seq, site and camera added) for every
        target; returns the record as sent, or None when a full spool dropped it."""
        def envelope(event_id: str, seq: int) -> dict:
            return {**record, "id": event_id, "seq": seq, "site": self.config.site, "camera": self.config.camera}

        stored = self.spool.append(channel, envelope)
        with self._wake:
            self._wake.notify_all()
        if stored is None:
            return None
        return envelope(stored.id, stored.seq)

    def health(self, fields: dict) -> dict:
        """Send the camera's state (retained on ``.../health``, where MQTT targets are
        connected); returns the message with the publisher's own state added."""
        message = {"status": "online", "site": self.config.site, "camera": self.config.camera, "wall_time": wall_time(),
                   **fields, "publish": self.status()}
        body = json.dumps(message, separators=(",", ":"))
        for sink in self.sinks:
            sink.publish_state("health", body)
        return message

    def status(self) -> dict:
        """The spool (depth, oldest age, drops) and every target's connection."""
        return {"spool": self.spool.stats().to_dict(),
                "targets": {sink.name: sink.status().to_dict() for sink in self.sinks}}

    def drain(self, timeout_s: float) -> bool:
        """Wait until every target has every spooled event, at most ``timeout_s``; whether it did."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not any(self.spool.stats().pending.values()):
                return True
            time.sleep(0.05)
        return not any(self.spool.stats().pending.values())

    def close(self, *, drain_s: float = 2.0, reason: str | None = "stopped") -> None:
        """Give the targets up to ``drain_s`` to take what is spooled, mark the camera offline
        (retained health), stop. Events not acknowledged stay in the spool for the next run."""
        if self._threads and drain_s > 0:
            self.drain(drain_s)
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        for sink in self.sinks:
            try:
                sink.close(offline_reason=reason)
            except Exception as exc:  # closing must not hide the run's own outcome
                self._log(f"publish: closing {sink.name}: {exc}")
        self.spool.close()

    # -- one thread per target ----------------------------------------------------------------------
    def _deliver_loop(self, sink: Sink) -> None:
        down = False
        refusals: dict[int, int] = {}  # seq -> refusals in a row, this run
        while not self._stopping:
            replays = self.spool.replays(sink.name)  # dead letters queued again come first, one at a time
            events = replays[:1] if replays else self.spool.pending(sink.name, limit=100)
            if not events:
                with self._wake:
                    if not self._stopping:
                        self._wake.wait(0.5)
                continue
            try:
                last = sink.deliver(events, timeout_s=1.0)
            except TargetUnavailable as exc:
                if not down:
                    depth = self.spool.stats().depth
                    self._log(f"publish: {sink.name} unavailable ({exc}); events wait in the spool "
                              f"{self.config.spool} ({depth} now) and go out in order when it is back")
                down = True
                self._pause(sink.retry_s)
                continue
            except EventRefused as refused:
                self._refused(sink, events, refused, refusals, replaying=bool(replays))
                continue
            except Exception as exc:  # a bug or an unexpected library error must not end delivery for good
                self._log(f"publish: {sink.name}: {type(exc).__name__}: {exc}; retrying")
                time.sleep(1.0)
                continue
            if last is not None:
                if replays:
                    self.spool.replayed(sink.name, last)
                else:
                    self.spool.ack(sink.name, last)
                if down:
                    self._log(f"publish: {sink.name} is taking events again")
                down = False

    def _refused(self, sink: Sink, events: list, refused: EventRefused, refusals: dict[int, int], *,
                 replaying: bool) -> None:
        """``sink`` answered, refusing one event: after ``dead_letter_after`` refusals in a row it
        becomes a dead letter for that target, and the events after it go on."""
        event = next(e for e in events if e.seq == refused.seq)
        if replaying:
            self.spool.replayed(sink.name, event.seq, refused=refused.reason)
            self._log(f"publish: {sink.name} refused the replayed event {event.id} again ({refused.reason}); it "
                      "stays a dead letter")
            return
        if refused.acked is not None:
            self.spool.ack(sink.name, refused.acked)
        tries = refusals.get(event.seq, 0) + 1
        refusals[event.seq] = tries
        if tries < self.config.dead_letter_after:
            self._pause(sink.retry_s)
            return
        del refusals[event.seq]
        self.spool.dead_letter(sink.name, event, reason=refused.reason, tries=tries)
        self._log(f"publish: {sink.name} refused event {event.id} (seq {event.seq}) {tries} times ({refused.reason}); "
                  f"kept as a dead letter, the events after it go on; see 'maskgate spool {self.config.spool}', "
                  f"send it again with --replay {event.id}")

    def _pause(self, seconds: float) -> None:
        with self._wake:
            if not self._stopping:
                self._wake.wait(seconds)
