"""``maskgate.builder``: the reference models -> verified bundles for every format and precision.

The steps, one module each, in the order a bundle goes through them: ``plan``,
``reference`` (the fp32 models, calibration and held-out data), ``convert``, ``verify``,
``repair`` and ``manifest`` (the verdict recorded), then ``report``; ``flow`` walks them.
"""
from __future__ import annotations

from .config import DEFAULT_MODELS, GOLDEN_SAMPLES, BuildConfig, BuildResult
from .flow import build, build_bundle

__all__ = ["DEFAULT_MODELS", "GOLDEN_SAMPLES", "BuildConfig", "BuildResult", "build", "build_bundle"]
