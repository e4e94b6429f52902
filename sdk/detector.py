"""Face detector: a detector spec, a runner, and the shared pre/post-processing."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ModelError
from .postprocess import Detections, decode_detections
from .preprocess import letterbox, to_tensor
from .registry import create_model, get_spec
from .specs import DetectionDefaults, ModelSpec, PriorSpec, with_input_size

if TYPE_CHECKING:  # runtimes imports maskgate.errors: a top-level import here would be circular
    from maskgate.runtimes.base import Runner

DEFAULT_DETECTOR = "retinaface_mnet025"


class FaceDetector:
    """Frame (BGR uint8) -> Detections in frame pixels.

    The runner may be any backend; the letterboxing and decoding here are the same for
    all of them, so a build differs from the reference only by what its runner computes.
    """

    def __init__(self, spec: ModelSpec, runner: Runner, *, options: DetectionDefaults | None = None):
        if spec.task != "face_detection" or spec.priors is None:
            raise ModelError(f"{spec.name} is a {spec.task} model, not a face detector")
        self.spec = spec
        self.priors: PriorSpec = spec.priors
        self.runner = runner
        self.options = options or spec.detection or DetectionDefaults()

    @classmethod
    def reference(
        cls,
        name: str = DEFAULT_DETECTOR,
        *,
        weights: str | Path | None = None,
        device: str = "auto",
        input_size: tuple[int, int] | None = None,
        score_threshold: float | None = None,
    ) -> FaceDetector:
        """The PyTorch fp32 reference detector from the registry (needs torch)."""
        from maskgate.runtimes.pytorch import TorchRunner

        spec = get_spec(name)
        if input_size is not None:
            spec = with_input_size(spec, input_size)
        model = create_model(name, weights=weights)
        runner = TorchRunner(model, input_names=(spec.input.name,), output_names=spec.outputs, device=device)
        options = spec.detection or DetectionDefaults()
        if score_threshold is not None:
            options = dataclasses.replace(options, score_threshold=float(score_threshold))
        return cls(spec, runner, options=options)

    def detect(self, frame: np.ndarray, *, score_threshold: float | None = None,
               timings: dict | None = None) -> Detections:
        """``timings``: a dict that receives ms spent in preprocess / detect / postprocess."""
        start = time.perf_counter()
        canvas, box = letterbox(frame, self.spec.input)
        tensor = to_tensor(canvas, self.spec.input)
        ran = time.perf_counter()
        outputs = self.runner.infer({self.spec.input.name: tensor})
        decoded = time.perf_counter()
        options = self.options
        if score_threshold is not None:
            options = dataclasses.replace(options, score_threshold=float(score_threshold))
        loc, conf, landmarks = (outputs[n][0] for n in self.spec.outputs)
        found = decode_detections(
            loc, conf, landmarks, priors=self.priors, canvas_size=self.spec.input.size, options=options
        )
        detections = Detections(
            boxes=box.to_frame(found.boxes),
            scores=found.scores,
            landmarks=box.to_frame(found.landmarks),
        )
        if timings is not None:
            end = time.perf_counter()
            for stage, ms in (("preprocess", ran - start), ("detect", decoded - ran), ("postprocess", end - decoded)):
                timings[stage] = timings.get(stage, 0.0) + ms * 1e3
        return detections

    __call__ = detect

    def close(self) -> None:
        self.runner.close()
