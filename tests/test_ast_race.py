"""CPython 3.11's AST constructor race, made to happen for real, and the work run again.

A CI build failed once with ``pose_mobilenetv2_skip: torch.onnx.export (dynamo) failed: AST
constructor recursion depth mismatch (before=192, after=58)``: the simulator lanes read
``.npy`` headers (``ast.literal_eval``) while the main thread's export parsed. Here a garbage
collector callback that yields the GIL lets a second thread parse in the middle of the first
one's AST construction, as the build's finalizers did.
"""
from __future__ import annotations

import ast
import gc
import inspect
import logging
import sys
import threading

import pytest

from maskgate.ast_race import is_ast_race, retry_ast_race

pytestmark = pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                                reason="the per-interpreter AST recursion counter is CPython 3.11's")

SOURCE = inspect.getsource(ast)  # a parse large enough to be collected in the middle of


class Race:
    """Another thread that parses an .npy header whenever a collection starts in this thread:
    the collection waits for that parse, so the two interleave at every collection however
    loaded the machine is (a bare GIL yield left it to the scheduler, and under pytest-xdist
    on two cores the other thread sometimes never ran). ``stop()`` ends both."""

    def __init__(self):
        self._stop, self._go, self._parsed = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._parse, daemon=True)
        self._main = threading.get_ident()

    def _parse(self) -> None:
        while not self._stop.is_set():
            if self._go.wait(0.05):
                self._go.clear()
                ast.literal_eval("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 128, 128), }")
                self._parsed.set()

    def _yield(self, phase: str, info: dict) -> None:
        if phase == "start" and threading.get_ident() == self._main and not self._stop.is_set():
            self._parsed.clear()
            self._go.set()
            self._parsed.wait(1.0)

    def __enter__(self) -> Race:
        self._thread.start()
        gc.callbacks.append(self._yield)
        return self

    def stop(self) -> None:
        if self._yield in gc.callbacks:
            gc.callbacks.remove(self._yield)
        self._stop.set()

    def __exit__(self, *exc) -> None:
        self.stop()
        self._thread.join(5)


class StopOnRetry(logging.Handler):
    def __init__(self, race: Race):
        super().__init__()
        self.race, self.retries = race, 0

    def emit(self, record: logging.LogRecord) -> None:
        self.retries += 1
        self.race.stop()


def test_the_race_is_real_and_the_parse_run_again_succeeds():
    logger = logging.getLogger("maskgate.ast_race")
    with Race() as race:
        with pytest.raises(SystemError, match="recursion depth mismatch"):
            ast.parse(SOURCE)  # the race, for real, without the retry
        handler = StopOnRetry(race)
        logger.addHandler(handler)
        old_level, logger.level = logger.level, logging.INFO
        try:
            tree = retry_ast_race(lambda: ast.parse(SOURCE), what="parse")
        finally:
            logger.removeHandler(handler)
            logger.level = old_level
    assert isinstance(tree, ast.Module) and handler.retries == 1


def test_only_the_race_is_retried_and_a_wrapped_one_is_recognised():
    calls = []

    def fails():
        calls.append(1)
        raise ValueError("a real failure")

    with pytest.raises(ValueError):
        retry_ast_race(fails, what="work")
    assert len(calls) == 1
    try:
        try:
            raise SystemError("AST constructor recursion depth mismatch (before=192, after=58)")
        except SystemError as inner:
            raise RuntimeError("torch.onnx.export failed") from inner  # how an exporter reports it
    except RuntimeError as outer:
        assert is_ast_race(outer)
    assert not is_ast_race(SystemError("error return without exception set"))


def test_a_lane_runs_its_verification_again_after_the_race():
    from maskgate.builder.lanes import SimulatorLanes

    attempts = []

    def verify():
        attempts.append(1)
        if len(attempts) == 1:
            with Race():
                ast.parse(SOURCE)  # fails: the other thread parsed in the middle of it
        return "verified"

    with SimulatorLanes() as lanes:
        future = lanes.submit("qnn", verify)
        lanes.drain()
    assert future.result() == "verified" and len(attempts) == 2
