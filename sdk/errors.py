"""Typed errors of the SDK.

Every error names what was wrong (a file, a device, a value), what was expected, and
how to fix it, so a firmware developer reads one line instead of a runtime traceback.
"""
from __future__ import annotations


class MaskGateError(Exception):
    """Base class of every error the SDK raises on purpose."""


class InputError(MaskGateError, ValueError):
    """A frame, image or argument has the wrong type, shape or value."""


class SourceError(MaskGateError):
    """An image, folder, video or camera cannot be read."""


class ModelError(MaskGateError):
    """A model name is unknown, or its weights cannot be found or do not fit."""


class WeightsError(ModelError):
    """A weights file is missing, corrupt or has the wrong layout."""


class DependencyError(MaskGateError, ImportError):
    """An optional dependency needed for this call is not installed."""

    def __init__(self, package: str, *, extra: str | None, purpose: str, install: str | None = None):
        self.package = package
        self.extra = extra
        how = install or (f"pip install 'maskgate[{extra}]'" if extra else f"pip install {package}")
        super().__init__(
            f"{purpose} needs the Python package '{package}', which is not installed. Install it with: {how}"
        )


class DeviceError(MaskGateError):
    """The requested device is not available."""


class CalibrationError(MaskGateError):
    """A calibration or verification set is missing, empty or unusable."""


class ConversionError(MaskGateError):
    """Exporting or quantizing a model failed; names the model, format and precision."""


class BundleError(MaskGateError):
    """A build bundle is incomplete, corrupt, or its manifest does not match its files."""


class OutputError(MaskGateError):
    """An output folder or file that cannot be written (read-only, no permission, a file in the way)."""


class PublishError(MaskGateError):
    """Event delivery is misconfigured ([turnstile.publish], --publish) or its spool is unusable."""


class ReleaseError(MaskGateError):
    """A release cannot be written, or a camera refuses what a release repository serves
    (a bad signature, expired or replayed metadata, a file that does not match its hash)."""
