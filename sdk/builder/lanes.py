"""Verifying simulator bundles beside the build instead of in its way.

An NPU bundle is verified in its vendor's simulator, which takes seconds a frame, while the
CPU sits mostly idle for the next conversion (quantization in this process, the RKNN
toolkit in its worker). So a simulated bundle's verification goes to a lane of its format
(one thread each: the QNN HTP simulator runs one inference at a time per process anyway,
the RKNN one in its own worker process) and the build moves on to the next conversion.

A bundle that runs on this machine's own CPU is timed, so its verification waits until the
lanes are empty: its latency figures are taken on an otherwise idle machine, as before.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from ..ast_race import retry_ast_race
from .config import BuildResult


class SimulatorLanes:
    """One single-thread executor per simulated format; results keep the build's order."""

    def __init__(self):
        self._lanes: dict[str, ThreadPoolExecutor] = {}
        self._pending: list[Future] = []

    def submit(self, lane: str, work: Callable[[], BuildResult]) -> Future:
        if lane not in self._lanes:
            self._lanes[lane] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"verify-{lane}")
        # The lane's reads race with the conversion's export beside it on CPython 3.11 (ast_race.py).
        future = self._lanes[lane].submit(retry_ast_race, work, what=f"verify-{lane}")
        self._pending.append(future)
        return future

    def drain(self, *, progress: bool = False) -> None:
        """Wait for every verification under way (a failure is raised here, in build order);
        with ``progress``, a bar counts them (the conversions' bar is full by then)."""
        from ..progress import progress as progress_bar

        pending, self._pending = self._pending, []
        bar = progress_bar(pending, desc="verify in simulators", total=len(pending), enabled=progress and bool(pending),
                           unit="bundle")
        for future in bar:
            future.result()

    def close(self) -> None:
        for lane in self._lanes.values():
            lane.shutdown(wait=True, cancel_futures=True)
        self._lanes.clear()

    def __enter__(self) -> SimulatorLanes:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def results(items: list[BuildResult | Future]) -> list[BuildResult]:
    """The build's results in its order, waiting for those still in a lane."""
    return [item.result() if isinstance(item, Future) else item for item in items]
