"""``maskgate.build()``: reference models -> verified bundles, one way through the steps:
plan -> reference models -> calibration -> convert -> verify -> repair -> record, then the
paired timing of each bundle against its fp32 sibling (``builder.speed``).

Each model's torch reference is made once, exported once per intermediate its formats share,
calibrated once, and every requested format x precision is converted into a bundle
(``maskgate.converters.bundle``), measured on held-out inputs beside the reference, checked,
repaired where asked, and its verdict recorded. A bundle whose build key (inputs, options,
versions) matches a finished one on disk is reused.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BundleError, MaskGateError
from ..files import writable_folder
from ..formats import get_format
from ..progress import progress as progress_bar
from . import convert as converting
from . import repair, speed, verify
from .config import BuildConfig, BuildResult
from .lanes import SimulatorLanes
from .lanes import results as lane_results
from .plan import plan
from .reference import BuildData, ReferenceModel

if TYPE_CHECKING:
    from ..check.gates import GateResult
    from ..compare import Agreement

log = logging.getLogger(__name__)


def build(config: BuildConfig | None = None, *, progress: bool = True, **overrides) -> list[BuildResult]:
    """Build every requested bundle; keyword overrides replace BuildConfig fields."""
    from ..converters.bundle import exclusive_folder

    config = dataclasses.replace(config or BuildConfig(), **overrides)
    # Everything the build reads is checked before --out is touched: a bad input fails in one
    # line and leaves no folder behind, not after minutes of conversions.
    signing_key = None
    if config.sign_key is not None:
        from ..converters.signing import load_key

        signing_key = load_key(config.sign_key, signing=True)
    if config.data is not None:  # read last, after minutes of conversions
        from ..check.task import TaskData

        TaskData.check_source(config.data)
    specs, targets = plan(config)
    _check_reference(config)
    frames = BuildData.frames(config)
    writable_folder(config.out, what="build bundles", flag="--out")
    with exclusive_folder(Path(config.out)) as removed:
        if removed:
            log.warning("%s: removed %d unfinished staging folder(s) of an interrupted build: %s", config.out,
                        len(removed), ", ".join(removed))
        data = BuildData(config, frames)
        by_name = {spec.name: spec for spec in specs}
        results: list = []
        model = None
        try:
            with SimulatorLanes() as lanes:
                bar = progress_bar(targets, desc="build", total=len(targets), enabled=progress, unit="bundle")
                for target in bar:
                    if hasattr(bar, "set_postfix_str"):
                        bar.set_postfix_str(target.name)
                    if model is None or model.spec.name != target.model:
                        model = None  # the previous reference is released before the next is made
                        model = data.reference(by_name[target.model])
                    with converting.quiet_converters():
                        results.append(build_bundle(model, target, config, data, signing_key=signing_key,
                                                    lanes=lanes))
                lanes.drain(progress=progress)
        finally:
            data.close()
        finished = lane_results(results)
        speed.pair_with_fp32(finished, threads=config.latency_threads, progress=progress)
        return finished


def _check_reference(config: BuildConfig) -> None:
    """The reference's device, and each weights file given (loaded into its model and dropped:
    a model's reference is made only when its turn comes, after the models before it)."""
    from ..registry import create_model
    from ..runtimes.pytorch import resolve_device

    resolve_device(config.reference_device)
    for name, weights in config.weights.items():
        create_model(name, weights=weights)


def build_bundle(model: ReferenceModel, target, config: BuildConfig, data: BuildData, *,
                 signing_key=None, lanes: SimulatorLanes | None = None) -> BuildResult | Future:
    """One bundle through every step; a failure is recorded in the result, never raised.
    With ``lanes``, a bundle checked in a simulator is verified there, beside the build (its
    result comes as a Future); any other waits for the lanes to empty before it is timed."""
    from ..converters.bundle import verify_bundle

    folder = Path(config.out) / target.name
    result = BuildResult(target.name, target.model, target.format, target.precision, str(folder), "failed")
    start = time.perf_counter()
    try:
        calibration = data.calibration(model) if target.precision == "int8" else None
        key = converting.build_key(model, target, config, data, calibration)
        manifest = _reusable(folder, key, force=config.force)  # verified already when it is reused
        if manifest is not None:
            result.status = "reused"
        else:
            converting.convert(model, target, data, calibration=calibration, key=key, folder=folder,
                               options=config.options_for(model.spec))
            result.status = "built"
            manifest = verify_bundle(folder)
    except (MaskGateError, RuntimeError, ValueError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - start
        return result
    result.seconds = time.perf_counter() - start

    def finish() -> BuildResult:
        return _verify_and_record(result, model, target, config, data, calibration, key, folder, manifest,
                                  signing_key=signing_key)

    if lanes is not None and get_format(target.format).simulated:
        data.held_out(model)  # made here, in build order: the lane only reads them
        data.task_data()
        return lanes.submit(target.format, finish)
    if lanes is not None:
        lanes.drain()
    return finish()


def _verify_and_record(result: BuildResult, model: ReferenceModel, target, config: BuildConfig, data: BuildData,
                       calibration, key: str, folder: Path, manifest, *, signing_key=None) -> BuildResult:
    """Steps 5-7 for a converted bundle: held-out figures, diagnosis or repair, the checker,
    the verdict in its manifest."""
    from ..converters.bundle import verify_bundle
    from ..converters.manifest import model_size

    start = time.perf_counter()
    try:
        verify.measure(result, model, data, folder, manifest)
        result.diagnosis = manifest.accuracy_aware
        if (target.precision == "int8" and result.diagnosis is None
                and repair.needs_diagnosis(result.fidelity, result.gates, diagnose_all=config.diagnose)):
            attempt = _attempt(model, target, config, data, calibration, key, folder)
            result.diagnosis = repair.diagnose_or_repair(attempt, result, repair=config.accuracy_aware)
            manifest = verify_bundle(folder)
        result.size_bytes = model_size(folder, manifest)
        verify.check(result, folder, config, data)
        verify.record(result, folder, signing_key=signing_key)
    except (MaskGateError, RuntimeError, ValueError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.seconds += time.perf_counter() - start
    return result


def _reusable(folder: Path, key: str, *, force: bool):
    """The verified manifest of a finished bundle in ``folder`` made from the same inputs
    (build key), else None."""
    from ..converters.bundle import verify_bundle
    from ..converters.manifest import MANIFEST

    if force or not (folder / MANIFEST).is_file():
        return None
    try:
        manifest = verify_bundle(folder)
    except BundleError:
        return None
    return manifest if manifest.build_key == key else None


def _attempt(model, target, config, data, calibration, key, folder) -> repair.BuildAttempt:
    """The repair's view of this bundle: rank its layers, rebuild it with other options."""
    from ..converters.bundle import read_manifest

    def rank() -> list:
        job = converting.conversion_job(model, target, calibration, options=config.options_for(model.spec))
        return repair.rank_layers(job, calibration)

    def rebuild(options) -> tuple[Agreement, list[GateResult]]:
        converting.convert(model, target, data, calibration=calibration, key=key, folder=folder, options=options)
        fidelity = verify.held_out_fidelity(model, data, folder, read_manifest(folder))
        return fidelity, verify.held_out_gates(target.precision, fidelity, fmt=target.format, what=str(folder))

    def layer_report() -> dict | None:
        report = get_format(target.format).layer_report_function()
        return report(folder, read_manifest(folder), calibration.tensors[0]) if report else None

    return repair.BuildAttempt(target.format, folder, config.options_for(model.spec), rank, rebuild, layer_report)
