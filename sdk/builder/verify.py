"""Step 5, verify: each finished bundle on the held-out inputs beside the fp32 reference
(its fidelity and the precision's gates), then the checker (integrity, golden fidelity and
gates, latency, task metrics with ``--data``), then the verdict recorded in its manifest."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .config import BuildConfig, BuildResult
from .reference import BuildData, ReferenceModel

if TYPE_CHECKING:
    from ..check.gates import GateResult
    from ..compare import Agreement


def held_out_fidelity(model: ReferenceModel, data: BuildData, folder: Path, manifest) -> Agreement:
    """The bundle against the reference on the held-out inputs (``maskgate.compare``)."""
    from ..calibration.dataset import in_layout
    from ..compare import compare
    from ..formats import get_format
    from ..runtimes.bundles import runner_for

    tensors, references = data.held_out(model)
    cap = (get_format(manifest.format).simulator_samples or {}).get(model.spec.task)
    if cap:  # a simulator takes seconds a frame: the figure rests on fewer samples (recorded in it)
        tensors, references = tensors[:cap], references[:cap]
    tensors = [in_layout(x, manifest.input.layout) for x in tensors]
    with runner_for(folder, manifest) as runner:
        return compare(model.spec, runner, tensors, references)


def held_out_gates(precision: str, fidelity: Agreement | None, *, fmt: str | None = None,
                   what: str = "the bundle") -> list[GateResult]:
    """The precision's gates on the held-out figures. Held out, the shares are gated as
    observed (hundreds of samples: the build's real figure); the golden check, on a few
    dozen, holds its 95 % upper bound to the gate (maskgate.check.gates)."""
    from ..check.gates import apply, configured_gates

    gate = configured_gates().gate(precision, fmt, what=what)
    # Not ``if fidelity``: an Agreement is falsy when it falls short of its own requirement.
    top1 = None if fidelity is None else fidelity.top1_agreement
    det = None if fidelity is None else fidelity.detections
    return apply(gate, cosine=None, top1=top1, recall=None if det is None else det.recall, landmark_nme=None)


def measure(result: BuildResult, model: ReferenceModel, data: BuildData, folder: Path, manifest) -> None:
    """Fill ``result.fidelity`` and ``result.gates`` for the bundle now in ``folder``."""
    result.fidelity = held_out_fidelity(model, data, folder, manifest)
    result.gates = held_out_gates(result.precision, result.fidelity, fmt=result.format, what=str(folder))


def check(result: BuildResult, folder: Path, config: BuildConfig, data: BuildData) -> None:
    """The checker on the finished bundle: integrity, golden fidelity and gates, latency,
    task metrics with --data."""
    from ..check import check_bundle

    # In a simulator, check_bundle keeps to the format's simulator_runs itself.
    checked = check_bundle(folder, runs=config.check_runs, threads=config.latency_threads,
                           task_data=data.task_data(), require_verdict=False)
    result.check = checked
    result.latency = checked.latency_ms


def record(result: BuildResult, folder: Path, *, signing_key=None) -> None:
    """Write the verdict into the bundle's manifest (the selector runs only bundles that
    passed) and sign it with ``signing_key`` if given."""
    from .manifest import record_verdict

    result.verdict = record_verdict(folder, result.verdict_record(), sign_key=signing_key)
