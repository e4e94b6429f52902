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
    frame, as a live camera with nobody in front of it, until the stream is closed.
    Yields (url, release)."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", frame)[1].tobytes())
    capture.release()
    release, closing = threading.Event(), threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for index, jpeg in enumerate(frames):
                if index == pause_after:
                    release.wait(600)
                try:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                     % (len(jpeg), jpeg))
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1.0 / fps)
            if hold_at_end:
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
