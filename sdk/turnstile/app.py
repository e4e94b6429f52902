"""The turnstile app: frames -> pipeline -> gate decision -> the gate acts, one summary per passage.

Events are JSON lines (``--events FILE``, ``maskgate.turnstile.eventlog``), written as they
happen: ``gate`` the moment the smoothed decision first says OPEN (the relay's cue, once per
passage) or refuses for a new reason (the display's cue), with the frame, the reason, and
what ran each model; ``passage`` when the person has left (time, decision, mask
probability, yaw class, per-stage latency); ``error`` (a source that cannot be read, a
truncated video) and a final ``stop`` with the run's totals. ``on_gate`` (the relay) is
called before any of a gate event is written or printed. A health message goes out on its
own timer every ``health_every_s`` (``maskgate.turnstile.health``), frames or not: a live
source that stalls shuts the gate (``GateStateMachine.blind``) and shows as ``stalled``.
With ``publish`` every event also goes to the site (MQTT, webhooks) through a durable spool,
with a retained health message; with ``metrics_port`` Prometheus metrics are served
(``maskgate.turnstile.site``). Nothing the disk does stops the gate: a full or read-only
disk, a damaged spool are said once, counted, and the gate decides on. SIGINT / SIGTERM end
the run cleanly: the open passage is closed, the event file finished, the video finalised.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..config.turnstile import TurnstileConfig
from ..errors import MaskGateError
from .decision import (
    Decision,
    GateEvent,
    GateStateMachine,
    Observation,
    Passage,
    choose_person_at_gate,
    observe,
)
from .eventlog import EventLog
from .events import event_record
from .follow import BuildsFollower, resolved, slot_release
from .health import HealthReporter
from .reuse import FrameReuse, ReuseStats
from .stream import FrameStream

if TYPE_CHECKING:
    from .site import SiteLink


def _say(message: str) -> None:
    print(f"maskgate turnstile: {message}", file=sys.stderr, flush=True)


DECISION_COLOURS = {Decision.OPEN: (0, 200, 0), Decision.NO_MASK: (0, 0, 255),
                    Decision.LOOK_AT_CAMERA: (0, 200, 255), Decision.CANNOT_CHECK: (255, 0, 255),
                    Decision.NO_FACE: (160, 160, 160)}


@dataclass
class RunSummary:
    frames: int = 0
    passages: int = 0
    decisions: dict = field(default_factory=dict)  # decision -> passages
    opened: int = 0  # gate "open" events
    refused: int = 0  # gate "refuse" events
    dropped: int = 0
    reconnects: int = 0
    stalls: int = 0  # times a live source went stall_s without a frame
    errors: list = field(default_factory=list)
    stopped_by: str | None = None  # end_of_stream, max_frames, error, stop, or a signal name (SIGINT, SIGTERM)
    seconds: float = 0.0
    events_unwritten: int = 0  # events the --events file could not take
    unspooled: int = 0  # events the site spool could not keep
    detector_skipped: int = 0  # frames the still check answered without the detector ([turnstile] reuse)
    verdicts_reused: int = 0  # frames whose person's verdicts came from the track

    def to_dict(self) -> dict:
        return asdict(self)


class TurnstileApp:
    def __init__(self, config: TurnstileConfig, *, pipeline=None, on_gate=None, on_passage=None, on_event=None):
        """``pipeline``: an opened ``maskgate.Pipeline`` (default: from ``config.builds``, each model
        on the best build and device); ``on_gate``: called with each ``GateEvent`` the moment
        the gate acts, before the event is written anywhere (drive the relay and the display
        here); ``on_passage``: called with each ``Passage`` summary once the person has left;
        ``on_event``: called with every event record as written to ``config.events``
        (``maskgate.turnstile.events``)."""
        if config.source is None:
            raise MaskGateError("the turnstile needs a source: a camera index, a video, or an rtsp:// / http:// URL")
        self.config = config
        self.stream = FrameStream(config.source, config.stream)
        self.pipeline = pipeline
        self._on_gate = on_gate
        self._on_passage = on_passage
        self._on_event = on_event
        self._stream_time: float | None = None  # of the last frame read
        self._failed = False
        self._stopped_by: str | None = None
        self._events: EventLog | None = None
        self._video: cv2.VideoWriter | None = None
        self.site: SiteLink | None = None
        self._health: HealthReporter | None = None
        self.machine = GateStateMachine(config.rules)
        self.running_builds: Path | None = None  # the folder the pipeline's models came from
        self._follower: BuildsFollower | None = None
        self._inference = threading.Lock()  # held around each frame's models: a swap waits for the frame
        self._swapped: list[dict] = []
        self.summary = RunSummary()
        self.reuse: FrameReuse | None = None  # made per pipeline: verdicts of other models are not reused
        self.reuse_stats = ReuseStats()  # over the run, across pipelines

    def _open_pipeline(self, folder):
        from maskgate.runtimes.trust import configured_trust

        from ..pipeline import Pipeline

        trust = configured_trust(verify_key=self.config.verify_key,
                                 allow_failed_builds=self.config.allow_failed_builds)
        return Pipeline.from_builds(folder, prefer=self.config.prefer, threads=self.config.threads, trust=trust,
                                    profile=self.config.profile)

    def _swap_pipeline(self, folder, pipeline) -> None:
        """From the follower's thread: the new set in place between two frames."""
        with self._inference:
            old, self.pipeline, self.running_builds = self.pipeline, pipeline, folder
        old.close()
        runtime = {role: sel.describe_runtime() for role, sel in (getattr(pipeline, "selections", None) or {}).items()}
        self._swapped.append({"builds": str(folder), "release": slot_release(folder), "runtime": runtime or None})
        _say(f"now running the models in {folder} (release {slot_release(folder) or 'unknown'})")

    def _emit_swaps(self) -> None:
        """The 'models' events of swaps made since the last frame, written from the frame loop."""
        while self._swapped:
            self._emit("models", self._stream_time, self._swapped.pop(0))

    def models_problem(self) -> str | None:
        """Why the set the builds pointer names is not the one running (it failed to open), or None."""
        return self._follower.problem if self._follower is not None else None

    def stop(self, reason: str = "stop") -> None:
        """End the run from any thread (or a signal handler): the current frame finishes."""
        self._stopped_by = self._stopped_by or reason
        self.stream.stop()

    def events_unwritten(self) -> int:
        return self._events.unwritten if self._events is not None else 0

    def events_problem(self) -> str | None:
        return self._events.problem if self._events is not None else None

    def run(self) -> RunSummary:
        from ..memory import steady_memory

        steady_memory()  # hours of frames: keep per-frame buffers off the fragmenting heap
        # A frame's image work (letterbox, thumbnails, crops) is small: OpenCV's thread pool spent
        # 0.76 ms more CPU a frame on it here (2 cores) for the same wall time, CPU the networks need.
        cv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        start = time.monotonic()
        restore = self._install_signal_handlers()
        owns_pipeline = self.pipeline is None
        try:
            if self.config.events is not None:
                self._events = EventLog(self.config.events, say=_say)
            from .site import SiteLink

            site = self.site = SiteLink(self.config)
            if self.pipeline is None:
                running = self.running_builds = resolved(self.config.builds)  # a pointer's folder, never the link
                self.pipeline = self._open_pipeline(running)
                self._follower = BuildsFollower(self.config.builds, running, open_pipeline=self._open_pipeline,
                                                swap=self._swap_pipeline, say=_say).start()
            site.watch(self.stream)
            health = self._health = HealthReporter(self, every_s=self.config.health_every_s).start()
            self._loop(health, site)
        except MaskGateError as exc:
            self._failed = True
            self._error(str(exc))
        finally:
            if self._follower is not None:
                self._follower.stop()
            self._emit_swaps()
            if self._health is not None:
                self._health.stop()
            passage = self.machine.finish()
            if passage is not None:
                self._emit_passage(passage)
            stats = self.stream.stats
            self.summary.dropped, self.summary.reconnects, self.summary.stalls = (stats.dropped, stats.reconnects,
                                                                                  stats.stalls)
            self.summary.stopped_by = self._stopped_by or ("error" if self._failed else "end_of_stream")
            self.summary.seconds = round(time.monotonic() - start, 3)
            self.summary.events_unwritten = self.events_unwritten()
            self.summary.unspooled = self.site.unspooled() if self.site is not None else 0
            self.summary.detector_skipped = self.reuse_stats.detector_skipped
            self.summary.verdicts_reused = self.reuse_stats.verdicts_reused
            self._emit("stop", self._stream_time, self.summary.to_dict())
            if self.site is not None:
                self.site.close(self.summary.stopped_by)
            if self._video is not None:
                self._video.release()
            if self._events is not None:
                self._events.close()
            if owns_pipeline and self.pipeline is not None:
                self.pipeline.close()
            restore()
            cv2.setNumThreads(cv_threads)
        return self.summary

    # -- the loop -----------------------------------------------------------------------------
    def _loop(self, health: HealthReporter, site: SiteLink) -> None:
        choose = choose_person_at_gate(rules=self.config.rules, roi=self.config.roi)
        reused_for = None
        for index, (at, frame) in enumerate(self.stream.frames()):
            self._emit_swaps()
            self._stream_time = at
            if frame is None:  # the source stalled: nobody can be checked until frames come back
                since = self.stream.seconds_since_frame()
                reason = f"the camera stream stalled (no frame for {since or self.config.stream.stall_s:.1f} s)"
                self._emit_all(self.machine.blind(at, reason))
                continue
            timings: dict = {}
            began = time.perf_counter()
            with self._inference:
                if self.config.reuse and self.pipeline is not reused_for:  # first frame, or new models
                    self.reuse = FrameReuse(self.config.reuse_rules, stats=self.reuse_stats)
                    reused_for = self.pipeline
                if self.reuse is not None:
                    faces = self.reuse(self.pipeline, frame, choose=choose, timings=timings)
                else:
                    faces = self.pipeline(frame, timings=timings, classify=choose)
            latency = (time.perf_counter() - began) * 1e3
            health.frame(latency)
            site.frame(latency, timings)
            obs = observe(faces, rules=self.config.rules, time=at, roi=self.config.roi, stages_ms=timings, frame=index)
            if self.reuse is not None:
                self.reuse.observed(obs)
            self._emit_all(self.machine.update(obs))
            if self.config.video_out is not None:
                self._write_video(frame, faces, obs)
            self.summary.frames += 1
            if self.config.max_frames is not None and self.summary.frames >= self.config.max_frames:
                self.stop("max_frames")
        if self.stream.stats.truncated:
            self._error(f"{self.config.source}: truncated or corrupt video: {self.stream.stats.truncated}")

    def _emit_all(self, events) -> None:
        for event in events:
            if isinstance(event, GateEvent):
                self._emit_gate(event)
            else:
                self._emit_passage(event)

    def _emit_gate(self, gate: GateEvent) -> None:
        # The relay first: nothing of this event is written, spooled or printed before it.
        if self._on_gate is not None:
            try:
                self._on_gate(gate)
            except Exception as exc:  # the app's callback failing must not stop the gate's record
                self._error(f"on_gate callback failed: {type(exc).__name__}: {exc}")
        if gate.action == "open":
            self.summary.opened += 1
        else:
            self.summary.refused += 1
        self._emit("gate", gate.time, gate.to_dict())
        if self.site is not None:
            self.site.gate(gate.action)

    def _emit_passage(self, passage: Passage) -> None:
        self.summary.passages += 1
        key = passage.decision.value
        self.summary.decisions[key] = self.summary.decisions.get(key, 0) + 1
        self._emit("passage", passage.end, passage.to_dict())
        if self.site is not None:
            self.site.passage(key)
        if self._on_passage is not None:
            self._on_passage(passage)

    def _error(self, message: str) -> None:
        self.summary.errors.append(message)
        self._emit("error", self._stream_time, {"message": message})
        _say(message)

    # -- outputs ------------------------------------------------------------------------------
    def _emit(self, kind: str, stream_time: float | None, fields: dict) -> None:
        record = event_record(kind, stream_time=stream_time, **fields)
        if self.site is not None:  # on disk in the spool first: the file then names its id and seq
            record = self.site.event(record)
        if self._events is not None:
            self._events.write(record)  # a disk that refuses it is counted and said once; the gate goes on
        if self._on_event is not None:
            self._on_event(record)

    def _write_video(self, frame: np.ndarray, faces, obs: Observation) -> None:
        from ..draw import annotate

        out = annotate(frame, faces)
        if self.config.roi is not None:
            x, y, w, h = self.config.roi
            cv2.rectangle(out, (x, y), (x + w, y + h), (255, 255, 255), 1)
        state = self.machine.state
        cv2.putText(out, state.value, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, DECISION_COLOURS[state], 2)
        if self._video is None and self.config.video_out is not None:
            self.config.video_out.parent.mkdir(parents=True, exist_ok=True)
            fps = self.stream.fps or 15.0
            writer = cv2.VideoWriter(str(self.config.video_out), cv2.VideoWriter.fourcc(*"mp4v"), fps,
                                     (out.shape[1], out.shape[0]))
            if not writer.isOpened():
                raise MaskGateError(f"{self.config.video_out}: cannot write a video here (mp4v)")
            self._video = writer
        if self._video is not None:
            self._video.write(out)

    def _install_signal_handlers(self):
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, lambda signum, _frame: self.stop(signal.Signals(signum).name))

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore
