"""A stalled source is noticed (issue 29, line 2): a real HTTP MJPEG camera that stops sending
bytes but keeps its socket open, and a real RTSP server on 127.0.0.1 (GStreamer) that is
killed and restarted. Within stall_s the stream says so, the grabber reopens it (a
reconnect), the gate is shut (CANNOT_CHECK, never the last decision), the health message goes
out on its own timer with status "stalled", the retained MQTT health says so, and a
Prometheus gauge shows the seconds since the last frame."""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from maskgate.turnstile import FrameStream, StreamOptions
from tests.conftest import ROOT
from tests.streams import paced_http_stream
from tests.strict_skips import missing
from tests.test_publish import broker as broker  # noqa: F401 (the broker fixture)

SYSTEM_PYTHON = "/usr/bin/python3"


def _clip(path: Path, frames: int = 60) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (320, 240))
    for i in range(frames):
        writer.write(np.full((240, 320, 3), (i * 4) % 256, np.uint8))
    writer.release()
    return path


def _read(stream: FrameStream, until, timeout_s: float) -> list:
    """(monotonic time, frame or None) from the stream until ``until(seen)`` or the timeout."""
    seen: list = []
    watchdog = threading.Timer(timeout_s, stream.stop)  # ends the stream even if it yields nothing more
    watchdog.start()
    try:
        for _, frame in stream.frames():
            seen.append((time.monotonic(), frame))
            if until(seen):
                stream.stop()
    finally:
        watchdog.cancel()
    return seen


def test_an_http_camera_that_goes_silent_is_stalled_within_stall_s_and_reopened(tmp_path):
    video = _clip(tmp_path / "clip.avi")
    with paced_http_stream(video, fps=20, pause_after=15) as (url, release):
        stream = FrameStream(url, StreamOptions(stall_s=1.0, first_backoff_s=0.1, max_backoff_s=0.2))
        seen = _read(stream, lambda s: s[-1][1] is None, 30)
    frames = [t for t, frame in seen if frame is not None]
    stall = [t for t, frame in seen if frame is None]
    assert len(frames) >= 5 and len(stall) == 1, (len(frames), len(stall))
    assert 0.9 <= stall[0] - frames[-1] <= 2.5, stall[0] - frames[-1]  # within stall_s of the last frame
    assert stream.stats.stalls == 1 and stream.stalled


def test_the_grabber_reopens_a_silent_connection_and_frames_come_back(tmp_path):
    video = _clip(tmp_path / "clip.avi")
    with paced_http_stream(video, fps=20, pause_after=15) as (url, release):
        stream = FrameStream(url, StreamOptions(stall_s=1.0, first_backoff_s=0.1, max_backoff_s=0.2))
        stalled_at: list[float] = []

        def talk_again() -> None:
            time.sleep(1.5)  # past the read timeout: the silent connection has been given up
            release.set()  # the camera talks again: a new connection gets every frame

        def until(seen) -> bool:
            if seen[-1][1] is None:
                stalled_at.append(seen[-1][0])
                threading.Thread(target=talk_again, daemon=True).start()
            return bool(stalled_at) and seen[-1][1] is not None and seen[-1][0] - stalled_at[0] > 2.0

        seen = _read(stream, until, 40)
    after = [frame for t, frame in seen if stalled_at and t > stalled_at[0] and frame is not None]
    assert after and stream.stats.reconnects >= 1 and not stream.stalled, stream.stats


# -- the real RTSP camera ---------------------------------------------------------------------------

def _rtsp_missing() -> str | None:
    if not Path(SYSTEM_PYTHON).is_file():
        return f"{SYSTEM_PYTHON} is not there (Debian's python3 with python3-gi)"
    done = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                           "from gi.repository import GstRtspServer"], capture_output=True, text=True)
    if done.returncode != 0:
        return ("GStreamer's RTSP server is not installed (apt-get install gstreamer1.0-rtsp "
                "gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good)")
    return None


