"""A runner that survives its backend failing mid-stream.

The selector checks a build before it is chosen (checksums, load, a golden input), but a
device can still fail later: an NPU driver resets, a GPU is lost, a delegate crashes on
an input it has not seen. ``FailoverRunner`` then closes the failed runner, asks the
selector for the next candidate (as ``open_best`` would rank it, the failed ones left
out) and runs the same feed there, so the frame being processed is not lost. A bad feed
(``InputError``) is the caller's fault and is raised as it is, never failed over.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from maskgate.errors import InputError

from .base import Runner
from .select import Selection, candidate_key

log = logging.getLogger(__name__)


class FailoverRunner(Runner):
    """Runs ``selection.runner``; on a runtime failure, ``reopen(failed keys)`` gives the next
    Selection. ``selection`` is updated in place, so whoever holds it sees what runs now."""

    concurrent_infer = False  # a failover must not race another call on the failing runner

    def __init__(self, selection: Selection, reopen: Callable[[set[tuple[str, str, str]]], Selection]):
        super().__init__()
        self.selection = selection
        self._reopen = reopen
        self._failed: set[tuple[str, str, str]] = set()
        self.failovers: list[str] = []  # "what failed: why" for each failover, in order
        self._adopt()

    def _adopt(self) -> None:
        inner = self.selection.runner
        self.backend, self.device = inner.backend, inner.device
        self._inputs, self._outputs, self.input_spec = inner.input_names, inner.output_names, inner.input_spec

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._on_any_runner(lambda runner: runner.infer(feed))

    def _infer_batch(self, name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        return self._on_any_runner(lambda runner: runner.infer_batch(name, batch))

    def _on_any_runner(self, run: Callable[[Runner], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """``run(the current runner)``, failing over to the next one until one succeeds."""
        while True:
            try:
                return run(self.selection.runner)
            except InputError:
                raise
            except Exception as exc:  # a backend's own error types: another device may still work
                self._fail_over(exc)

    def _fail_over(self, exc: Exception) -> None:
        failed = self.selection
        reason = f"{failed.describe_runtime()}: {type(exc).__name__}: {exc}"
        log.warning("%s failed mid-stream (%s); falling back to the next build", failed.model, reason)
        self._failed.add(candidate_key(failed))
        self.failovers.append(reason)
        try:
            failed.runner.close()
        except Exception:  # a dead device may not close cleanly; it is dropped either way
            pass
        replacement = self._reopen(set(self._failed))  # NoUsableBuildError when nothing is left
        history = failed.fallbacks + [f"{reason} (mid-stream)"] + replacement.fallbacks
        vars(failed).update(vars(replacement))
        failed.fallbacks = history
        self._adopt()

    def close(self) -> None:
        self.selection.runner.close()
        super().close()

    def describe(self) -> str:
        return self.selection.runner.describe()
