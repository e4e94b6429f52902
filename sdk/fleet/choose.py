"""Which of a release's bundles this camera can run, decided before anything is fetched.

A bundle is this camera's when one of its format's runtimes is installed here with a usable
npu, gpu or cpu (a vendor's simulator does not count: it checks builds on a workstation, it
does not serve a gate), and, for a format compiled per chip (RKNN, QNN), when the bundle was
built for this camera's SoC: ``[agent] soc``, else the one the device tree names.
"""
from __future__ import annotations

from pathlib import Path

from .release import Release, ReleasedBundle

SERVING_KINDS = ("npu", "gpu", "cpu")
DEVICE_TREE = Path("/proc/device-tree/compatible")


def known_socs() -> set[str]:
    from ..formats.qnn import QNN_SOCS
    from ..formats.rknn import RKNN_TARGETS

    return set(RKNN_TARGETS) | set(QNN_SOCS)


def detected_soc(compatible: Path = DEVICE_TREE) -> str | None:
    """The SoC the device tree names (``rockchip,rk3568`` -> rk3568), or None (no device tree, x86)."""
    try:
        names = compatible.read_bytes().split(b"\0")
    except OSError:
        return None
    socs = known_socs()
    for name in names:
        chip = name.decode(errors="replace").rpartition(",")[2].strip().lower()
        if chip in socs:
            return chip
    return None


def serving_formats() -> dict[str, list[str]]:
    """format -> the runtimes here that can serve it ("onnxruntime/cpu", ...)."""
    from maskgate.runtimes.registry import all_backends

    out: dict[str, list[str]] = {}
    for backend in all_backends():
        status = backend.status()
        if not status.installed:
            continue
        kinds = [a.kind for a in status.accelerators if a.usable and a.kind in SERVING_KINDS]
        if kinds:
            for fmt in backend.formats:
                out.setdefault(fmt, []).extend(f"{backend.name}/{k}" for k in dict.fromkeys(kinds))
    return out


def runnable(release: Release, *, soc: str | None, formats: dict[str, list[str]] | None = None
             ) -> tuple[list[ReleasedBundle], dict[str, str]]:
    """(the bundles to fetch, why each other bundle is left on the server)."""
    formats = serving_formats() if formats is None else formats
    take, left = [], {}
    for bundle in release.bundles:
        if bundle.soc is not None and bundle.soc != soc:
            left[bundle.name] = f"built for {bundle.soc}, this camera is {soc or 'not an NPU SoC'}"
        elif bundle.format not in formats:
            left[bundle.name] = f"no runtime here serves {bundle.format} bundles"
        else:
            take.append(bundle)
    return take, left


def missing_models(release: Release, take: list[ReleasedBundle]) -> list[str]:
    """Models of the release that none of the bundles this camera takes provides."""
    have = {b.model for b in take}
    return [m for m in release.models if m not in have]
