"""Prometheus metrics of a running turnstile (``maskgate turnstile --metrics-port N``).

Off by default. Rendered by prometheus-client from its own registry (nothing of the host
process leaks in) and served by ``maskgate.turnstile.metrics_server`` (idle timeout, a
connection cap, an optional token) on 127.0.0.1 unless ``--metrics-address`` says otherwise:

- ``maskgate_frames_total``, ``maskgate_fps``, ``maskgate_frame_latency_seconds`` and
  ``maskgate_stage_latency_seconds{stage}`` (histograms), ``maskgate_dropped_frames_total``,
  ``maskgate_stream_reconnects_total``, ``maskgate_seconds_since_last_frame`` (read at each
  scrape), ``maskgate_stream_stalled`` (1 while a live source sends nothing), ``maskgate_stream_stalls_total``;
- ``maskgate_gate_events_total{action}``, ``maskgate_passages_total{decision}``;
- ``maskgate_spool_depth``, ``maskgate_spool_oldest_age_seconds``,
  ``maskgate_spool_dropped_total{why}``, ``maskgate_publish_connected{target}``,
  ``maskgate_publish_reconnects_total{target}``, ``maskgate_publish_delivered_total{target}``,
  ``maskgate_spool_dead_letters``, ``maskgate_spool_unspooled_total``, ``maskgate_spool_problem``
  (1 while the spool cannot keep events), ``maskgate_spool_durable`` (0: in memory only),
  ``maskgate_events_unwritten_total`` (events the --events file could not take);
- ``maskgate_model_info{role, runtime}`` (the build and device that run each model),
  ``maskgate_last_check_passed`` and ``maskgate_last_check_timestamp_seconds`` (the last
  ``maskgate check`` of the builds, from ``<builds>/last-check.json``).
"""
from __future__ import annotations

from ..errors import DependencyError

# Frame budgets of a few ms up to a stalled second.
_LATENCY_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.030, 0.050, 0.075, 0.1, 0.2, 0.5, 1.0)


