"""The runner contract every backend implements (after Polygraphy's runners).

A runner owns one loaded model on one device: ``infer(feed)`` maps input names to
numpy arrays and returns output names to numpy arrays, and records how long it took.
It is a context manager; ``close()`` frees the session.
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from maskgate.errors import InputError

if TYPE_CHECKING:
    from maskgate.converters.manifest import Manifest

    from .placement import Placement


_Opened = TypeVar("_Opened", bound="Runner")
_Result = TypeVar("_Result")


class Runner(ABC):
    #: backend name, e.g. "pytorch", "onnxruntime"
    backend: str = ""
    #: whether ``_infer`` may run in several threads at once (an ONNX Runtime session may;
    #: an OpenVINO infer request or a TFLite interpreter may not): otherwise calls queue
    concurrent_infer: bool = False

    def __init__(self) -> None:
        self.device: str = "cpu"  # the device actually used, recorded in results
        # Where the operations run, as the runtime says (maskgate.runtimes.placement); None: not measured
        self.placement: Placement | None = None
        self.last_inference_ms: float | None = None
        self._closed = False
        self._lock = threading.Lock()

    # Every backend sets these in __init__: the model's input and output names.
    _inputs: tuple[str, ...] = ()
    _outputs: tuple[str, ...] = ()
    # Set by a backend opening a bundle: {input name: (shape, dtype)} from the manifest,
    # so a wrong tensor is refused here with a clear message, not deep inside a runtime.
    input_spec: dict[str, tuple[tuple[int, ...], str]] | None = None

    def expect_inputs(self, manifest: Manifest) -> None:
        """Check every feed against the manifest's input spec from now on."""
        spec = manifest.input
        self.input_spec = {spec.name: (tuple(int(d) for d in spec.shape), spec.dtype)}

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._inputs

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_open()
        missing = set(self.input_names) - set(feed)
        if missing:
            raise InputError(f"feed lacks input(s) {sorted(missing)}; the model takes {list(self.input_names)}")
        for name, (shape, dtype) in (self.input_spec or {}).items():
            value = feed.get(name)
            if value is None:
                raise InputError(f"feed lacks input {name!r}; the model takes {list(self.input_names)}")
            value = np.asarray(value)
            if tuple(value.shape) != shape or value.dtype != np.dtype(dtype):
                raise InputError(f"input {name!r} is {value.dtype}{list(value.shape)}, the build expects "
                                 f"{dtype}{list(shape)} (its manifest's input spec); preprocess with the model's spec")
        return self._timed(self._infer, feed)

    def infer_batch(self, name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Run ``batch`` (N inputs of the model's own shape, stacked on the first axis, which
        is 1 in the model) through the model's input ``name``; each output comes back stacked
        the same way. A runtime that takes a batch in one call does (``_infer_batch``);
        the others run the items one by one, which is what a batch-of-one model can do."""
        self._check_open()
        batch = np.asarray(batch)
        if set(self.input_names) != {name}:
            raise InputError(f"infer_batch feeds one input, {name!r}; the model takes {list(self.input_names)}")
        shape, dtype = (self.input_spec or {}).get(name, ((1, *batch.shape[1:]), batch.dtype))
        if batch.ndim < 1 or len(batch) == 0 or tuple(batch.shape[1:]) != tuple(shape[1:]) or \
                batch.dtype != np.dtype(dtype):
            raise InputError(f"input {name!r} is {batch.dtype}{list(batch.shape)}, the build expects N x "
                             f"{dtype}{list(shape[1:])} (its manifest's input spec, stacked); preprocess with the "
                             "model's spec")
        return self._timed(self._infer_batch, name, batch)

    def _infer_batch(self, name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Item by item; a backend whose runtime takes a batch overrides this."""
        runs = [self._infer({name: batch[i:i + 1]}) for i in range(len(batch))]
        return {key: np.concatenate([np.asarray(r[key]) for r in runs]) for key in runs[0]}

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    def _timed(self, call: Callable[..., _Result], *args: Any) -> _Result:
        """``call(*args)``, queued behind other threads unless the runtime runs calls
        concurrently; records how long it took."""
        start = time.perf_counter()
        if self.concurrent_infer:
            out = call(*args)
        else:
            with self._lock:
                out = call(*args)
        self.last_inference_ms = (time.perf_counter() - start) * 1e3
        return out

    def close(self) -> None:
        self._closed = True

    def __enter__(self: _Opened) -> _Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.backend}/{self.device}"


class SessionRunner(Runner):
    """A runner over one onnxruntime ``InferenceSession`` (built-in or plugin execution providers)."""

    concurrent_infer = True  # InferenceSession.run is thread-safe

    def _bind(self, session: Any, output_names: tuple[str, ...] | None) -> None:
        self._session = session
        self._inputs = tuple(i.name for i in session.get_inputs())
        self._actual = tuple(o.name for o in session.get_outputs())
        self._outputs = tuple(output_names or self._actual)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self._session.run(list(self._actual), {n: feed[n] for n in self._inputs})
        return dict(zip(self._outputs, out))

    def close(self) -> None:
        self._session = None
        super().close()
