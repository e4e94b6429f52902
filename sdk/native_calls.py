"""Threads left inside a native call, and a process exit that does not abort because of them.

An OpenCV open or read that outlives its timeout is left to a daemon thread (sources.py, the
turnstile's grabber). If the process ends while one is still inside OpenCV, CPython's
finalization ends that thread with pthread_exit when it comes back for the GIL; unwinding
through OpenCV's C++ frames then calls std::terminate, and a run whose work was all done
dies with SIGABRT ("terminate called without an active exception", exit -6). So such calls
are marked with ``inside()``, and the console entry (``leave``) gives them a moment to come
back, then, if one is still inside, runs the exit handlers itself and ends the process
without finalizing the interpreter: the exit status stays the one the command returned.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_inside: dict[int, str] = {}  # thread ident -> what it is doing


@contextmanager
def inside(what: str) -> Iterator[None]:
    """Mark the calling thread as inside a native call that may outlive the process's work."""
    ident = threading.get_ident()
    with _lock:
        _inside[ident] = what
    try:
        yield
    finally:
        with _lock:
            _inside.pop(ident, None)


def still_inside() -> list[str]:
    with _lock:
        return list(_inside.values())


def leave(code: int, *, grace_s: float = 1.0) -> None:
    """Return when no thread is inside a native call (within ``grace_s``), so that the caller
    exits as usual; otherwise end the process here with ``code``, after the exit handlers."""
    deadline = time.monotonic() + grace_s
    while still_inside() and time.monotonic() < deadline:
        time.sleep(0.02)
    left = still_inside()
    if not left:
        return
    logging.getLogger(__name__).debug("exiting with %d thread(s) still inside a native call: %s",
                                      len(left), "; ".join(left))
    try:
        atexit._run_exitfuncs()  # what sys.exit would have run (temporary copies, logging's flush)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