class TurnstileMetrics:
    def __init__(self, *, port: int, address: str = "127.0.0.1", token: str | None = None, insecure: bool = False):
        try:
            import prometheus_client as prom
        except ModuleNotFoundError as exc:
            raise DependencyError("prometheus-client", extra="metrics", purpose="--metrics-port") from exc
        self.registry = registry = prom.CollectorRegistry()

        def counter(name, doc, labels=()):
            return prom.Counter(name, doc, labels, registry=registry)

        def gauge(name, doc, labels=()):
            return prom.Gauge(name, doc, labels, registry=registry)

        self.frames = counter("maskgate_frames", "camera frames processed")
        self.fps = gauge("maskgate_fps", "frames per second over the last health period")
        self.frame_latency = prom.Histogram("maskgate_frame_latency_seconds", "pipeline time per frame",
                                            buckets=_LATENCY_BUCKETS, registry=registry)
        self.stage_latency = prom.Histogram("maskgate_stage_latency_seconds", "time per frame in each pipeline stage",
                                            ["stage"], buckets=_LATENCY_BUCKETS, registry=registry)
        self.dropped = counter("maskgate_dropped_frames", "frames the source dropped (the app was behind)")
        self.reconnects = counter("maskgate_stream_reconnects", "times the camera stream was reopened")
        self.gate_events = counter("maskgate_gate_events", "gate actions", ["action"])
        self.passages = counter("maskgate_passages", "passages by final decision", ["decision"])
        self.spool_depth = gauge("maskgate_spool_depth", "events in the spool not yet taken by every target")
        self.spool_age = gauge("maskgate_spool_oldest_age_seconds", "age of the oldest spooled event (0: empty)")
        self.spool_dropped = gauge("maskgate_spool_dropped_total", "events the spool dropped at its limits, ever",
                                   ["why"])
        self.connected = gauge("maskgate_publish_connected", "1 while the target takes events", ["target"])
        self.target_reconnects = gauge("maskgate_publish_reconnects_total", "reconnections to the target", ["target"])
        self.delivered = gauge("maskgate_publish_delivered_total", "events the target acknowledged, this run",
                               ["target"])
        self.model = gauge("maskgate_model_info", "the build and device that run each model", ["role", "runtime"])
        self.since_frame = gauge("maskgate_seconds_since_last_frame", "seconds since the source gave a frame")
        self.stalled = gauge("maskgate_stream_stalled", "1 while a live source sends no frames (the gate is shut)")
        self.stalls = counter("maskgate_stream_stalls", "times a live source went stall_s without a frame")
        self.dead_letters = gauge("maskgate_spool_dead_letters", "events a target refused, kept in the spool")
        self.unspooled = gauge("maskgate_spool_unspooled_total", "events the spool could not keep, this run")
        self.spool_problem = gauge("maskgate_spool_problem", "1 while the spool cannot keep events (disk full, ...)")
        self.spool_durable = gauge("maskgate_spool_durable", "1 when the spool is on disk, 0 when in memory only")
        self.events_unwritten = gauge("maskgate_events_unwritten_total", "events the --events file could not take")
        self.check_passed = gauge("maskgate_last_check_passed", "1 if the last maskgate check passed every bundle")
        self.check_time = gauge("maskgate_last_check_timestamp_seconds", "when the last maskgate check ran")
        self._seen_dropped = 0
        self._seen_reconnects = 0
        self._seen_stalls = 0
        from .metrics_server import MetricsServer

        self.server = MetricsServer(lambda: (prom.CONTENT_TYPE_LATEST, prom.generate_latest(registry)), port=port,
                                    address=address, token=token, insecure=insecure)
        self.port = self.server.port

    def watch(self, stream) -> None:
        """Read the stream's staleness at every scrape, not at the last health period."""
        self.since_frame.set_function(lambda: stream.seconds_since_frame() or 0.0)
        self.stalled.set_function(lambda: 1.0 if stream.stalled else 0.0)

    def frame(self, latency_ms: float, stages_ms: dict) -> None:
        self.frames.inc()
        self.frame_latency.observe(latency_ms / 1e3)
        for stage, ms in stages_ms.items():
            self.stage_latency.labels(stage).observe(ms / 1e3)

    def stream(self, *, dropped: int, reconnects: int, stalls: int = 0) -> None:
        """The source's running totals."""
        self.dropped.inc(max(0, dropped - self._seen_dropped))
        self.reconnects.inc(max(0, reconnects - self._seen_reconnects))
        self.stalls.inc(max(0, stalls - self._seen_stalls))
        self._seen_dropped, self._seen_reconnects, self._seen_stalls = dropped, reconnects, stalls

    def runtimes(self, runtime: dict) -> None:
        self.model.clear()
        for role, text in (runtime or {}).items():
            self.model.labels(role, text).set(1)

    def publish(self, status: dict) -> None:
        spool = status["spool"]
        self.spool_depth.set(spool["depth"])
        self.spool_age.set(spool["oldest_age_s"] or 0.0)
        self.spool_dropped.labels("full").set(spool["dropped_full"])
        self.spool_dropped.labels("age").set(spool["dropped_age"])
        self.dead_letters.set(spool.get("dead", 0))
        self.unspooled.set(spool.get("unspooled", 0))
        self.spool_problem.set(1 if spool.get("problem") else 0)
        self.spool_durable.set(1 if spool.get("durable", True) else 0)
        for target, state in status["targets"].items():
            self.connected.labels(target).set(1 if state["connected"] else 0)
            self.target_reconnects.labels(target).set(state["reconnects"])
            self.delivered.labels(target).set(state["delivered"])

    def last_check(self, summary: dict | None) -> None:
        if summary is not None:
            self.check_passed.set(1 if summary.get("passed") else 0)
            self.check_time.set(float(summary.get("checked_unix") or 0))

    def close(self) -> None:
        self.server.close()
