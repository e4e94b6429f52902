"""A command that ends while a camera open is still inside OpenCV exits with its own status.

The CI run that found it: `maskgate turnstile` stopped by SIGTERM while the grabber's reopen of
a stalled HTTP camera was inside FFmpeg; the open came back while the interpreter was
finalizing, the thread was ended by pthread_exit inside OpenCV's C++ frames, and the process
died with SIGABRT ("terminate called without an active exception") after all its work was done.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading

import pytest

# The child stands in for a command: a grabber thread opens a camera that never answers
# (1.5 s open timeout), the command's work ends at 0.3 s, and a cycle with a slow __del__
# makes the interpreter's last collection, after it is marked finalizing, take 3 s, as a
# teardown of torch, onnxruntime and OpenVINO can: the open comes back inside that window.
CHILD = textwrap.dedent("""
    import atexit, gc, sys, threading, time
    from pathlib import Path
    from maskgate.errors import SourceError
    from maskgate.native_calls import leave
    from maskgate.sources import open_capture

    url, mode, grace, marker = sys.argv[1], sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])

    def grab():
        try:
            open_capture(url, name="camera", timeout_s=1.5)
        except SourceError:
            pass

    threading.Thread(target=grab, daemon=True).start()
    time.sleep(0.3)
    atexit.register(marker.write_text, "exit handlers ran")
    print("work done")

    class SlowTeardown:
        def __del__(self, time=time):
            time.sleep(3)

    gc.disable()
    cycle = SlowTeardown()
    cycle.me = cycle
    del cycle
    if mode == "leave":
        leave(3, grace_s=grace)
    if mode == "entry":  # the console command's own exit
        from maskgate.cli import entry
        sys.argv = ["maskgate", "models"]
        entry()
    sys.exit(3)
""")


@pytest.fixture
def silent_camera():
    """A TCP server that accepts and never sends a byte (a camera that hangs)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/stream.mjpg"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _child(tmp_path, url: str, mode: str, grace_s: float) -> tuple[subprocess.CompletedProcess, str]:
    script = tmp_path / "command.py"
    script.write_text(CHILD)
    marker = tmp_path / f"exit-{mode}-{grace_s}"
    done = subprocess.run([sys.executable, str(script), url, mode, str(grace_s), str(marker)],
                          capture_output=True, text=True, timeout=60)
    return done, marker.read_text() if marker.exists() else ""


@pytest.mark.parametrize("grace_s", [0.2, 3.0], ids=["still-inside-after-the-grace", "back-within-the-grace"])
def test_a_command_ending_during_a_camera_open_exits_with_its_status(silent_camera, tmp_path, grace_s):
    done, marker = _child(tmp_path, silent_camera, "leave", grace_s)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    assert done.stdout == "work done\n"  # printed output is flushed on the direct exit too
    assert marker == "exit handlers ran"


def test_the_console_command_exits_through_leave(silent_camera, tmp_path):
    done, marker = _child(tmp_path, silent_camera, "entry", 0.0)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    assert "pose_mobilenetv2_skip" in done.stdout and marker == "exit handlers ran"


def test_the_hazard_is_real_without_leave(silent_camera, tmp_path):
    """Without ``leave`` the same child aborts: the test above guards something that happens."""
    done, _ = _child(tmp_path, silent_camera, "plain", 0.0)
    assert done.returncode == -6, (done.returncode, done.stderr[-2000:])
    assert "terminate called without an active exception" in done.stderr
