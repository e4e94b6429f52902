"""Open a build bundle with the built-in backend of its format, on the CPU, or for a format
that runs only on an NPU on its simulator here (the selector, ``maskgate.runtimes.select``,
is what picks devices and falls back)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from maskgate.errors import BundleError, DeviceError
from maskgate.formats import FORMATS, SIMULATOR

from .backend import Accelerator, OpenOptions
from .base import Runner

if TYPE_CHECKING:
    from maskgate.converters.manifest import Manifest


def runner_for(bundle: str | Path, manifest: Manifest, *, threads: int | None = None) -> Runner:
    """A runner whose input and output names are the model spec's logical names: on the CPU,
    else (NPU formats) on the first of the NPU simulator and the NPU that is usable here."""
    from .registry import builtin_backends

    fmt = manifest.format
    backend = next((b for b in builtin_backends() if fmt in b.formats), None)
    if backend is None:
        raise BundleError(f"{bundle}: format {fmt!r} has no built-in runtime; expected one of {', '.join(FORMATS)}")
    if backend.devices.get("cpu"):
        accelerator = Accelerator("cpu", backend.devices["cpu"][0], True)
    else:
        status = backend.status()
        usable = status.usable(SIMULATOR) + status.usable("npu")
        if not usable:
            reasons = "; ".join(f"{a.name}: {a.reason}" for a in status.accelerators) or status.reason
            raise DeviceError(f"{bundle}: {fmt} bundles run only on an NPU or its simulator, and {backend.name} has "
                              f"neither here ({reasons})")
        accelerator = usable[0]
    return backend.open(Path(bundle), manifest, accelerator, options=OpenOptions(threads=threads))
