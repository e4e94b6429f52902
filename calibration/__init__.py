"""Calibration data for the int8 quantizers: frames, model-ready sets, quantizer adapters.

``FrameSet`` says which pictures; ``calibration_set`` turns them into the model's own
input tensors (frames for the detector, detected and aligned crops for the classifiers);
``calibration.adapters`` hands a set to ONNX Runtime, NNCF or ai-edge-quantizer.
A small default set ships in ``calibration/default`` (see its ATTRIBUTION.md).
"""

from __future__ import annotations

if __name__ != "maskgate.calibration":  # the folder calibration/ installs as maskgate.calibration (pyproject.toml)
    raise ImportError(f"import maskgate.calibration, not {__name__}: the calibration/ folder is installed as "
                      "maskgate.calibration (pip install -e . in the checkout)")

from pathlib import Path

from .dataset import DEFAULT_SAMPLES, CalibrationSet, calibration_set, crops_for_classifier, frames_for_detector
from .frames import FrameSet

DEFAULT_DIR = Path(__file__).resolve().parent / "default"


def default_frames(part: str = "calibrate") -> FrameSet:
    """The shipped set: ``calibrate`` (train-split pictures) or ``verify`` (held-out, test split)."""
    if part not in ("calibrate", "verify"):
        raise ValueError(f"part must be 'calibrate' or 'verify', got {part!r}")
    return FrameSet.from_path(DEFAULT_DIR / part)


__all__ = ["CalibrationSet", "DEFAULT_DIR", "DEFAULT_SAMPLES", "FrameSet", "calibration_set", "crops_for_classifier",
           "default_frames", "frames_for_detector"]
