"""``maskgate.build``: reference models -> verified build bundles, for every format and precision.

For each model: the torch reference is built once, exported to fp32 ONNX (which the
OpenVINO builds read) and fp32 TFLite once, calibrated once (frames for the detector,
detected and aligned crops for the classifiers), and every requested format x precision
is converted into a bundle (see ``maskgate.converters.bundle``). Each bundle is then run on
held-out inputs beside the fp32 reference for its fidelity and timed. A bundle whose
build key (inputs, options, versions) matches a finished one on disk is reused.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskgate.converters.targets import ConvertOptions

from . import __version__
from .errors import BundleError, ConversionError, MaskGateError
from .progress import progress as progress_bar
from .registry import create_model, get_spec
from .specs import ModelSpec

log = logging.getLogger(__name__)
DEFAULT_MODELS = ("retinaface_mnet025", "mask_mobilenetv2", "pose_mobilenetv2_skip")
# Inputs stored in each bundle with their fp32 outputs for 'maskgate check' (detector: the
# frames with the most faces; 640x480 float frames are 1 MB each compressed).
GOLDEN_SAMPLES = {"face_detection": 3, "classification": 32}


@dataclass(frozen=True)
class BuildConfig:
    models: tuple[str, ...] = DEFAULT_MODELS
    formats: tuple[str, ...] = ("onnx", "openvino", "tflite")
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    out: Path = Path("build")
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
    accuracy_aware: bool = False  # ONNX / OpenVINO int8 below its gate: re-quantize with the worst layers in float
    force: bool = False
    sign_key: Path | None = None  # sign every bundle with this key (maskgate.converters.signing) once its verdict is recorded
    options: ConvertOptions = field(default_factory=ConvertOptions)


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
    fidelity: dict | None = None  # on the held-out inputs (maskgate.fidelity)
    latency: dict | None = None  # p50 / p90 / p99 ms from the bundle's check
    check: dict | None = None  # the checker's BundleCheck (golden fidelity, task metrics, gates)
    gates: list = field(default_factory=list)  # the precision's gates on the held-out figures
    diagnosis: dict | None = None  # int8: worst layers, and what --accuracy-aware kept in float (maskgate.accuracy_aware)
    verdict: dict | None = None  # what the bundle's manifest records: passed, and the failures (record_verdict)
    error: str | None = None

    @property
    def passed(self) -> bool:
        """Built, and every gate passed: the checker's (golden inputs) and the held-out ones."""
        return (self.error is None and bool(self.check and self.check["passed"])
                and all(g["passed"] for g in self.gates))

    def verdict_record(self) -> dict:
        """The gate verdict the bundle's manifest records (``build_manifest.record_verdict``)."""
        return {"passed": self.passed, "failures": self.failures(),
                "held_out": {"samples": (self.fidelity or {}).get("samples"), "agreement": headline_of(self.fidelity)},
                "golden_gates": (self.check or {}).get("gates", []), "held_out_gates": self.gates,
                "by": f"maskgate build {__version__}"}

    def failures(self) -> list[str]:
        from .check.gates import GateResult

        if self.error:
            return [self.error]
        out = [f"held-out {GateResult(**g).describe()}" for g in self.gates if not g["passed"]]
        if self.check and not self.check["passed"]:
            out += [self.check["error"]] if self.check.get("error") else [
                f"golden {GateResult(**g).describe()}" for g in self.check["gates"] if not g["passed"]]
        return out


