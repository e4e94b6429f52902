"""The turnstile's health, on its own timer: every ``health_every_s`` a health message goes to the
site (retained) and to the metrics, and a line to stderr, whether frames arrive or not. A
camera whose stream stalls is therefore seen as ``status: "stalled"`` by the site within one
period, not silently ``online`` because the frame loop that used to send health is waiting."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np

from .heartbeat import Heartbeat


class HealthReporter:
    def __init__(self, app, *, every_s: float):
        """``app``: the running ``TurnstileApp`` (its stream, machine, summary, site link)."""
        self._app = app
        self._every = every_s
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self._frames_then = 0
        self._then = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        heartbeat = app.config.heartbeat
        self._heartbeat = Heartbeat(heartbeat, say=lambda m: print(f"maskgate turnstile: {m}", file=sys.stderr,
                                                                    flush=True)) if heartbeat else None

    def frame(self, latency_ms: float) -> None:
        with self._lock:
            self._latencies.append(latency_ms)

    def start(self) -> HealthReporter:
        self.report(first=True)  # the site sees the camera online before the first person comes
        self._thread = threading.Thread(target=self._run, name="maskgate-health", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.report()
            except Exception as exc:  # health must never be what stops the gate
                print(f"maskgate turnstile: health: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def fields(self) -> tuple[dict, list[float], float]:
        """The health message's own fields (the site link adds the spool and the targets)."""
        app = self._app
        now = time.monotonic()
        with self._lock:
            latencies, self._latencies = self._latencies, []
            frames = app.summary.frames
            fps = (frames - self._frames_then) / max(now - self._then, 1e-6)
            self._frames_then, self._then = frames, now
        stream, stats = app.stream, app.stream.stats
        since = stream.seconds_since_frame()
        problems = [p for p in (app.events_problem(),) if p]
        if stream.stalled:
            problems.insert(0, f"{stream.target}: no frame for {since if since is not None else 0:.1f} s (stalled)")
        p50, p90 = np.percentile(latencies, [50, 90]) if latencies else (None, None)
        status = "stalled" if stream.stalled else "connecting" if stream.live and since is None else "online"
        return ({"status": status, "fps": round(fps, 2),
                 "latency_ms": {"p50": None if p50 is None else round(float(p50), 2),
                                "p90": None if p90 is None else round(float(p90), 2)},
                 "frames": frames, "seconds_since_frame": None if since is None else round(since, 2),
                 "dropped": stats.dropped, "reconnects": stats.reconnects, "stalls": stats.stalls,
                 "detector_skipped": app.reuse_stats.detector_skipped,
                 "verdicts_reused": app.reuse_stats.verdicts_reused,
                 "passages": app.summary.passages, "state": app.machine.state.value,
                 "events_unwritten": app.events_unwritten(), "problems": problems}, latencies, fps)

    def report(self, *, first: bool = False) -> None:
        app = self._app
        fields, latencies, fps = self.fields()
        runtime = None
        if app.pipeline is not None and getattr(app.pipeline, "selections", None):
            runtime = {role: sel.describe_runtime() for role, sel in app.pipeline.selections.items()}
        site = app.site.health(fields, stream_stats=app.stream.stats, runtime=runtime) if app.site else ""
        if self._heartbeat is not None:
            self._heartbeat.write(app, fields)
        if first:
            return  # the first one goes to the site only
        stalled = f"STALLED ({fields['problems'][0]}), " if fields["status"] == "stalled" else ""
        timing = (f"latency p50 {fields['latency_ms']['p50']:.1f} ms p90 {fields['latency_ms']['p90']:.1f} ms"
                  if latencies else "no frames")
        unwritten = f", EVENTS NOT WRITTEN {fields['events_unwritten']}" if fields["events_unwritten"] else ""
        print(f"health: {stalled}{fps:.1f} fps, {timing}, dropped {fields['dropped']}, reconnects "
              f"{fields['reconnects']}, detector skipped {fields['detector_skipped']}, verdicts reused "
              f"{fields['verdicts_reused']}, passages {fields['passages']}, state {fields['state']}{unwritten}{site}",
              file=sys.stderr, flush=True)
