"""Keeping third-party chatter out of the user's console, without hiding real warnings.

Native libraries (TensorFlow's and LiteRT's C++ logging) write straight to file descriptor
2, past Python's logging: ``native_stderr_filtered`` captures what they write during one call
and passes on every line but their INFO ones. ``maskgate --verbose`` lets everything through.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

# TensorFlow / absl INFO ("I0000 00:00:... file.cc:12] ..."), TFLite's own ("INFO: ..."), absl's
# notice that it has no log configuration yet (a "WARNING" about logging itself) and the QNN HTP
# library's note on its thread-local settings.
NATIVE_INFO = re.compile(r"^(I\d{4} [\d:.]+ +\d+ \S+:\d+\] |INFO: | # LIBNATIVE: No alternate configuration"
                         r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$)")
VERBOSE = os.environ.get("MASKGATE_VERBOSE") == "1"  # set by 'maskgate --verbose'


def _quiet_ffmpeg() -> None:
    """FFmpeg (inside OpenCV) prints every complaint about a damaged stream ("[mjpeg @ 0x..]
    overread 8"); MaskGate reports a damaged or cut video itself. OpenCV reads this variable
    once, when cv2 is first imported, so it is set here, before that, unless the user set it
    (OPENCV_FFMPEG_LOGLEVEL=24 shows them) or runs 'maskgate --verbose'."""
    if "OPENCV_FFMPEG_LOGLEVEL" in os.environ or "cv2" in sys.modules:
        return
    cli = os.path.basename(sys.argv[0] if sys.argv else "") == "maskgate"
    verbose = VERBOSE or (cli and any(a in ("-v", "--verbose") for a in sys.argv[1:]))
    os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "24" if verbose else "8"  # warnings, or fatal errors only


_quiet_ffmpeg()


@contextlib.contextmanager
def opencv_quiet() -> Iterator[None]:
    """OpenCV's own log (not FFmpeg's) silenced for one call: probing a camera index that is not
    there logs a line per capture backend it tries ("[ERROR:0@0.3] ... Camera index out of
    range") before MaskGate's own one-line error. ``--verbose`` keeps them."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if VERBOSE or logging is None:
        yield
        return
    before = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(before)


def set_verbose(verbose: bool) -> None:
    global VERBOSE
    VERBOSE = verbose


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Capture fd 2 for the duration; afterwards write back every line that is not a native
    library's INFO line. A real warning or error still reaches the console, in order."""
    with _filtered(2, "stderr"):
        yield


@contextlib.contextmanager
def native_output_filtered() -> Iterator[None]:
    """``native_stderr_filtered`` for fd 1 as well: some vendor libraries (QNN's HTP) print
    their notes on stdout, where they would corrupt a command's JSON output."""
    with _filtered(1, "stdout"), _filtered(2, "stderr"):
        yield


# One capture per file descriptor for the whole process: a build verifies simulator bundles in
# threads beside its conversions, and fd redirections made and undone by two threads in turn
# would leave a descriptor pointing at the other's capture. The first filter in redirects, the
# last one out restores and writes back what was kept.
_lock = threading.Lock()
_active: dict[int, list] = {}  # fd -> [users, saved fd, capture file]


@contextlib.contextmanager
def _filtered(fd: int, name: str) -> Iterator[None]:
    if VERBOSE:
        yield
        return
    with _lock:
        entry = _active.get(fd)
        if entry is None:
            try:
                getattr(sys, name).flush()
                saved = os.dup(fd)
            except (OSError, ValueError):  # no real fd (an embedding app): nothing to filter
                entry = None
            else:
                capture = tempfile.TemporaryFile()
                os.dup2(capture.fileno(), fd)
                entry = _active[fd] = [0, saved, capture]
        if entry is not None:
            entry[0] += 1
    if entry is None:
        yield
        return
    try:
        yield
    finally:
        with _lock:
            entry[0] -= 1
            if entry[0] == 0:
                del _active[fd]
                _restore(fd, name, entry[1], entry[2])


def _restore(fd: int, name: str, saved: int, capture) -> None:
    stream = getattr(sys, name)
    stream.flush()
    os.dup2(saved, fd)
    os.close(saved)
    with capture:
        capture.seek(0)
        kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                if not NATIVE_INFO.match(line)]
    if kept:
        stream.write("".join(kept))
        stream.flush()
