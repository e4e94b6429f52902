"""MaskGate SDK: masked-face pipeline for turnstile cameras.

Importing ``maskgate`` needs only numpy and OpenCV; torch and the runtimes are imported
when a model is built or a backend is used.
"""
from __future__ import annotations

if __name__ != "maskgate":  # the folder sdk/ installs as maskgate (pyproject.toml)
    raise ImportError(f"import maskgate, not {__name__}: the sdk/ folder is installed as "
                      "maskgate (pip install -e . in the checkout)")

from . import console  # noqa: F401  (first: keeps FFmpeg's chatter out of the console before cv2 loads)

# isort: split
from .align import AlignedFace, align_face, eye_roll_degrees
from .builder import BuildConfig, BuildResult, build
from .classifier import CropClassifier
from .detector import FaceDetector
from .errors import (
    DependencyError,
    DeviceError,
    InputError,
    MaskGateError,
    ModelError,
    OutputError,
    SourceError,
    WeightsError,
)
from .pipeline import AlignConfig, FaceResult, Pipeline
from .pose import YawBins, estimate_yaw
from .postprocess import Detections
from .registry import create_model, get_spec, list_models, register
from .specs import ClassifierSpec, DetectionDefaults, InputSpec, ModelSpec, PriorSpec
from .version import __version__

__all__ = [
    "AlignConfig",
    "AlignedFace",
    "BuildConfig",
    "BuildResult",
    "build",
    "ClassifierSpec",
    "CropClassifier",
    "DependencyError",
    "DetectionDefaults",
    "Detections",
    "DeviceError",
    "FaceDetector",
    "FaceResult",
    "InputError",
    "InputSpec",
    "MaskGateError",
    "ModelError",
    "ModelSpec",
    "OutputError",
    "Pipeline",
    "PriorSpec",
    "SourceError",
    "WeightsError",
    "__version__",
    "align_face",
    "create_model",
    "YawBins",
    "estimate_yaw",
    "eye_roll_degrees",
    "get_spec",
    "list_models",
    "register",
]
