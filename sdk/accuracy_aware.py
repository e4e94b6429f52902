"""int8 diagnosis and accuracy-aware re-quantization, for ``maskgate build``.

An int8 build below its gate on the held-out inputs (with ``--diagnose``: any lossy one)
is diagnosed: ``maskgate.converters.diagnose`` ranks its layers by the quantization noise each adds
(ONNX Runtime's QDQ debugging tools, on calibration inputs, so the held-out figures stay
untouched). With ``--accuracy-aware`` an ONNX or OpenVINO build is then re-quantized with
the worst 2, 4, 8, ... layers kept in float (ORT ``nodes_to_exclude``, NNCF ignored
scope) until its held-out gate passes; the bundle's manifest records the ranking, the
layers excluded and every round, and a later build with the same inputs reuses it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

STEPS = (2, 4, 8, 16, 32)  # layers kept in float, round by round
SHOWN = 8  # worst layers named in the report
DIAGNOSIS_SAMPLES = {"face_detection": 4, "classification": 32}  # calibration inputs the ranking runs on
REPAIRABLE = ("onnx", "openvino")


def diagnose(session, m, target, calibration) -> list:
    """The layer ranking (``maskgate.converters.diagnose.LayerError``, worst first) of ``target``."""
    from maskgate.converters.diagnose import diagnose_job

    job = session.job(m, target, calibration)
    return diagnose_job(job, calibration.tensors[:DIAGNOSIS_SAMPLES.get(m.spec.task, 8)])


def excluding(options, fmt: str, nodes: list[str]):
    """ConvertOptions with ``nodes`` (float ONNX graph names) added to what stays float."""
    from maskgate.converters.diagnose import openvino_scope

    if fmt == "onnx":
        onnx = dataclasses.replace(options.onnx, keep_float=tuple(dict.fromkeys(options.onnx.keep_float + tuple(nodes))))
        return dataclasses.replace(options, onnx=onnx)
    ov = options.openvino
    scope = tuple(dict.fromkeys(ov.ignored_scope + openvino_scope(nodes)))
    return dataclasses.replace(options, openvino=dataclasses.replace(ov, ignored_scope=scope))


def diagnose_or_repair(session, m, target, calibration, key: str, folder: Path, result) -> None:
    """Fill ``result.diagnosis``; with --accuracy-aware, rebuild ``folder`` until the gate passes
    (``result.fidelity`` / ``gates`` then describe the bundle left on disk)."""
    from maskgate.converters.bundle import read_manifest, update_manifest

    from .build import headline_of

    ranking = diagnose(session, m, target, calibration)
    proxy = {"openvino": " (ranked on the ONNX graph, whose node names OpenVINO keeps)",
             "tflite": " (ranked on the ONNX graph: TFLite names its ops differently, so --accuracy-aware does not "
                       "repair TFLite builds)"}.get(target.format, "")
    record = {"method": "ONNX Runtime qdq_loss_debug: SQNR each node adds, on calibration inputs" + proxy,
              "worst_layers": [e.to_dict() for e in ranking[:SHOWN]], "excluded": [],
              "rounds": [{"excluded": 0, "fidelity": headline_of(result.fidelity),
                          "passed": all(g["passed"] for g in result.gates)}]}
    if session.config.accuracy_aware and target.format in REPAIRABLE and not record["rounds"][0]["passed"]:
        candidates = [e.node for e in ranking if e.added_db > 0]
        for count in STEPS:
            nodes = candidates[:count]
            if not nodes or len(nodes) == len(record["excluded"]):
                break  # nothing more to keep in float
            options = excluding(session.config_options(), target.format, nodes)
            session.convert(m, target, calibration, key, folder, options=options)
            result.fidelity = session.held_out_fidelity(m, folder, read_manifest(folder))
            result.gates = session.held_out_gates(result)
            passed = all(g["passed"] for g in result.gates)
            record["excluded"] = nodes
            record["rounds"].append({"excluded": len(nodes), "fidelity": headline_of(result.fidelity), "passed": passed})
            if passed:
                break
    result.diagnosis = record
    update_manifest(folder, {"accuracy_aware": record})  # kept with the bundle: a reused build still reports it


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
