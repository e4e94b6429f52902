"""Steps 2 and 3, the reference models and the pictures: each model's fp32 torch reference
(and the intermediate exports its bundles share), the calibration set its int8 builds are
quantized with and the held-out inputs with the reference's outputs that every bundle is
measured on."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..specs import ModelSpec
from .config import BuildConfig

if TYPE_CHECKING:
    from ..calibration import CalibrationSet
    from ..calibration.frames import FrameSet


class ReferenceModel:
    """One model's fp32 reference and everything its bundles share."""

    def __init__(self, spec: ModelSpec, config: BuildConfig, work: Path):
        from ..converters.shared import SharedExports
        from ..models.weights import state_dict_sha256
        from ..registry import create_model

        self.spec = spec
        self.module = create_model(spec.name, weights=config.weights.get(spec.name)).eval().cpu()
        self.weights_sha = state_dict_sha256(self.module.state_dict())
        self.device = config.reference_device
        work.mkdir(parents=True, exist_ok=True)
        self.shared = SharedExports(self.module, spec, work, reference=self.infer)
        self.calibration: CalibrationSet | None = None  # made on the first int8 build
        self.held_out: tuple[list[np.ndarray], list[dict[str, np.ndarray]]] | None = None
        self._runner = None

    @property
    def runner(self):
        """The torch reference as a runner (logical input and output names)."""
        if self._runner is None:
            from ..runtimes.pytorch import TorchRunner

            self._runner = TorchRunner(self.module, input_names=(self.spec.input.name,),
                                       output_names=self.spec.outputs, device=self.device)
        return self._runner

    def infer(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.runner.infer({self.spec.input.name: x})

    def describe(self) -> str:
        return self.runner.describe()

    @property
    def notes(self) -> list[str]:
        return self.shared.notes


class BuildData:
    """The pictures a build reads: calibration and held-out frames (the shipped sets unless
    given), the reference detector that cuts classifier crops, the labelled task data."""

    def __init__(self, config: BuildConfig, frames: tuple[FrameSet, FrameSet] | None = None):
        self.config = config
        self.calib_frames, self.verify_frames = frames or self.frames(config)
        self.work = Path(tempfile.mkdtemp(prefix=".work-", dir=config.out))
        self._detector = None
        self._task_data = None

    @staticmethod
    def frames(config: BuildConfig) -> tuple[FrameSet, FrameSet]:
        """The calibration and held-out frames (a missing or empty --calib / --verify fails here)."""
        from ..calibration import default_frames
        from ..calibration.frames import FrameSet
        from ..errors import CalibrationError, SourceError

        def given(path: Path, split: str, flag: str) -> FrameSet:
            try:
                return FrameSet.from_path(path, split=_split(path, split))
            except (CalibrationError, SourceError) as exc:
                raise type(exc)(f"{flag} {exc}") from None

        calib = given(config.calib, "train", "--calib") if config.calib else default_frames("calibrate")
        verify = given(config.verify, "test", "--verify") if config.verify else default_frames("verify")
        return calib, verify

    def reference(self, spec: ModelSpec) -> ReferenceModel:
        return ReferenceModel(spec, self.config, self.work / spec.name)

    def detector(self):
        """The fp32 reference detector that cuts classifier crops: the default detector at the
        general profile's canvas, whatever canvas this build's detector bundles have, so the
        classifier bundles of every profile are the same (and reused)."""
        if self._detector is None:
            from ..detector import FaceDetector
            from ..profiles import DEFAULT_PROFILE, PROFILES

            self._detector = FaceDetector.reference(device="cpu", input_size=PROFILES[DEFAULT_PROFILE].detector_size)
        return self._detector

    def calibration(self, model: ReferenceModel):
        """The model's calibration set (frames for the detector, aligned crops for a classifier)."""
        from ..calibration import calibration_set

        if model.calibration is None:
            model.calibration = calibration_set(model.spec, self.calib_frames, detector=self.detector(),
                                                limit=self.config.samples)
        return model.calibration

    def held_out(self, model: ReferenceModel) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
        """The held-out input tensors and the reference's outputs for each."""
        from ..calibration import calibration_set

        if model.held_out is None:
            held_out = calibration_set(model.spec, self.verify_frames, detector=self.detector(),
                                       limit=self.config.verify_samples)
            model.held_out = held_out.tensors, [model.infer(x) for x in held_out.tensors]
        return model.held_out

    def task_data(self):
        """The labelled data of ``--data`` (test split), crops cut by the reference detector."""
        if self.config.data is not None and self._task_data is None:
            from ..check.task import TaskData

            self._task_data = TaskData.load(self.config.data, detector=self.detector(), limit=self.config.data_limit)
        return self._task_data

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
        shutil.rmtree(self.work, ignore_errors=True)


def _split(path: Path, split: str) -> str | None:
    """A data folder (faces/ + scenes/) is narrowed to one split; a plain folder is used whole."""
    path = Path(path)
    return split if (path / "faces").is_dir() and (path / "scenes").is_dir() else None
