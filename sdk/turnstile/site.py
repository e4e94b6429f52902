"""What a turnstile tells its site: its events through the publisher (spooled, at least once,
in order), its health (retained), and its Prometheus metrics. Each part is optional, and
none of them can stop the gate from deciding: a part that cannot start says why in one
line and the app goes on without it."""
from __future__ import annotations

import sys
from pathlib import Path

from ..config.publish import env_secret
from ..errors import MaskGateError


def _say(message: str) -> None:
    print(f"maskgate turnstile: {message}", file=sys.stderr, flush=True)


def metrics_token(config) -> str | None:
    """The token scrapes must send, from the variable ``[turnstile] metrics_token_env`` names
    (None: none asked for). A variable that is not set is a MaskGateError: no metrics are served
    rather than served without the token the site asked for."""
    return env_secret(config.metrics_token_env, what="metrics token", key="metrics_token_env", table="[turnstile]")


class SiteLink:
    def __init__(self, config):
        """``config``: the app's ``TurnstileConfig`` (publish, metrics_port, builds)."""
        self.config = config
        self.publisher = None
        self.metrics = None
        self._check_mtime = None
        self._last_check = None
        publish = config.publish
        if publish is not None and publish.problem:
            _say(f"{publish.problem}; deciding on without publishing; events are kept in the spool "
                 f"{publish.spool} until it is fixed")
        if publish is not None:
            from ..publish import Publisher

            try:
                self.publisher = Publisher(publish, log=_say).start()
            except MaskGateError as exc:
                _say(f"{exc}; deciding on without publishing")
        if config.metrics_port is not None:
            from .prometheus import TurnstileMetrics

            try:
                self.metrics = TurnstileMetrics(port=config.metrics_port, address=config.metrics_address,
                                                token=metrics_token(config), insecure=config.metrics_insecure)
            except MaskGateError as exc:
                _say(f"{exc}; deciding on without metrics")
        self._refresh_last_check()

    def watch(self, stream) -> None:
        """The metrics read the stream's staleness at each scrape."""
        if self.metrics is not None:
            self.metrics.watch(stream)

    def unspooled(self) -> int:
        return self.publisher.spool.health.unspooled if self.publisher is not None else 0

    # -- per event and per frame --------------------------------------------------------------------
    def event(self, record: dict) -> dict:
        """Spool an event for the site; returns it as sent (with its id and sequence number)."""
        if self.publisher is None:
            return record
        try:
            sent = self.publisher.publish("events", record)
        except Exception as exc:  # nothing the spool does may stop the gate (it counts its own failures)
            _say(f"publish: {type(exc).__name__}: {exc}; this event was not spooled")
            return record
        return sent if sent is not None else record

    def frame(self, latency_ms: float, stages_ms: dict) -> None:
        if self.metrics is not None:
            self.metrics.frame(latency_ms, stages_ms)

    def gate(self, action: str) -> None:
        if self.metrics is not None:
            self.metrics.gate_events.labels(action).inc()

    def passage(self, decision: str) -> None:
        if self.metrics is not None:
            self.metrics.passages.labels(decision).inc()

    # -- health ---------------------------------------------------------------------------------
    def health(self, fields: dict, *, stream_stats, runtime: dict | None) -> str:
        """Send the health fields to the site and the metrics; returns the words the stderr
        health line adds (the spool and the targets)."""
        self._refresh_last_check()
        status = None
        if self.publisher is not None:  # the message sent carries the publisher's state: read once, used for all
            sent = self.publisher.health({**fields, "runtime": runtime, "last_check": self._last_check})
            status = sent["publish"]
        if self.metrics is not None:
            self.metrics.fps.set(fields.get("fps") or 0.0)
            self.metrics.stream(dropped=stream_stats.dropped, reconnects=stream_stats.reconnects,
                                stalls=stream_stats.stalls)
            self.metrics.events_unwritten.set(fields.get("events_unwritten") or 0)
            self.metrics.runtimes(runtime or {})
            if status is not None:
                self.metrics.publish(status)
        if status is None:
            return ""
        spool = status["spool"]
        age = f", oldest {spool['oldest_age_s']:.0f} s" if spool["oldest_age_s"] is not None else ""
        words = [f"spool {spool['depth']}{age}" + ("" if spool["durable"] else " IN MEMORY")]
        if spool["dropped_full"] or spool["dropped_age"]:
            words.append(f"SPOOL DROPPED {spool['dropped_full']} (full) + {spool['dropped_age']} (too old)")
        if spool["problem"]:
            words.append(f"SPOOL PROBLEM ({spool['unspooled']} not kept): {spool['problem']}")
        if spool["dead"]:
            words.append(f"DEAD LETTERS {spool['dead']}")
        for target, state in status["targets"].items():
            words.append(f"{target} {'up' if state['connected'] else 'DOWN: ' + (state['reason'] or '?')}")
        return ", " + ", ".join(words)

    def _refresh_last_check(self) -> None:
        from ..publish.fleet import LAST_CHECK_FILE, read_last_check

        path = Path(self.config.builds) / LAST_CHECK_FILE
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = None
        if mtime != self._check_mtime or self._last_check is None:
            self._check_mtime = mtime
            self._last_check = read_last_check(self.config.builds)
            if self.metrics is not None:
                self.metrics.last_check(self._last_check)

    def close(self, reason: str) -> None:
        if self.publisher is not None:
            self.publisher.close(drain_s=2.0, reason=reason)
        if self.metrics is not None:
            self.metrics.close()