def build(config: BuildConfig | None = None, *, progress: bool = True, **overrides) -> list[BuildResult]:
    """Build every requested bundle; keyword overrides replace BuildConfig fields."""
    from maskgate.converters.bundle import exclusive_folder
    from maskgate.converters.targets import FORMATS, PRECISIONS, Target

    config = dataclasses.replace(config or BuildConfig(), **overrides)
    signing_key = None
    if config.sign_key is not None:
        from maskgate.converters.signing import load_key

        signing_key = load_key(config.sign_key, signing=True)  # a bad key fails here, before any work
    for fmt in config.formats:
        Target(DEFAULT_MODELS[0], fmt, "fp32")  # validates names before any work
    for precision in config.precisions:
        Target(DEFAULT_MODELS[0], "onnx", precision)
    specs = [_spec(name, config) for name in config.models]
    order = {n: i for i, n in enumerate(FORMATS)}, {n: i for i, n in enumerate(PRECISIONS)}
    formats = sorted(set(config.formats), key=order[0].get)
    precisions = sorted(set(config.precisions), key=order[1].get)
    plan = [Target(spec.name, fmt, precision) for spec in specs for fmt in formats for precision in precisions]
    with exclusive_folder(Path(config.out)) as removed:
        if removed:
            log.warning("%s: removed %d unfinished staging folder(s) of an interrupted build: %s", config.out,
                        len(removed), ", ".join(removed))
        return _build_plan(config, specs, plan, progress=progress, signing_key=signing_key)


def _build_plan(config: BuildConfig, specs: list[ModelSpec], plan: list, *, progress: bool,
                signing_key=None) -> list[BuildResult]:
    session = _Session(config, signing_key=signing_key)
    by_name = {spec.name: spec for spec in specs}
    results: list[BuildResult] = []
    model = None
    try:
        bar = progress_bar(plan, desc="build", total=len(plan), enabled=progress, unit="bundle")
        for target in bar:
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(target.name)
            if model is None or model.spec.name != target.model:
                if model is not None:
                    session.release(model.spec.name)
                model = session.model(by_name[target.model])
            with quiet_converters():
                results.append(session.build_one(model, target))
    finally:
        session.close()
    return results


@contextlib.contextmanager
def quiet_converters():
    """The exporters log and warn at length about things that do not affect these models
    (missing torchvision ops, deprecations); a build shows its own progress instead."""
    import logging
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._export", "torch.export", "torch.utils._pytree",
                                              "nncf", "absl")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        # ORT's histogram calibrators and NNCF's progress bars print to stdout.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _spec(name: str, config: BuildConfig) -> ModelSpec:
    spec = get_spec(name)
    if spec.task == "face_detection":
        spec = dataclasses.replace(spec, input=dataclasses.replace(spec.input, size=tuple(config.detector_size)))
    return spec


class _Model:
    """One reference model and everything its bundles share."""

    def __init__(self, spec: ModelSpec, module, weights_sha: str, work: Path):
        self.spec = spec
        self.module = module
        self.weights_sha = weights_sha
        self.work = work
        self.onnx_fp32: Path | None = None
        self.onnx_equalized: Path | None = None
        self.tflite_fp32: dict[bool, Path] = {}
        self.calibration = None
        self.verify_tensors: list[np.ndarray] | None = None
        self.references: list[dict[str, np.ndarray]] | None = None
        self.notes: list[str] = []


