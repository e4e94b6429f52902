"""What a build is asked for (``BuildConfig``) and what it gives per bundle (``BuildResult``)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import DEFAULT_BUILDS
from ..formats import DEFAULT_FORMATS, PRECISIONS, ConvertOptions
from ..version import __version__

if TYPE_CHECKING:
    from ..bench.paired import PairedRatio
    from ..check.checker import BundleCheck, Latency
    from ..check.gates import GateResult
    from ..compare import Agreement

DEFAULT_MODELS = ("retinaface_mnet025", "mask_mobilenetv2", "pose_mobilenetv2_skip")
# Inputs stored in each bundle with their fp32 outputs for 'maskgate check' (detector: the
# frames with the most faces; 640x480 float frames are 1 MB each compressed).
GOLDEN_SAMPLES = {"face_detection": 3, "classification": 32}


@dataclass(frozen=True)
class BuildConfig:
    models: tuple[str, ...] = DEFAULT_MODELS
    formats: tuple[str, ...] = DEFAULT_FORMATS
    precisions: tuple[str, ...] = PRECISIONS
    out: Path = DEFAULT_BUILDS
    calib: Path | None = None  # None: the shipped default set; a data folder uses its train split
    verify: Path | None = None  # None: the shipped held-out set; a data folder uses its test split
    samples: int = 128  # calibration samples per model
    verify_samples: int = 300  # held-out inputs per model for the fidelity figures
    detector_size: tuple[int, int] = (640, 480)  # fixed detector input (NPUs need static shapes)
    weights: dict[str, str] = field(default_factory=dict)  # model name -> checkpoint replacing the shipped one
    reference_device: str = "auto"  # GPU where present, else CPU; recorded in every manifest
    latency_threads: int = 1
    check_runs: int = 20  # timed runs per bundle in its check (p50/p90/p99)
    data: Path | None = None  # labelled data (a data folder or crop set): task metrics per bundle (maskgate.check.task)
    data_limit: int | None = None  # at most this many source images of faces/ and scenes/ each
    diagnose: bool = False  # rank the layers of every lossy int8 build (those below a gate always are)
    accuracy_aware: bool = False  # a repairable int8 format below its gate: re-quantize with the worst layers in float
    force: bool = False
    sign_key: Path | None = None  # sign every bundle with this key (maskgate.converters.signing) once its verdict is in
    options: ConvertOptions = field(default_factory=ConvertOptions)
    # The detector's own converter options (a profile's defaults, for_profile); None: ``options``.
    detector_options: ConvertOptions | None = None

    def options_for(self, spec) -> ConvertOptions:
        """The converter options of ``spec``'s bundles."""
        if spec.task == "face_detection" and self.detector_options is not None:
            return self.detector_options
        return self.options

    @classmethod
    def for_profile(cls, profile: str, **fields) -> BuildConfig:
        """A build of ``profile``'s detector canvas with its tuned detector weights and, for
        the detector, its converter defaults (what ``fields`` give wins: ``detector_size``,
        ``weights``, and ``options`` other than the defaults)."""
        from ..profiles import get_profile

        chosen = get_profile(profile)
        weights = dict(fields.pop("weights", None) or {})
        if chosen.detector_weights_path is not None:
            weights.setdefault("retinaface_mnet025", str(chosen.detector_weights_path))
        fields.setdefault("detector_size", chosen.detector_size)
        options = fields.get("options") or ConvertOptions()
        if chosen.convert_defaults and options.to_dict() == ConvertOptions().to_dict():
            # The build chose no converter option of its own: the profile's, for its detector only
            # (the classifier bundles are shared with the other profiles).
            for fmt, name, value in chosen.convert_defaults:
                options = options.replace(**{fmt: dataclasses.replace(options[fmt], **{name: value})})
            fields.setdefault("detector_options", options)
        return cls(weights=weights, **fields)


@dataclass
class BuildResult:
    target: str
    model: str
    format: str
    precision: str
    path: str
    status: str  # built | reused | failed
    size_bytes: int = 0
    seconds: float = 0.0
    fidelity: Agreement | None = None  # against the fp32 reference on the held-out inputs
    latency: Latency | None = None  # from the bundle's check
    check: BundleCheck | None = None  # the checker's (golden fidelity, task metrics, gates, latency)
    gates: list[GateResult] = field(default_factory=list)  # the precision's gates on the held-out figures
    diagnosis: dict | None = None  # int8: worst layers, and what --accuracy-aware kept in float (builder.repair)
    verdict: dict | None = None  # what the bundle's manifest records: passed, and the failures (record_verdict)
    vs_fp32: PairedRatio | None = None  # its time over its fp32 sibling's, in the same rounds (builder.speed)
    error: str | None = None

    @property
    def passed(self) -> bool:
        """Built, and every gate passed: the checker's (golden inputs) and the held-out ones."""
        return self.error is None and self.check is not None and self.check.passed and all(g.passed for g in self.gates)

    @property
    def headline(self) -> float | None:
        """Held-out top-1 agreement for a classifier, detection recall for a detector."""
        return self.fidelity.headline if self.fidelity is not None else None

    def verdict_record(self) -> dict:
        """The gate verdict the bundle's manifest records (``builder.manifest.record_verdict``)."""
        return {"passed": self.passed, "failures": self.failures(),
                "held_out": {"samples": None if self.fidelity is None else self.fidelity.samples,
                             "agreement": self.headline},
                "golden_gates": [g.to_dict() for g in self.check.gates] if self.check else [],
                "held_out_gates": [g.to_dict() for g in self.gates],
                "by": f"maskgate build {__version__}"}

    def failures(self) -> list[str]:
        if self.error:
            return [self.error]
        out = [f"held-out {g.describe()}" for g in self.gates if not g.passed]
        if self.check and not self.check.passed:
            out += [self.check.error] if self.check.error else [f"golden {f}" for f in self.check.failures()]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``report.json``: every field, with ``passed`` and ``failures``."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**fields, "check": self.check.to_dict() if self.check else None,
                "fidelity": self.fidelity.to_dict() if self.fidelity is not None else None,
                "latency": self.latency.to_dict() if self.latency is not None else None,
                "vs_fp32": self.vs_fp32.to_dict() if self.vs_fp32 is not None else None,
                "gates": [g.to_dict() for g in self.gates], "passed": self.passed, "failures": self.failures()}
