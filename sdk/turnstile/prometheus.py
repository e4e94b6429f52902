"""Prometheus metrics of a running turnstile (``maskgate turnstile --metrics-port N``).

Off by default. Served over HTTP by prometheus-client from its own registry (nothing of the
host process leaks in), on 127.0.0.1 unless ``--metrics-address`` says otherwise:

- ``maskgate_frames_total``, ``maskgate_fps``, ``maskgate_frame_latency_seconds`` and
  ``maskgate_stage_latency_seconds{stage}`` (histograms), ``maskgate_dropped_frames_total``,
  ``maskgate_stream_reconnects_total``;
- ``maskgate_gate_events_total{action}``, ``maskgate_passages_total{decision}``;
- ``maskgate_spool_depth``, ``maskgate_spool_oldest_age_seconds``,
  ``maskgate_spool_dropped_total{why}``, ``maskgate_publish_connected{target}``,
  ``maskgate_publish_reconnects_total{target}``, ``maskgate_publish_delivered_total{target}``;
- ``maskgate_model_info{role, runtime}`` (the build and device that run each model),
  ``maskgate_last_check_passed`` and ``maskgate_last_check_timestamp_seconds`` (the last
  ``maskgate check`` of the builds, from ``<builds>/last-check.json``).
"""
from __future__ import annotations

from ..errors import DependencyError, MaskGateError

# Frame budgets of a few ms up to a stalled second.
_LATENCY_BUCKETS = (0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.030, 0.050, 0.075, 0.1, 0.2, 0.5, 1.0)


class TurnstileMetrics:
    def __init__(self, *, port: int, address: str = "127.0.0.1"):
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
        self.check_passed = gauge("maskgate_last_check_passed", "1 if the last maskgate check passed every bundle")
        self.check_time = gauge("maskgate_last_check_timestamp_seconds", "when the last maskgate check ran")
        self._seen_dropped = 0
        self._seen_reconnects = 0
        try:
            self.server, self.thread = prom.start_http_server(port, addr=address, registry=registry)
        except OSError as exc:
            raise MaskGateError(f"--metrics-port {port}: cannot serve metrics on {address}:{port} "
                                f"({exc.strerror or exc}); choose a free port") from exc
        self.port = self.server.server_address[1]

    def frame(self, latency_ms: float, stages_ms: dict) -> None:
        self.frames.inc()
        self.frame_latency.observe(latency_ms / 1e3)
        for stage, ms in stages_ms.items():
            self.stage_latency.labels(stage).observe(ms / 1e3)

    def stream(self, *, dropped: int, reconnects: int) -> None:
        """The source's running totals."""
        self.dropped.inc(max(0, dropped - self._seen_dropped))
        self.reconnects.inc(max(0, reconnects - self._seen_reconnects))
        self._seen_dropped, self._seen_reconnects = dropped, reconnects

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
        for target, state in status["targets"].items():
            self.connected.labels(target).set(1 if state["connected"] else 0)
            self.target_reconnects.labels(target).set(state["reconnects"])
            self.delivered.labels(target).set(state["delivered"])

    def last_check(self, summary: dict | None) -> None:
        if summary is not None:
            self.check_passed.set(1 if summary.get("passed") else 0)
            self.check_time.set(float(summary.get("checked_unix") or 0))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