class _Session:
    def __init__(self, config: BuildConfig, *, signing_key=None):
        """``signing_key``: the ``maskgate.converters.signing.BundleKey`` of ``config.sign_key``, read once."""
        from maskgate.calibration import default_frames
        from maskgate.calibration.frames import FrameSet

        self.config = config
        self.signing_key = signing_key
        self.work = Path(tempfile.mkdtemp(prefix=".work-", dir=config.out))
        self.calib_frames = (FrameSet.from_path(config.calib, split=_split(config.calib, "train"))
                             if config.calib else default_frames("calibrate"))
        self.verify_frames = (FrameSet.from_path(config.verify, split=_split(config.verify, "test"))
                              if config.verify else default_frames("verify"))
        self._models: dict[str, _Model] = {}
        self._task_data = None
        self._detector = None
        self._reference_runners: dict[str, object] = {}

    # -- shared pieces, made on first use -------------------------------------------------
    def model(self, spec: ModelSpec) -> _Model:
        from .models.weights import state_dict_sha256

        module = create_model(spec.name, weights=self.config.weights.get(spec.name)).eval().cpu()
        m = _Model(spec, module, state_dict_sha256(module.state_dict()), self.work / spec.name)
        m.work.mkdir(parents=True, exist_ok=True)
        self._models[spec.name] = m
        return m

    def release(self, name: str) -> None:
        self._models.pop(name, None)
        self._reference_runners.pop(name, None)

    def detector(self):
        """The fp32 reference detector that cuts classifier crops (default detector, build size)."""
        if self._detector is None:
            from .detector import FaceDetector

            self._detector = FaceDetector.reference(device="cpu", input_size=self.config.detector_size)
        return self._detector

    def task_data(self):
        """The labelled data of ``--data`` (test split), crops cut by the reference detector."""
        if self.config.data is not None and self._task_data is None:
            from .check.task import TaskData

            self._task_data = TaskData.load(self.config.data, detector=self.detector(), limit=self.config.data_limit)
        return self._task_data

    def reference_runner(self, m: _Model):
        from maskgate.runtimes.pytorch import TorchRunner

        if m.spec.name not in self._reference_runners:
            self._reference_runners[m.spec.name] = TorchRunner(
                m.module, input_names=(m.spec.input.name,), output_names=m.spec.outputs, device=self.config.reference_device)
        return self._reference_runners[m.spec.name]

    def calibration(self, m: _Model):
        from maskgate.calibration import calibration_set

        if m.calibration is None:
            m.calibration = calibration_set(m.spec, self.calib_frames, detector=self.detector(), limit=self.config.samples)
        return m.calibration

    def verification(self, m: _Model) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
        from maskgate.calibration import calibration_set

        if m.references is None:
            held_out = calibration_set(m.spec, self.verify_frames, detector=self.detector(), limit=self.config.verify_samples)
            m.verify_tensors = held_out.tensors
            runner = self.reference_runner(m)
            m.references = [runner.infer({m.spec.input.name: x}) for x in m.verify_tensors]
        return m.verify_tensors, m.references

    def onnx_fp32(self, m: _Model) -> Path:
        from maskgate.converters.onnx import export_fp32

        if m.onnx_fp32 is None:
            path = m.work / "fp32.onnx"
            options = self.config_options().onnx
            m.notes += export_fp32(m.module, m.spec, path, opset=options.opset, simplify=options.simplify)
            m.onnx_fp32 = path
        return m.onnx_fp32

    def onnx_equalized(self, m: _Model) -> Path:
        """The fp32 export of the cross-layer-equalized model, which ONNX int8 quantizes."""
        from maskgate.converters.equalize import equalize
        from maskgate.converters.onnx import export_fp32

        if m.onnx_equalized is None:
            module, _ = equalize(m.module)
            path = m.work / "fp32-equalized.onnx"
            options = self.config_options().onnx
            export_fp32(module, m.spec, path, opset=options.opset, simplify=options.simplify)
            m.onnx_equalized = path
        return m.onnx_equalized

    def tflite_fp32(self, m: _Model, job) -> Path:
        from maskgate.converters.tflite import export_fp32

        nhwc = job.options.tflite.channel_last_io
        if nhwc not in m.tflite_fp32:
            path = m.work / f"fp32{'-nhwc' if nhwc else ''}.tflite"
            export_fp32(job, path)
            m.tflite_fp32[nhwc] = path
        return m.tflite_fp32[nhwc]

    def config_options(self) -> ConvertOptions:
        return self.config.options

    # -- one bundle ----------------------------------------------------------------------
    def build_one(self, m: _Model, target) -> BuildResult:
        import time

        from maskgate.converters.bundle import verify_bundle

        folder = Path(self.config.out) / target.name
        result = BuildResult(target.name, target.model, target.format, target.precision, str(folder), "failed")
        start = time.perf_counter()
        try:
            calibration = self.calibration(m) if target.precision == "int8" else None
            key = self._build_key(m, target, calibration)
            reuse = False
            if not self.config.force and (folder / "manifest.json").is_file():
                try:
                    reuse = verify_bundle(folder).get("build_key") == key
                except BundleError:
                    reuse = False
            if reuse:
                result.status = "reused"
            else:
                self.convert(m, target, calibration, key, folder)
                result.status = "built"
            manifest = verify_bundle(folder)
            result.fidelity = self.held_out_fidelity(m, folder, manifest)
            result.gates = self.held_out_gates(result)
            result.diagnosis = manifest.get("accuracy_aware")
            if target.precision == "int8" and result.diagnosis is None and needs_diagnosis(result, self.config):
                from .accuracy_aware import diagnose_or_repair

                diagnose_or_repair(self, m, target, calibration, key, folder, result)
                manifest = verify_bundle(folder)
            result.size_bytes = sum((folder / f).stat().st_size for f in manifest["files"] if not f.endswith(".npz"))
            self._check(result, folder)
            from .build_manifest import record_verdict

            result.verdict = record_verdict(folder, result.verdict_record(), sign_key=self.signing_key)
        except (MaskGateError, RuntimeError, ValueError, OSError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - start
        return result

    def _build_key(self, m: _Model, target, calibration) -> str:
        from .build_manifest import tool_versions

        record = {"sdk": __version__, "target": target.name, "weights": m.weights_sha,
                  "input": dataclasses.asdict(m.spec.input), "options": self.config_options().for_format(target.format),
                  "int8_float": [m.spec.int8_float_leading_convs, m.spec.int8_float_head],
                  "calibration": calibration.sha256() if calibration is not None else None,
                  "verify": self.verify_frames.sha256(), "golden": GOLDEN_SAMPLES[m.spec.task],
                  "accuracy_aware": self.config.accuracy_aware and target.precision == "int8"
                  and target.format in ("onnx", "openvino"),
                  "tools": tool_versions(target.format)}
        return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()

    def job(self, m: _Model, target, calibration, *, key: str = "", options: ConvertOptions | None = None):
        """The converter's job for ``target`` (``options``: the build's unless given)."""
        from maskgate.converters.targets import ConversionJob

        options = options or self.config_options()
        from maskgate.converters.binding import STAMP_KEY, placeholder

        metadata = {STAMP_KEY: placeholder(), "maskgate_model": m.spec.name, "maskgate_task": m.spec.task,
                    "maskgate_precision": target.precision, "maskgate_sdk_version": __version__, "maskgate_build_key": key,
                    "maskgate_class_names": json.dumps(list(m.spec.class_names)),
                    "maskgate_input": json.dumps(dataclasses.asdict(m.spec.input))}
        int8_source = None
        if target.format == "onnx" and target.precision == "int8" and options.onnx.equalize:
            int8_source = self.onnx_equalized(m)
        return ConversionJob(target, m.spec, m.module, self.onnx_fp32(m), calibration, metadata, options,
                             onnx_int8_source=int8_source)

    def convert(self, m: _Model, target, calibration, key: str, folder: Path, *,
                options: ConvertOptions | None = None) -> None:
        """Convert ``target`` into ``folder`` (staged: a finished bundle or none at all)."""
        from maskgate.converters.bundle import staging, write_manifest

        from .build_manifest import golden_data, manifest_for

        job = self.job(m, target, calibration, key=key, options=options)
        with staging(folder) as tmp:
            try:
                artifact = self._run_converter(m, job, tmp)
            except MaskGateError:
                raise
            except Exception as exc:  # a converter's own error types: name the build that failed
                raise ConversionError(f"{target.name}: {type(exc).__name__}: {exc}") from exc
            tensors, references = self.verification(m)
            golden = golden_data(m.spec, tensors, references, layout=artifact.layout, count=GOLDEN_SAMPLES[m.spec.task])
            np.savez_compressed(tmp / "golden.npz", **golden)
            manifest = manifest_for(m, target, artifact, calibration, key, reference=self.reference_runner(m).describe())
            manifest["files"] = artifact.files + ["golden.npz"]
            write_manifest(tmp, manifest)

    def _run_converter(self, m: _Model, job, tmp: Path):
        fmt = job.target.format
        if fmt == "onnx":
            from maskgate.converters import onnx as converter

            return converter.convert(job, tmp)
        if fmt == "openvino":
            from maskgate.converters import openvino as converter

            validation = None
            if job.options.openvino.accuracy_control and job.target.precision == "int8":
                validation = self._ov_validation(m)
            return converter.convert(job, tmp, validation=validation)
        from maskgate.converters import tflite as converter

        return converter.convert(job, tmp, fp32_file=self.tflite_fp32(m, job))

    def _ov_validation(self, m: _Model):
        """Accuracy control scores agreement with the fp32 reference on the calibration
        inputs: the held-out set stays untouched for the reported figures."""
        from .fidelity import sample_agreement

        tensors = m.calibration.tensors
        runner = self.reference_runner(m)
        references = [runner.infer({m.spec.input.name: x}) for x in tensors]

        def score(compiled, item) -> float:
            x, ref = item
            result = compiled(x)
            outputs = {name: np.asarray(result[port]) for name, port in zip(m.spec.outputs, compiled.outputs)}
            return sample_agreement(m.spec, outputs, ref)

        return list(zip(tensors, references)), score

    def held_out_fidelity(self, m: _Model, folder: Path, manifest: dict) -> dict:
        from maskgate.calibration.dataset import in_layout
        from maskgate.runtimes.bundles import runner_for

        from .fidelity import compare

        tensors, references = self.verification(m)
        tensors = [in_layout(x, manifest["input"]["layout"]) for x in tensors]
        with runner_for(folder, manifest) as runner:
            return compare(m.spec, runner, tensors, references).to_dict()

    def _check(self, result: BuildResult, folder: Path) -> None:
        """The checker on the finished bundle: integrity, golden fidelity and gates, latency,
        task metrics with --data."""
        from .check import check_bundle

        check = check_bundle(folder, runs=self.config.check_runs, threads=self.config.latency_threads,
                             task_data=self.task_data(), require_verdict=False)
        result.check = check.to_dict()
        result.latency = check.latency_ms

    @staticmethod
    def held_out_gates(result: BuildResult) -> list[dict]:
        """The precision's gates on the held-out figures. Held out, the shares are gated as
        observed (hundreds of samples: the build's real figure); the golden check, on a few
        dozen, holds its 95 % upper bound to the gate (maskgate.check.gates)."""
        from .check.gates import apply, configured_gates

        gates = configured_gates()
        f = result.fidelity or {}
        return [g.to_dict() for g in apply(gates.get(result.precision, gates["int8"]), cosine=None,
                                           top1=f.get("top1_agreement"), recall=f.get("detection_recall"),
                                           landmark_nme=None)]

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
        shutil.rmtree(self.work, ignore_errors=True)


def needs_diagnosis(result: BuildResult, config: BuildConfig) -> bool:
    """int8 builds below a held-out gate are diagnosed (and repaired with --accuracy-aware);
    with --diagnose, every lossy one."""
    below = not all(g["passed"] for g in result.gates)
    lossy = (headline_of(result.fidelity) or 1.0) < 1.0
    return below or (config.diagnose and lossy)


def headline_of(fidelity: dict | None) -> float | None:
    """Top-1 agreement for a classifier, detection recall for a detector (held-out)."""
    f = fidelity or {}
    return f.get("top1_agreement") if f.get("top1_agreement") is not None else f.get("detection_recall")


def _split(path: Path, split: str) -> str | None:
    """A data folder (faces/ + scenes/) is narrowed to one split; a plain folder is used whole."""
    path = Path(path)
    return split if (path / "faces").is_dir() and (path / "scenes").is_dir() else None
