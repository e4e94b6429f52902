"""Check one bundle, or every bundle of a builds folder, against its fp32 reference."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import compare
from ..converters.manifest import GOLDEN, MANIFEST, Manifest, model_size
from ..errors import MaskGateError
from . import gates as gating

if TYPE_CHECKING:
    from ..runtimes.placement import Placement
    from ..runtimes.rknn import RebuildComparison


@dataclass(frozen=True)
class Latency:
    """One bundle's inference times in ms: percentiles over ``runs`` timed runs after ``warmup``,
    on ``threads`` CPU threads (None: the runtime's default)."""

    p50: float
    p90: float
    p99: float
    p25: float
    p75: float
    runs: int
    warmup: int
    threads: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

REPORT_SCHEMA_VERSION = 1


@dataclass
class BundleCheck:
    """Everything measured for one bundle; truthy when it passed every gate."""

    bundle: str
    name: str | None = None
    model: str | None = None
    task: str | None = None
    format: str | None = None
    precision: str | None = None
    integrity: str = "not checked"  # "ok", or what is wrong
    runtime: str | None = None  # what ran it: format, precision, backend/device
    placement: Placement | None = None  # where its operations ran, when the runtime says
    samples: int = 0
    outputs: dict[str, compare.TensorError] = field(default_factory=dict)  # output name -> its worst error
    top1_agreement: float | None = None
    detections: compare.DetectionAgreement | None = None  # detectors
    latency_ms: Latency | None = None
    size_bytes: int = 0
    task_metrics: dict | None = None  # with --data: see maskgate.check.task
    gates: list[gating.GateResult] = field(default_factory=list)
    build_verdict: dict | None = None  # what the bundle's build recorded (maskgate.converters.bundle.verdict_problem)
    verdict_problem: str | None = None  # set when the recorded verdict does not let the bundle run
    # A runner that had to make the model again to run it (the RKNN simulator): how the model it
    # ran compares with the bundled file (identical, or exactly which bytes differ)
    rebuild: RebuildComparison | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return (self.error is None and self.integrity == "ok" and self.verdict_problem is None and bool(self.gates)
                and all(g.passed for g in self.gates))

    def __bool__(self) -> bool:
        return self.passed

    @property
    def headline(self) -> float | None:
        """Golden top-1 agreement for a classifier, the share of the reference's faces found for a detector."""
        if self.top1_agreement is not None:
            return self.top1_agreement
        return None if self.detections is None else self.detections.recall

    def failures(self) -> list[str]:
        if self.error:
            return [self.error]
        return ([f"build verdict: {self.verdict_problem}"] if self.verdict_problem else []) + [
            g.describe() for g in self.gates if not g.passed]

    def to_dict(self) -> dict:
        """The JSON of check reports (``last-check.json``): every field, with ``passed``."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        typed = ("placement", "latency_ms", "rebuild", "detections")
        return {**fields, **{k: None if fields[k] is None else fields[k].to_dict() for k in typed},
                "outputs": {name: e.to_dict() for name, e in self.outputs.items()},
                "gates": [g.to_dict() for g in self.gates], "passed": self.passed}


def check_bundle(bundle: str | Path, *, prefer=None, gate_overrides: dict | None = None, runs: int = 50,
                 warmup: int = 5, threads: int | None = None, task_data=None, trust=None,
                 require_verdict: bool = True) -> BundleCheck:
    """Integrity, fidelity on the golden samples, latency and gates for one bundle.
    ``gate_overrides``: Gate fields replacing the precision's gate (defaults, then the config
    file's ``[gates.<precision>]``; None values ignored);
    ``task_data``: a ``maskgate.check.task.TaskData`` for task metrics on labelled data;
    ``trust``: a ``maskgate.runtimes.trust.TrustPolicy`` (default: the config file's ``[trust]``): its
    key's signature is part of the integrity check; ``require_verdict``: the bundle fails
    unless its build recorded that it passed (off for the build's own check, which makes it)."""
    from maskgate.converters.bundle import verdict_problem, verify_bundle
    from maskgate.formats import SIMULATOR, get_format
    from maskgate.runtimes.select import open_best
    from maskgate.runtimes.trust import configured_trust

    bundle = Path(bundle)
    result = BundleCheck(str(bundle))
    try:
        trust = trust if trust is not None else configured_trust()
        manifest = verify_bundle(bundle, key=trust.key)
    except MaskGateError as exc:
        result.integrity = str(exc)
        result.error = f"integrity: {exc}"
        return result
    result.integrity = "ok"
    result.name, result.model, result.task = manifest.name, manifest.model, manifest.task
    result.format, result.precision = manifest.format, manifest.precision
    result.size_bytes = model_size(bundle, manifest)
    result.build_verdict = manifest.verdict
    if require_verdict:
        result.verdict_problem = verdict_problem(manifest)
    try:
        gate = gating.configured_gates(gate_overrides).gate(manifest.precision, manifest.format, what=str(bundle))
        # This bundle is measured whatever its build concluded: the selector may not pass it over.
        selection = open_best(bundle, manifest.model, prefer=prefer, threads=threads,
                              formats=(manifest.format,), precisions=(manifest.precision,),
                              trust=dataclasses.replace(trust, allow_failed_builds=True), checking=True)
        if selection.device_kind == SIMULATOR:  # seconds a frame: a few timed runs say enough
            runs = min(runs, get_format(manifest.format).simulator_runs or runs)
            warmup = min(warmup, 1)
        with selection.runner as runner:
            result.runtime = selection.describe_runtime()
            result.placement = runner.placement
            result.rebuild = getattr(runner, "rebuild", None)  # runners that make the model again (RKNN simulator)
            inputs = _fidelity(result, runner, bundle, manifest)
            result.latency_ms = _latency(runner, {manifest.input.name: inputs[:1]}, runs=runs, warmup=warmup,
                                         threads=threads)
            if task_data is not None:
                result.task_metrics = _task_metrics(runner, bundle, manifest, task_data)
    except MaskGateError as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    # A detector's raw outputs are mostly background anchors whose regressions nobody reads:
    # it is gated on what comes out of post-processing; classifiers on their probabilities too.
    cosine = (
        min((o.cosine for o in result.outputs.values()), default=None) if result.task == "classification" else None
    )
    det = result.detections
    result.gates = gating.apply(gate, cosine=cosine, top1=result.top1_agreement,
                                recall=None if det is None else det.recall,
                                landmark_nme=None if det is None else det.landmark_nme,
                                top1_samples=result.samples if result.top1_agreement is not None else None,
                                recall_samples=None if det is None else det.reference)
    return result


@dataclass
class CheckReport:
    """A whole check run: every bundle, the pipelines (with --data), and the gates used."""

    path: str
    bundles: list[BundleCheck]
    gates: dict  # precision -> Gate fields
    pipelines: list = field(default_factory=list)  # maskgate.check.task.pipeline_metrics dicts
    data: str | None = None  # TaskData.describe()

    @property
    def passed(self) -> bool:
        return bool(self.bundles) and all(self.bundles)

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        return {"schema_version": REPORT_SCHEMA_VERSION, "path": self.path, "passed": self.passed,
                "gates": self.gates, "data": self.data, "bundles": [b.to_dict() for b in self.bundles],
                "pipelines": self.pipelines}


def check_pipelines(builds: str | Path, task_data, *, prefer=None, threads: int | None = None,
                    progress: bool = False) -> list[dict]:
    """The whole pipeline on the labelled scenes, once per format and precision that has a
    detector and a mask classifier build (a face counts when found AND its mask label is right)."""
    from ..progress import progress as progress_bar
    from . import task

    builds = Path(builds)
    if (builds / MANIFEST).is_file() or not task_data.scenes:
        return []
    groups = task.pipeline_groups(builds)
    out = []
    for detector, mask, fmt, precision in progress_bar(groups, desc="pipelines", total=len(groups), enabled=progress):
        try:
            out.append(task.pipeline_metrics(builds, task_data.scenes, detector=detector, mask=mask, format=fmt,
                                             precision=precision, prefer=prefer, threads=threads))
        except MaskGateError as exc:
            out.append({"format": fmt, "precision": precision, "error": f"{type(exc).__name__}: {exc}"})
    return out


def check_builds(builds: str | Path, *, progress: bool = False, **options) -> list[BundleCheck]:
    """Every bundle directly under ``builds`` (or ``builds`` itself when it is one);
    ``options``: those of ``check_bundle``."""
    from maskgate.runtimes.select import bundles_at

    from ..progress import progress as progress_bar

    folders = bundles_at(Path(builds))
    if not folders:
        from ..errors import BundleError

        raise BundleError(f"{builds}: no bundle here (a bundle is a folder with manifest.json); "
                          "run 'maskgate build' first or point at its --out folder")
    results = [check_bundle(folder, **options)
               for folder in progress_bar(folders, desc="check", total=len(folders), enabled=progress, unit="bundle")]
    return sorted(results, key=_report_order)


def _report_order(result: BundleCheck) -> tuple:
    """As the build's table: the detector first, then each format in the registry's order, each
    precision after its fp32 baseline (by name, fp16 came before fp32)."""
    from ..formats import FORMATS, PRECISIONS

    formats, precisions = list(FORMATS), list(PRECISIONS)
    return (result.task != "face_detection", result.model or "", formats.index(result.format)
            if result.format in formats else len(formats), precisions.index(result.precision)
            if result.precision in precisions else len(precisions), result.bundle)


def _task_metrics(runner, bundle: Path, manifest: Manifest, data) -> dict | None:
    from ..deployed import spec_from_manifest
    from . import task

    spec = spec_from_manifest(manifest, source=bundle / MANIFEST)
    if spec.task == "face_detection":
        from ..detector import FaceDetector

        return task.detector_metrics(FaceDetector(spec, runner, options=spec.detection), data.scenes)
    from ..classifier import CropClassifier

    return task.classifier_metrics(CropClassifier(spec, runner), data.crops) if data.crops is not None else None


def golden_inputs(bundle: Path, manifest: Manifest) -> np.ndarray:
    """The inputs a bundle carries for its own check (``golden.npz``), float32."""
    return _golden(bundle, manifest)[0]


def _golden(bundle: Path, manifest: Manifest) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from ..errors import BundleError

    try:
        with np.load(bundle / GOLDEN) as data:
            inputs = data["inputs"].astype(np.float32)
            outputs = {name: data[f"output_{name}"] for name in manifest.output_names}
    except (OSError, KeyError, ValueError) as exc:
        raise BundleError(
            f"{bundle / GOLDEN}: unreadable or incomplete golden data ({exc}); rebuild the bundle"
        ) from exc
    if not len(inputs):
        raise BundleError(f"{bundle / GOLDEN}: holds no samples; rebuild the bundle")
    return inputs, outputs


def _fidelity(result: BundleCheck, runner, bundle: Path, manifest: Manifest) -> np.ndarray:
    """Fills the fidelity figures of ``result``; returns the golden inputs."""
    from ..deployed import spec_from_manifest

    spec = spec_from_manifest(manifest, source=bundle / MANIFEST)
    inputs, reference = _golden(bundle, manifest)
    references = [{name: values[k:k + 1] for name, values in reference.items()} for k in range(len(inputs))]
    agreement = compare.compare(spec, runner, [inputs[k:k + 1] for k in range(len(inputs))], references)
    result.samples = agreement.samples
    result.outputs = dict(agreement.outputs)
    result.top1_agreement = agreement.top1_agreement
    result.detections = agreement.detections
    return inputs


def _latency(runner, feed: dict, *, runs: int, warmup: int, threads: int | None) -> Latency:
    for _ in range(warmup):
        runner.infer(feed)
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        runner.infer(feed)
        times.append((time.perf_counter() - start) * 1e3)
    p25, p50, p75, p90, p99 = np.percentile(times, [25, 50, 75, 90, 99])
    return Latency(float(p50), float(p90), float(p99), float(p25), float(p75), runs=len(times), warmup=warmup,
                   threads=threads)
