"""Every backend this install can use: the built-in ones and third-party plugins.

Plugins register a ``Backend`` subclass (or a callable returning an instance) under the
``maskgate.runtimes`` entry-point group, e.g. in their pyproject.toml::

    [project.entry-points."maskgate.runtimes"]
    myvendor = "myvendor_maskgate:VendorBackend"

A plugin that fails to load is reported by ``maskgate backends`` with the reason; it
never breaks the built-in backends.
"""
from __future__ import annotations

import logging

from .backend import Backend, BackendStatus

ENTRY_POINT_GROUP = "maskgate.runtimes"
log = logging.getLogger(__name__)


def builtin_backends() -> list[Backend]:
    from .onnxruntime import OnnxRuntimeBackend
    from .openvino import OpenVinoBackend
    from .pytorch import TorchBackend
    from .qnn import QnnBackend
    from .rknn import RknnBackend
    from .tflite import TfliteBackend

    return [QnnBackend(), RknnBackend(), OpenVinoBackend(), TfliteBackend(), OnnxRuntimeBackend(), TorchBackend()]


def plugin_backends() -> tuple[list[Backend], list[BackendStatus]]:
    """(backends loaded from entry points, statuses of the plugins that failed to load)."""
    from importlib.metadata import entry_points

    loaded, failed = [], []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            factory = ep.load()
            backend = factory()
            if not isinstance(backend, Backend):
                raise TypeError(f"{ep.value} made a {type(backend).__name__}, not a maskgate.runtimes.backend.Backend")
            backend.plugin = f"{ep.name} = {ep.value}"
            loaded.append(backend)
        except Exception as exc:  # a third party's bug: report it, keep the others
            log.warning("maskgate runtime plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
            failed.append(
                BackendStatus(
                    ep.name,
                    (),
                    False,
                    reason=f"plugin failed to load: {type(exc).__name__}: {exc}",
                    plugin=f"{ep.name} = {ep.value}",
                )
            )
    return loaded, failed


def all_backends() -> list[Backend]:
    """Plugins first (a vendor's backend for a format is preferred over the built-in one), then built-ins."""
    plugins, _ = plugin_backends()
    return plugins + builtin_backends()


def statuses() -> list[BackendStatus]:
    plugins, failed = plugin_backends()
    out = []
    for backend in plugins + builtin_backends():
        try:
            status = backend.status()
        except Exception as exc:  # a backend's probe must not take the listing down
            status = BackendStatus(backend.name, backend.formats, False, reason=f"status() failed: {exc}")
        plugin = getattr(backend, "plugin", None)
        if plugin and status.plugin is None:
            import dataclasses

            status = dataclasses.replace(status, plugin=plugin)
        out.append(status)
    return out + failed
