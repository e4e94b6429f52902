"""A camera for app tests: the frames of a video served as a live MJPEG stream over HTTP on
127.0.0.1, at a set pace, able to hold back frames until the test lets them go."""
from __future__ import annotations

import contextlib
import http.server
import threading
import time
from pathlib import Path

HOLD, GAP, FPS = 10, 8, 10.0  # the test video: frames per person, empty frames between people


@contextlib.contextmanager
def paced_http_stream(video: Path, *, fps: float, pause_after: int | None = None, hold_at_end: bool = False):
    """Serve ``video`` as an MJPEG stream (as IP cameras do), ``fps`` frames a second. After
    ``pause_after`` frames the server sends nothing more (the connection stays open) until
    ``release`` is set; with ``hold_at_end`` it keeps the connection open after the last
    frame, as a live camera with nobody in front of it, until the stream is closed. A client
    that reconnects gets the frames from where the stream is, as from a live camera.
    Yields (url, release)."""
    import cv2

    from maskgate.sources import iter_frames

    frames = [cv2.imencode(".jpg", frame.image)[1].tobytes() for frame in iter_frames(str(video))]
    release, closing = threading.Event(), threading.Event()
    # A live camera: a new connection (the app reconnecting after a stall) goes on from the
    # frame the stream is at, never from the start; an older connection stops sending.
    live = {"next": 0, "latest": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            with lock:
                live["latest"] += 1
                me = live["latest"]
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            while True:
                with lock:
                    index = live["next"]
                if index >= len(frames) or live["latest"] != me:
                    break
                if index == pause_after:
                    release.wait(600)
                    if live["latest"] != me:
                        return
                jpeg = frames[index]
                try:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                     % (len(jpeg), jpeg))
                    self.wfile.flush()
                except OSError:
                    return
                with lock:
                    if live["latest"] == me:
                        live["next"] = index + 1
                time.sleep(1.0 / fps)
            if hold_at_end and live["latest"] == me:
                closing.wait(900)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/stream.mjpg", release
    finally:
        release.set()
        closing.set()
        server.shutdown()
        server.server_close()
