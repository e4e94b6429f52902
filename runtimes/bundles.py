"""Open a build bundle on the CPU with the built-in backend of its format (the selector,
``maskgate.runtimes.select``, is what picks devices and falls back)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from maskgate.errors import BundleError
from maskgate.formats import FORMATS

from .backend import Accelerator, OpenOptions
from .base import Runner

if TYPE_CHECKING:
    from maskgate.converters.manifest import Manifest


def runner_for(bundle: str | Path, manifest: Manifest, *, threads: int | None = None) -> Runner:
    """A CPU runner whose input and output names are the model spec's logical names."""
    from .registry import builtin_backends

    fmt = manifest.format
    backend = next((b for b in builtin_backends() if fmt in b.formats), None)
    if backend is None:
        raise BundleError(f"{bundle}: format {fmt!r} has no built-in runtime; expected one of {', '.join(FORMATS)}")
    cpu = Accelerator("cpu", backend.devices["cpu"][0], True)
    return backend.open(Path(bundle), manifest, cpu, options=OpenOptions(threads=threads))
