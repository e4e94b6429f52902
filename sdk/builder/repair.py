"""Step 6, repair: int8 diagnosis and accuracy-aware re-quantization.

An int8 build below its gate on the held-out inputs (with ``--diagnose``: any lossy one)
is diagnosed: ``maskgate.converters.diagnose`` ranks its layers by the quantization noise
each adds (ONNX Runtime's QDQ debugging tools, on calibration inputs, so the held-out
figures stay untouched). With ``--accuracy-aware`` a format that can keep layers in float
(``FormatSpec.keep_float``) is re-quantized with the worst 2, 4, 8, ... layers in float
until its held-out gate passes; the bundle's manifest records the ranking, the layers kept
in float and every round, and a later build with the same inputs reuses it.

The repair knows the build only through ``Attempt``: what to rank, how to rebuild with
other options, and the figures of the bundle left on disk.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..formats import ConvertOptions, get_format

if TYPE_CHECKING:
    from ..check.gates import GateResult
    from ..compare import Agreement

STEPS = (2, 4, 8, 16, 32)  # layers kept in float, round by round
SHOWN = 8  # worst layers named in the report
DIAGNOSIS_SAMPLES = {"face_detection": 4, "classification": 32}  # calibration inputs the ranking runs on


class Attempt(Protocol):
    """One int8 bundle as the repair sees it."""

    format: str
    folder: Path
    options: ConvertOptions  # what it was built with

    def ranking(self) -> list:
        """``converters.diagnose.LayerError`` of its layers, worst first."""

    def rebuild(self, options: ConvertOptions) -> tuple[Agreement, list[GateResult]]:
        """Convert again with ``options`` into ``folder``; the held-out (fidelity, gates) of the result."""

    def layer_report(self) -> dict | None:
        """The format's own per-layer error report of the bundle (``FormatSpec.layer_report``), or None."""


@dataclass
class BuildAttempt:
    """``Attempt`` over the build's steps (``builder.convert`` and ``builder.verify``)."""

    format: str
    folder: Path
    options: ConvertOptions
    ranking: Callable[[], list]  # the protocol's methods, as the build's closures
    rebuild: Callable[[ConvertOptions], tuple[Agreement, list[GateResult]]]
    layer_report: Callable[[], dict | None]


def rank_layers(job: Any, calibration) -> list:
    """The layer ranking of a conversion job, on a few of its calibration inputs."""
    from ..converters.diagnose import diagnose_job

    return diagnose_job(job, calibration.tensors[:DIAGNOSIS_SAMPLES.get(job.spec.task, 8)])


def needs_diagnosis(fidelity: Agreement | None, gates: list[GateResult], *, diagnose_all: bool) -> bool:
    """int8 builds below a held-out gate are diagnosed (and repaired with --accuracy-aware);
    with --diagnose, every lossy one."""
    below = not all(g.passed for g in gates)
    lossy = ((fidelity.headline if fidelity is not None else None) or 1.0) < 1.0
    return below or (diagnose_all and lossy)


def diagnose_or_repair(attempt: Attempt, result, *, repair: bool) -> dict:
    """The diagnosis record (also written into the bundle's manifest); with ``repair``, rebuild
    until the gate passes (``result.fidelity`` / ``gates`` then describe the bundle on disk)."""
    from ..converters.bundle import update_manifest

    fmt = get_format(attempt.format)
    ranking = attempt.ranking()
    method = "ONNX Runtime qdq_loss_debug: SQNR each node adds, on calibration inputs" + fmt.diagnosis_note
    record: dict[str, Any] = {"method": method, "worst_layers": [e.to_dict() for e in ranking[:SHOWN]], "excluded": [],
                              "rounds": [{"excluded": 0, "fidelity": result.headline,
                                          "passed": all(g.passed for g in result.gates)}]}
    toolkit = attempt.layer_report()
    if toolkit:
        record["toolkit"] = toolkit
    keep_float = fmt.keep_float
    if repair and keep_float is not None and not record["rounds"][0]["passed"]:
        candidates = [e.node for e in ranking if e.added_db > 0]
        for count in STEPS:
            nodes = candidates[:count]
            if not nodes or len(nodes) == len(record["excluded"]):
                break  # nothing more to keep in float
            options = attempt.options.replace(**{fmt.name: keep_float(attempt.options[fmt.name], nodes)})
            result.fidelity, result.gates = attempt.rebuild(options)
            passed = all(g.passed for g in result.gates)
            record["excluded"] = nodes
            record["rounds"].append(
                {"excluded": len(nodes), "fidelity": result.headline, "passed": passed}
            )
            if passed:
                break
    update_manifest(attempt.folder, {"accuracy_aware": record})  # kept with the bundle: a reused build still reports it
    return record


def describe(diagnosis: dict | None) -> str:
    """One line for the build table's notes."""
    if not diagnosis:
        return ""
    worst = ", ".join(f"{layer['node']} ({layer['op_type']}, +{layer['added_db']:.1f} dB)"
                      for layer in diagnosis["worst_layers"][:3])
    text = f"worst layers: {worst}"
    if diagnosis["excluded"]:
        last = diagnosis["rounds"][-1]
        text += (f"; --accuracy-aware kept {len(diagnosis['excluded'])} in float over {len(diagnosis['rounds']) - 1} "
                 f"round(s): fidelity {diagnosis['rounds'][0]['fidelity']:.2%} -> {last['fidelity']:.2%}"
                 f" ({'passes' if last['passed'] else 'still below'} the gate)")
    return text
