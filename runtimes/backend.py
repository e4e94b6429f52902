"""The backend contract: what a runtime can run here, and how it opens a bundle.

A backend (ONNX Runtime, OpenVINO, LiteRT, a third-party plugin) reports its version
and, for each device kind, the accelerators it knows and whether each is usable, with
the reason where not. ``open`` loads a bundle on one of them and returns a ``Runner``.
Third-party backends subclass ``Backend`` and register under the ``maskgate.runtimes``
entry-point group (see ``maskgate.runtimes.registry``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .base import Runner

if TYPE_CHECKING:
    from maskgate.converters.bundle import VerifiedBundle
    from maskgate.converters.manifest import Manifest


@dataclass(frozen=True)
class Accelerator:
    kind: str  # npu | gpu | cpu
    name: str  # an execution provider, an OpenVINO device, a delegate library
    usable: bool
    reason: str = ""  # why it is not usable


@dataclass(frozen=True)
class BackendStatus:
    name: str
    formats: tuple[str, ...]
    installed: bool
    version: str | None = None
    accelerators: tuple[Accelerator, ...] = ()
    reason: str = ""  # why the backend is not installed or failed to load
    plugin: str | None = None  # the entry point it came from, for third-party backends

    def usable(self, kind: str) -> list[Accelerator]:
        return [a for a in self.accelerators if a.kind == kind and a.usable]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class OpenOptions:
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # backend-specific (session options, delegate options)
    # The bundle as the selector checked it (maskgate.converters.bundle.VerifiedBundle): a backend
    # loads these bytes (``model_source``, or ``verified.private_copy()`` for a runtime that takes
    # only paths), never the path again, so what runs is what was hashed and signed.
    verified: VerifiedBundle | None = None


class Backend(ABC):
    #: registry name, e.g. "onnxruntime"
    name: str = ""
    #: bundle formats this backend runs (manifest "format")
    formats: tuple[str, ...] = ()
    #: the accelerators it offers per device kind (npu, gpu, cpu), best first
    devices: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: "name = module:object" of the entry point it came from (set by the registry for plugins)
    plugin: str | None = None

    @abstractmethod
    def status(self) -> BackendStatus:
        """What is installed and usable here; never raises for a missing package."""

    @abstractmethod
    def open(self, bundle: Path, manifest: Manifest, accelerator: Accelerator, *, options: OpenOptions) -> Runner:
        """Load the bundle's model on ``accelerator``; raise a ``MaskGateError`` when it cannot.
        ``manifest`` (``maskgate.converters.manifest.Manifest``) is also a read-only mapping of
        the manifest's JSON, for backends written against the dictionary."""


def not_installed(name: str, formats: tuple[str, ...], package: str, extra: str) -> BackendStatus:
    return BackendStatus(name, formats, installed=False,
                         reason=f"Python package '{package}' is not installed (pip install 'maskgate[{extra}]')")


def model_source(bundle: Path, manifest: Manifest, options: OpenOptions) -> Path | bytes:
    """What a backend loads: the verified model bytes where the selector checked the bundle,
    else (a bundle opened directly, the build's own check) the model file's path."""
    return options.verified.model if options.verified is not None else model_path(bundle, manifest)


@contextmanager
def verified_folder(bundle: Path, options: OpenOptions) -> Iterator[Path]:
    """A folder to load from: a private copy of the verified bytes where the selector checked
    the bundle (for runtimes that read only paths), else the bundle itself."""
    if options.verified is None:
        yield Path(bundle)
        return
    with options.verified.private_copy() as folder:
        yield folder


def model_path(bundle: Path, manifest: Manifest) -> Path:
    """The file a backend loads from a bundle: its format's model file, the one the manifest's
    digest is stamped into (``maskgate.converters.binding.stamped_file``)."""
    from maskgate.converters.binding import stamped_file

    return stamped_file(bundle, manifest)