class RtspCamera:
    def __init__(self):
        from mosquitto import free_port

        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/gate"
        self.process: subprocess.Popen | None = None

    def start(self) -> RtspCamera:
        self.process = subprocess.Popen([SYSTEM_PYTHON, str(ROOT / "tests" / "rtsp_server.py"), str(self.port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        assert line.strip() == "ready", self.process.stderr.read()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def rtsp_camera():
    import sys

    sys.path.insert(0, str(ROOT / "examples" / "site"))
    why = _rtsp_missing()
    if why:
        missing("the RTSP server", why)
    camera = RtspCamera().start()
    yield camera
    camera.kill()


def test_an_rtsp_camera_killed_and_restarted_is_stalled_then_back(rtsp_camera):
    stream = FrameStream(rtsp_camera.url, StreamOptions(stall_s=1.5, first_backoff_s=0.2, max_backoff_s=0.5))
    marks: dict = {}

    def until(seen) -> bool:
        t, frame = seen[-1]
        frames = sum(f is not None for _, f in seen)
        if "killed" not in marks and frames >= 10:
            rtsp_camera.kill()
            marks["killed"] = t
        elif "killed" in marks and frame is None and "stalled" not in marks:
            marks["stalled"] = t
            rtsp_camera.start()
        elif "stalled" in marks and frame is not None:
            marks.setdefault("back", t)
        return "back" in marks and t - marks["back"] > 0.5

    seen = _read(stream, until, 60)
    assert {"killed", "stalled", "back"} <= set(marks), marks
    assert marks["stalled"] - marks["killed"] <= 1.5 + 1.5, marks  # within stall_s (plus a frame's slack)
    assert stream.stats.stalls == 1 and stream.stats.reconnects >= 1 and not stream.stalled
    assert sum(f is not None for t, f in seen if t > marks["back"]) >= 3


# -- the whole app: the gate shut, health, MQTT and metrics ---------------------------------------------

@pytest.mark.shared_data
def test_the_app_on_a_silent_camera_shuts_the_gate_and_tells_the_site(gate_builds, gate_video, broker, tmp_path):
    from mosquitto import free_port
    from prometheus_client.parser import text_string_to_metric_families

    from tests.streams import FPS, GAP, HOLD
    from tests.test_site import records, start_app, stop, wait_until

    video, labels = gate_video
    port = free_port()
    config = tmp_path / "site.toml"
    config.write_text("[turnstile.stream]\nstall_s = 1.5\n")
    events = tmp_path / "events.jsonl"
    # The camera goes silent in the middle of the first unmasked person's time at the gate: the
    # gate has refused them (NO_MASK) and must now say it cannot check, never keep that decision.
    first = next(i for i, person in enumerate(labels) if person["label"] == "without_mask")
    pause = GAP + first * (HOLD + GAP) + HOLD // 2 + 2
    import paho.mqtt.subscribe as subscribe

    with paced_http_stream(video, fps=FPS, pause_after=pause) as (url, release):
        proc = start_app(url, gate_builds, tmp_path, "--config", str(config), "--publish", broker.url,
                         "--metrics-port", str(port), "--health-every", "0.5")
        try:
            wait_until(lambda: any(r["event"] == "passage" and r["decision"] == "CANNOT_CHECK" and
                                   "stalled" in r["reason"] for r in records(events)), 600,
                       "a passage ended by the stall", proc)
            refusals = [r for r in records(events) if r["event"] == "gate" and r["decision"] == "CANNOT_CHECK"]
            assert refusals and "stalled" in refusals[-1]["reason"]  # the display's cue: cannot check
            health = json.loads(subscribe.simple("maskgate/hq/gate-1/health", hostname="127.0.0.1",
                                                 port=broker.port, retained=True).payload)
            deadline = time.monotonic() + 10
            while health["status"] != "stalled" and time.monotonic() < deadline:  # the next period's message
                time.sleep(0.5)
                health = json.loads(subscribe.simple("maskgate/hq/gate-1/health", hostname="127.0.0.1",
                                                     port=broker.port, retained=True).payload)
            assert health["status"] == "stalled" and health["seconds_since_frame"] >= 1.5, health
            assert health["state"] == "CANNOT_CHECK" and health["stalls"] >= 1 and health["problems"], health
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
            assert values["maskgate_stream_stalled"] == 1 and values["maskgate_seconds_since_last_frame"] >= 1.5
            time.sleep(1.0)
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            later = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
            assert later["maskgate_seconds_since_last_frame"] > values["maskgate_seconds_since_last_frame"]
            release.set()
            wait_until(lambda: sum(r["event"] == "passage" for r in records(events)) >= 3, 600, "passages again",
                       proc)
        finally:
            err = stop(proc)
    got = records(events)
    stalled = next(i for i, r in enumerate(got) if r["event"] == "gate" and "stalled" in r.get("reason", ""))
    # No decision of the frames before the stall was carried over: the next gate event comes from new frames.
    assert all(r["decision"] != "OPEN" or r["stream_time"] > got[stalled]["stream_time"] for r in got[stalled:]
               if r["event"] == "gate")
    assert "STALLED" in err and "reconnect" in err, err[-3000:]
    stop_event = got[-1]
    assert stop_event["event"] == "stop" and stop_event["stalls"] >= 1 and stop_event["reconnects"] >= 1
