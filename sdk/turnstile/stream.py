"""Frames for the turnstile: a camera index, a video file, or an RTSP/HTTP stream.

Live sources (cameras and URLs) are read by a grabber thread that keeps only the newest
frame, so the gate always judges what the camera sees now; frames it overwrote before
they were judged are counted as dropped. When a live source stops delivering, it is
reopened with exponential backoff. A source that keeps its connection open but sends
nothing is stalled once ``stall_s`` has passed without a frame: ``frames()`` says so (a
``None`` frame, once per stall) so the gate can shut, and the source is reopened (a
reconnect): a URL's read gives up after ``stall_s`` (FFmpeg's read timeout); a read that
hangs longer than that is left to end by itself and a new connection made beside it. A
file is read frame by frame (nothing dropped), and one that ends before the frame count its
header promises is reported as truncated.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..config.turnstile import StreamOptions  # noqa: F401  ([turnstile.stream])
from ..errors import SourceError
from ..native_calls import inside
from ..sources import open_capture, truncation

log = logging.getLogger(__name__)


def is_live(target: str) -> bool:
    return bool(re.fullmatch(r"\d+", target) or re.match(r"(rtsp|rtsps|http|https|rtmp|udp|tcp)://", target, re.I))


@dataclass
class StreamStats:
    frames: int = 0  # frames handed to the pipeline
    dropped: int = 0  # live frames overwritten by a newer one before they were judged
    reconnects: int = 0
    stalls: int = 0  # times a live source went stall_s without a frame
    truncated: str | None = None  # a file that ended early: what was expected


@dataclass
class FrameStream:
    """Iterate ``frames()`` for (time in seconds, BGR frame), or (time, None) when a live
    source has stalled; ``stop()`` ends it from any thread."""

    target: str
    options: StreamOptions = field(default_factory=StreamOptions)
    stats: StreamStats = field(default_factory=StreamStats)

    def __post_init__(self):
        self.live = is_live(self.target)
        self._stop = threading.Event()
        self.fps: float | None = None
        self.last_frame_at: float | None = None  # time.monotonic() of the newest frame from the source
        self.stalled = False  # a live source is past stall_s without a frame
        if not self.live and not Path(self.target).is_file():
            raise SourceError(f"{self.target}: no such video file (give a video, a camera index or an rtsp:// / "
                              "http:// URL)")

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def seconds_since_frame(self) -> float | None:
        return None if self.last_frame_at is None else time.monotonic() - self.last_frame_at

    def frames(self) -> Iterator[tuple[float, np.ndarray | None]]:
        yield from (self._live() if self.live else self._file())

    # -- a video file: every frame, stream time from its frame rate --------------------------
    def _file(self) -> Iterator[tuple[float, np.ndarray]]:
        cap = open_capture(self.target, name=self.target, decode_threads=self.options.decode_threads)
        try:
            if not cap.isOpened():
                raise SourceError(f"{self.target}: not a video OpenCV can open (corrupt, or an unknown format)")
            fps = cap.get(cv2.CAP_PROP_FPS)
            self.fps = fps if fps and fps > 0 else 25.0
            promised = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            index = 0
            while not self._stop.is_set():
                ok, frame = cap.read()
                if not ok:
                    break
                self.stats.frames += 1
                self.last_frame_at = time.monotonic()
                yield index / self.fps, frame
                index += 1
            if not self._stop.is_set():
                if index == 0:
                    raise SourceError(f"{self.target}: opened, but no frame could be read (empty or corrupt)")
                self.stats.truncated = truncation(index, promised)
        finally:
            cap.release()

    # -- a camera or a URL: newest frame only, reconnecting ------------------------------------
    def _open(self) -> cv2.VideoCapture | None:
        source = int(self.target) if self.target.isdigit() else self.target
        try:
            return open_capture(source, name=self.target, read_timeout_s=self.options.stall_s,
                                decode_threads=self.options.decode_threads)
        except SourceError as exc:
            log.warning("%s", exc)
            return None

    def _live(self) -> Iterator[tuple[float, np.ndarray | None]]:
        options = self.options
        reconnect = options.reconnect is not False
        latest: dict = {}
        lock, fresh = threading.Lock(), threading.Event()
        start = time.monotonic()
        failures: list[str] = []
        generation = [0]  # a grabber whose generation is not the current one was left behind: it stops
        reading_since: dict[int, float] = {}  # generation -> when its current read() began

        def grab(mine: int) -> None:
            backoff = options.first_backoff_s
            attempts = 0
            current = lambda: generation[0] == mine and not self._stop.is_set()  # noqa: E731
            while current():
                cap = self._open()
                delivered = False
                if cap is not None and cap.isOpened():
                    while current():
                        reading_since[mine] = time.monotonic()
                        with inside(f"reading {self.target}"):
                            ok, frame = cap.read()
                        reading_since.pop(mine, None)
                        if not ok or not current():
                            break
                        if not delivered:  # a working connection: the backoff and the count start over
                            delivered, backoff, attempts = True, options.first_backoff_s, 0
                        with lock:
                            if latest.get("unread"):
                                self.stats.dropped += 1
                            latest.update(frame=frame, time=time.monotonic() - start, unread=True)
                            self.last_frame_at = time.monotonic()
                        fresh.set()
                if cap is not None:
                    with inside(f"closing {self.target}"):
                        cap.release()
                if not current():
                    break
                attempts += 1
                if not reconnect or (options.max_reconnects is not None and attempts > options.max_reconnects):
                    failures.append(f"{self.target}: the source stopped delivering frames"
                                    + (f" and {attempts - 1} reconnection(s) failed" if reconnect else ""))
                    break
                self.stats.reconnects += 1
                log.warning("%s: no frames; reconnecting in %.1f s (attempt %d)", self.target, backoff, attempts)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, options.max_backoff_s)
            fresh.set()

        def launch() -> threading.Thread:
            thread = threading.Thread(target=grab, args=(generation[0],), name="maskgate-grabber", daemon=True)
            thread.start()
            return thread

        grabber = launch()
        waited_from: float | None = None  # the last frame; None before the first (connecting is not a stall)
        try:
            while not self._stop.is_set():
                if not fresh.wait(min(0.25, options.stall_s)):
                    if not grabber.is_alive() and failures:
                        break
                    now = time.monotonic()
                    hung = reading_since.get(generation[0])
                    if hung is not None and now - hung > options.stall_s + 1.0:
                        # A read that outlives its own timeout: a new connection now, the old grabber left
                        # to end by itself (its frames are not taken).
                        generation[0] += 1
                        self.stats.reconnects += 1
                        log.warning("%s: a read gave nothing for %.1f s; reconnecting", self.target, now - hung)
                        grabber = launch()
                    if not self.stalled and waited_from is not None and now - waited_from >= options.stall_s:
                        self.stalled = True
                        self.stats.stalls += 1
                        log.warning("%s: no frame for %.1f s: stalled, the gate is shut until frames come back",
                                    self.target, now - waited_from)
                        yield now - start, None
                    continue
                with lock:
                    fresh.clear()
                    if not latest.get("unread"):
                        if not grabber.is_alive() and failures:
                            break
                        continue
                    latest["unread"] = False
                    frame, at = latest["frame"], latest["time"]
                if self.stalled and waited_from is not None:  # a stall is only declared after a frame
                    log.warning("%s: frames again after %.1f s", self.target, time.monotonic() - waited_from)
                    self.stalled = False
                waited_from = time.monotonic()
                self.stats.frames += 1
                yield at, frame
            if failures and not self._stop.is_set():
                raise SourceError(failures[0])
        finally:
            self._stop.set()
            grabber.join(timeout=2.0)
