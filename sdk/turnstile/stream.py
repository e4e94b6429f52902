"""Frames for the turnstile: a camera index, a video file, or an RTSP/HTTP stream.

Live sources (cameras and URLs) are read by a grabber thread that keeps only the newest
frame, so the gate always judges what the camera sees now; frames it overwrote before
they were judged are counted as dropped. When a live source stops delivering, it is
reopened with exponential backoff. A file is read frame by frame (nothing dropped), and
one that ends before the frame count its header promises is reported as truncated.
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
from ..sources import truncation

log = logging.getLogger(__name__)


def is_live(target: str) -> bool:
    return bool(re.fullmatch(r"\d+", target) or re.match(r"(rtsp|rtsps|http|https|rtmp|udp|tcp)://", target, re.I))


@dataclass
class StreamStats:
    frames: int = 0  # frames handed to the pipeline
    dropped: int = 0  # live frames overwritten by a newer one before they were judged
    reconnects: int = 0
    truncated: str | None = None  # a file that ended early: what was expected


@dataclass
class FrameStream:
    """Iterate ``frames()`` for (time in seconds, BGR frame); ``stop()`` ends it from any thread."""

    target: str
    options: StreamOptions = field(default_factory=StreamOptions)
    stats: StreamStats = field(default_factory=StreamStats)

    def __post_init__(self):
        self.live = is_live(self.target)
        self._stop = threading.Event()
        self.fps: float | None = None
        if not self.live and not Path(self.target).is_file():
            raise SourceError(f"{self.target}: no such video file (give a video, a camera index or an rtsp:// / "
                              "http:// URL)")

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        yield from (self._live() if self.live else self._file())

    # -- a video file: every frame, stream time from its frame rate --------------------------
    def _file(self) -> Iterator[tuple[float, np.ndarray]]:
        cap = cv2.VideoCapture(self.target)
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
                yield index / self.fps, frame
                index += 1
            if not self._stop.is_set():
                if index == 0:
                    raise SourceError(f"{self.target}: opened, but no frame could be read (empty or corrupt)")
                self.stats.truncated = truncation(index, promised)
        finally:
            cap.release()

    # -- a camera or a URL: newest frame only, reconnecting ------------------------------------
    def _open(self) -> cv2.VideoCapture:
        source = int(self.target) if self.target.isdigit() else self.target
        return cv2.VideoCapture(source)

    def _live(self) -> Iterator[tuple[float, np.ndarray]]:
        reconnect = self.options.reconnect is not False
        latest: dict = {}
        lock, fresh = threading.Lock(), threading.Event()
        start = time.monotonic()
        failures: list[str] = []

        def grab() -> None:
            backoff = self.options.first_backoff_s
            attempts = 0
            while not self._stop.is_set():
                cap = self._open()
                delivered = False
                if cap.isOpened():
                    while not self._stop.is_set():
                        ok, frame = cap.read()
                        if not ok:
                            break
                        if not delivered:  # a working connection: the backoff and the count start over
                            delivered, backoff, attempts = True, self.options.first_backoff_s, 0
                        with lock:
                            if latest.get("unread"):
                                self.stats.dropped += 1
                            latest.update(frame=frame, time=time.monotonic() - start, unread=True)
                        fresh.set()
                cap.release()
                if self._stop.is_set():
                    break
                attempts += 1
                if not reconnect or (
                    self.options.max_reconnects is not None and attempts > self.options.max_reconnects
                ):
                    failures.append(f"{self.target}: the source stopped delivering frames"
                                    + (f" and {attempts - 1} reconnection(s) failed" if reconnect else ""))
                    break
                self.stats.reconnects += 1
                log.warning("%s: no frames; reconnecting in %.1f s (attempt %d)", self.target, backoff, attempts)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.options.max_backoff_s)
            fresh.set()

        grabber = threading.Thread(target=grab, name="maskgate-grabber", daemon=True)
        grabber.start()
        try:
            while not self._stop.is_set():
                if not fresh.wait(self.options.stall_s):
                    if not grabber.is_alive():
                        break
                    continue  # a reconnect in progress: keep waiting
                with lock:
                    fresh.clear()
                    if not latest.get("unread"):
                        if not grabber.is_alive():
                            break
                        continue
                    latest["unread"] = False
                    frame, at = latest["frame"], latest["time"]
                self.stats.frames += 1
                yield at, frame
            if failures and not self._stop.is_set():
                raise SourceError(failures[0])
        finally:
            self._stop.set()
            grabber.join(timeout=2.0)
