"""The per-frame pipeline: detect faces, align and crop each one, classify the crop.

Mask and head-pose classifiers are optional: without them ``mask`` and ``pose`` stay None.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .align import AlignMethod, align_face, eye_roll_degrees
from .classifier import DEFAULT_MASK_MODEL, DEFAULT_POSE_MODEL, CropClassifier, mask_result, pose_result
from .detector import DEFAULT_DETECTOR, FaceDetector
from .postprocess import Detections
from .preprocess import as_bgr_frame
from .profiles import DEFAULT_PROFILE, get_profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignConfig:
    method: AlignMethod = "eye_roll"
    size: tuple[int, int] = (128, 128)
    margin: float = 0.25


@dataclass
class FaceResult:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels
    score: float
    landmarks: tuple[tuple[float, float], ...]  # left eye, right eye, nose, left/right mouth (image sides)
    roll_degrees: float
    crop: np.ndarray | None = field(default=None, repr=False)  # aligned BGR crop
    mask: dict | None = None
    pose: dict | None = None
    # What ran each model: {"detector": "openvino int8 on openvino/CPU (cpu)", ...}
    runtime: dict | None = None

    def to_dict(self) -> dict:
        extra = {"runtime": self.runtime} if self.runtime else {}
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
            "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "roll": round(self.roll_degrees, 2),
            "mask": self.mask,
            "pose": self.pose,
            **extra,
        }


STAGES = ("preprocess", "detect", "postprocess", "align", "classify")


class Pipeline:
    """BGR uint8 frame -> list of FaceResult, largest score first."""

    def __init__(
        self,
        detector: FaceDetector,
        *,
        align: AlignConfig | None = AlignConfig(),
        mask: CropClassifier | None = None,
        pose: CropClassifier | None = None,
        selections: dict | None = None,
    ):
        """``selections``: what the runtime layer chose per model (``maskgate.runtimes.select.Selection``),
        for pipelines opened from builds; every result then records it."""
        if (mask is not None or pose is not None) and align is None:
            raise ValueError(
                "the classifiers read aligned crops: pass an AlignConfig (align=None only without classifiers)"
            )
        self.detector = detector
        self.align = align
        self.mask = mask
        self.pose = pose
        self.selections = dict(selections or {})

    @classmethod
    def reference(
        cls,
        *,
        detector: str = DEFAULT_DETECTOR,
        weights: str | Path | None = None,
        device: str = "auto",
        score_threshold: float | None = None,
        input_size: tuple[int, int] | None = None,
        align: AlignConfig | None = AlignConfig(),
        mask_model: str | None = DEFAULT_MASK_MODEL,
        mask_weights: str | Path | None = None,
        pose_model: str | None = DEFAULT_POSE_MODEL,
        pose_weights: str | Path | None = None,
    ) -> Pipeline:
        """The PyTorch fp32 reference pipeline (needs the [torch] extra).

        ``mask_model=None`` / ``pose_model=None`` leave that classifier out.
        """
        det = FaceDetector.reference(
            detector, weights=weights, device=device, input_size=input_size, score_threshold=score_threshold
        )
        mask = CropClassifier.reference(mask_model, weights=mask_weights, device=device) if mask_model else None
        pose = CropClassifier.reference(pose_model, weights=pose_weights, device=device) if pose_model else None
        return cls(det, align=align, mask=mask, pose=pose)

    @classmethod
    def from_builds(
        cls,
        builds: str | Path,
        *,
        detector: str = DEFAULT_DETECTOR,
        mask_model: str | None = DEFAULT_MASK_MODEL,
        pose_model: str | None = DEFAULT_POSE_MODEL,
        prefer: str | tuple[str, ...] | None = None,
        strict: bool = False,
        threads: int | None = None,
        score_threshold: float | None = None,
        align: AlignConfig | None = AlignConfig(),
        formats: tuple[str, ...] | None = None,
        precisions: tuple[str, ...] | None = None,
        trust=None,
        profile: str = DEFAULT_PROFILE,
    ) -> Pipeline:
        """The pipeline from the bundles under ``builds`` (``maskgate build --out``), each model
        on the best build and device the runtime layer finds (``maskgate.runtimes.select``): device
        preference ``prefer`` (default npu > gpu > cpu, or ``MASKGATE_DEVICE``), falling back
        with a logged reason unless ``strict``; ``formats`` / ``precisions`` narrow the
        bundles considered; ``trust`` (``maskgate.runtimes.trust.TrustPolicy``, default the config
        file's ``[trust]``): only bundles that passed their gates, signed where the site
        requires it. ``profile`` (``maskgate.profiles``): the detector canvas wanted, ``general``
        (640x480) or ``turnstile`` (320x256); without a usable bundle at that canvas another is
        taken, with a logged reason. A backend that fails later, mid-stream, is replaced by the
        next candidate at the same canvas and the frame rerun there
        (``maskgate.runtimes.failover``). Needs no torch."""
        from maskgate.runtimes.failover import FailoverRunner
        from maskgate.runtimes.select import open_best
        from maskgate.runtimes.trust import configured_trust

        from .deployed import open_classifier

        trust = trust if trust is not None else configured_trust()
        select = {"prefer": prefer, "strict": strict, "threads": threads, "formats": formats, "precisions": precisions,
                  "trust": trust}

        def failover(model, selection, name: str, **narrow) -> None:
            model.runner = FailoverRunner(
                selection, lambda failed: open_best(builds, name, exclude=failed, **narrow, **select))

        opened: list = []
        try:
            det, det_sel = _open_profile_detector(builds, detector, get_profile(profile),
                                                  score_threshold=score_threshold, **select)
            opened.append(det)
            # The detector object letterboxes onto its bundle's canvas: a replacement keeps it.
            failover(det, det_sel, detector, input_size=tuple(det_sel.manifest.input.size))
            selections = {"detector": det_sel}
            classifiers = {}
            for role, name in (("mask", mask_model), ("pose", pose_model)):
                if name:
                    classifiers[role], selections[role] = open_classifier(builds, name, **select)
                    opened.append(classifiers[role])
                    failover(classifiers[role], selections[role], name)
        except BaseException:
            for model in opened:  # no half-open pipeline: free what did load
                model.close()
            raise
        return cls(det, align=align, mask=classifiers.get("mask"), pose=classifiers.get("pose"), selections=selections)

    def __call__(self, frame: np.ndarray, *, timings: dict | None = None,
                 classify: Callable[[np.ndarray], Iterable[int]] | None = None,
                 detections: Detections | None = None) -> list[FaceResult]:
        """``timings``: a dict that receives the ms spent per stage (STAGES) on this frame.
        ``detections``: this frame's faces, found already (the turnstile's still check reuses
        them on a frame that did not change); the detector is not run.
        ``classify``: given the detected boxes (N x 4), the indices of the faces to align and
        classify (the turnstile: the person at the gate only); the others come back with
        their box and landmarks, no crop, mask or pose. Default: every face."""
        stages = {} if timings is None else timings
        start = time.perf_counter()
        frame = as_bgr_frame(frame)
        stages["preprocess"] = stages.get("preprocess", 0.0) + (time.perf_counter() - start) * 1e3
        if detections is None:
            found = self.detector.detect(frame, timings=stages)
        else:
            found = detections
            for stage in ("detect", "postprocess"):
                stages.setdefault(stage, 0.0)
        stages.setdefault("align", 0.0)
        stages.setdefault("classify", 0.0)
        wanted = None if classify is None else {int(i) for i in classify(np.asarray(found.boxes).reshape(-1, 4))}
        results = []
        start = time.perf_counter()
        for index, (box, score, points) in enumerate(zip(found.boxes, found.scores, found.landmarks)):
            crop, roll = None, eye_roll_degrees(points)
            if self.align is not None and (wanted is None or index in wanted):
                aligned = align_face(
                    frame, box, points, size=self.align.size, method=self.align.method, margin=self.align.margin
                )
                crop, roll = aligned.image, aligned.roll_degrees
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(FaceResult(box=(x1, y1, x2, y2), score=float(score),
                                      landmarks=tuple((float(x), float(y)) for x, y in points), roll_degrees=roll,
                                      crop=crop, mask=None, pose=None, runtime=None))
        aligned_at = time.perf_counter()
        stages["align"] += (aligned_at - start) * 1e3
        # Model by model over every crop, not face by face: one batch where the runtime takes
        # one, else the model's weights stay in cache (5-20 % less per face at one thread).
        cropped = [(r, r.crop) for r in results if r.crop is not None]
        for classifier, field_name, as_result in ((self.mask, "mask", mask_result), (self.pose, "pose", pose_result)):
            if classifier is None or not cropped:
                continue
            probs = classifier.probabilities_many([crop for _, crop in cropped])
            for (result, _), p in zip(cropped, probs):
                setattr(result, field_name, as_result(p, classifier.spec.class_names))
        stages["classify"] += (time.perf_counter() - aligned_at) * 1e3
        if self.selections:  # after the frame: a model that failed over during it names its new build
            runtime = {role: sel.describe_runtime() for role, sel in self.selections.items()}
            for result in results:
                result.runtime = runtime
        return results

    @property
    def device(self) -> str:
        return self.detector.runner.describe()

    def close(self) -> None:
        self.detector.close()
        for classifier in (self.mask, self.pose):
            if classifier is not None:
                classifier.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_profile_detector(builds, model: str, profile, *, score_threshold, **select):
    """The detector at ``profile``'s canvas; without a usable one, the best at any canvas."""
    from maskgate.runtimes.select import NoUsableBuildError

    from .deployed import open_detector
    from .errors import BundleError

    try:
        return open_detector(builds, model, score_threshold=score_threshold, input_size=profile.detector_size,
                             **select)
    except (BundleError, NoUsableBuildError) as exc:
        # None of that canvas: the profile's own build makes one (the selector's hint names flags);
        # some, none usable: why not.
        why = f"none in {builds}" if isinstance(exc, BundleError) else str(exc)
        found = open_detector(builds, model, score_threshold=score_threshold, **select)
        size = found[1].manifest.input.size
        log.log(logging.INFO if profile.name == DEFAULT_PROFILE else logging.WARNING,
                "%s: no usable %s-profile detector (%s canvas): %s; running the %dx%d one (make one with "
                "'maskgate build --profile %s')", model, profile.name, profile.canvas, why, size[0], size[1],
                profile.name)
        return found
