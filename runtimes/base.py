"""The runner contract every backend implements (after Polygraphy's runners).

A runner owns one loaded model on one device: ``infer(feed)`` maps input names to
numpy arrays and returns output names to numpy arrays, and records how long it took.
It is a context manager; ``close()`` frees the session.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from sdk.errors import InputError


class Runner(ABC):
    #: backend name, e.g. "pytorch", "onnxruntime"
    backend: str = ""

    def __init__(self) -> None:
        self.device: str = "cpu"  # the device actually used, recorded in results
        self.last_inference_ms: float | None = None
        self._closed = False

    # Every backend sets these in __init__: the model's input and output names.
    _inputs: tuple[str, ...] = ()
    _outputs: tuple[str, ...] = ()

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
        missing = set(self.input_names) - set(feed)
        if missing:
            raise InputError(f"feed lacks input(s) {sorted(missing)}; the model takes {list(self.input_names)}")
        start = time.perf_counter()
        out = self._infer(feed)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.backend}/{self.device}"
