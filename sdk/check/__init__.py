"""The checker: verifies a build bundle against its fp32 reference (``maskgate check``).

Integrity first (every file against the manifest's sha256), then the bundle's golden
inputs through the runtime layer, compared with the reference outputs stored beside
them, then latency; the figures go through per-precision gates. Needs no torch.
"""
from __future__ import annotations

from .checker import BundleCheck, check_builds, check_bundle
from .gates import DEFAULT_GATES, Gate, GateResult

__all__ = ["BundleCheck", "DEFAULT_GATES", "Gate", "GateResult", "check_bundle", "check_builds"]
