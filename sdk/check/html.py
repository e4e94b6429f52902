"""``maskgate check --html``: the check report as one self-contained HTML page."""
from __future__ import annotations

import html
from pathlib import Path

from . import plots

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#eee}.fail{background:#fde2e1}
.pass{color:#1a7f37;font-weight:bold}.bad{color:#c00;font-weight:bold}img{max-width:100%;display:block;margin:.5em 0}
.note{color:#555;font-size:13px}"""


# Said wherever a share is gated on the golden inputs: the rule that decided it.
WILSON_NOTE = ("A share measured on the golden inputs (a few dozen crops, about 30 faces) passes when the 95 % Wilson "
               "upper bound of what was observed reaches its gate: one miss in 32 crops passes a 0.99 gate, two fail "
               "it; a gate of 1 allows no miss.")


def headline_gate(gates) -> float | None:
    """The threshold of the gate on the headline share (min_top1 or min_recall), for plots."""
    return next((g.threshold for g in gates if g.name in ("min_top1", "min_recall")), None)


def gates_html(gates, *, label: str = "") -> str:
    """Each gate with its figure and threshold, passed or failed: what decided the verdict."""
    e = html.escape
    return "<br>".join(f"<span class={'pass' if g.passed else 'bad'}>{'pass' if g.passed else 'FAIL'}</span> "
                       f"{e(label)}{e(g.describe())}" for g in gates) or "-"


def entries_of(bundles) -> list[dict]:
    """The plot entries (see maskgate.check.plots) of BundleCheck results."""
    out = []
    for b in bundles:
        if b.model is None:
            continue
        lat = b.latency_ms.to_dict() if b.latency_ms else {}
        fidelity = b.headline
        out.append({"model": b.model, "format": b.format, "precision": b.precision, "p50": lat.get("p50"),
                    "p90": lat.get("p90"), "p25": lat.get("p25"), "p75": lat.get("p75"), "fidelity": fidelity,
                    "task": b.task_metrics, "gate": headline_gate(b.gates)})
    return out


def img(png: str | None, alt: str) -> str:
    if png is None:
        return f"<p class=note>({html.escape(alt)}: install matplotlib for the plot)</p>"
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def check_html(report) -> str:
    """``report``: a ``maskgate.check.checker.CheckReport``."""
    from .task import summary as task_summary

    e = html.escape
    bundles = report.bundles
    passed = sum(1 for b in bundles if b)
    rows = []
    for b in bundles:
        lat = b.latency_ms.to_dict() if b.latency_ms else {}
        if b.top1_agreement is not None:
            fidelity = f"top-1 {b.top1_agreement:.2%} of {b.samples}"
        elif b.detections is not None:
            d = b.detections
            nme = f", landmark NME {d.landmark_nme:.4f}" if d.landmark_nme is not None else ""
            fidelity = f"{d.found}/{d.reference} detections{nme}"
        else:
            fidelity = "-"
        cosine = min((o.cosine for o in b.outputs.values()), default=None)
        problems = ([b.error] if b.error else []) + ([f"integrity: {b.integrity}"] if b.integrity != "ok" else []) + (
            [f"build verdict: {b.verdict_problem}"] if b.verdict_problem else [])
        verdict = "<br>".join([f"<span class=bad>FAIL</span> {e(p)}" for p in dict.fromkeys(problems)]
                              + ([gates_html(b.gates)] if b.gates else [])) or "-"
        cells = [
            b.name or Path(b.bundle).name,
            b.runtime or "-",
            f"{b.size_bytes / 1e6:.2f} MB" if b.size_bytes else "-",
            fidelity,
            f"{cosine:.5f}" if cosine is not None else "-",
            task_summary(b.task_metrics),
            *(f"{lat[k]:.2f}" if lat else "-" for k in ("p50", "p90", "p99")),
        ]
        rows.append(f"<tr{' class=fail' if not b else ''}>" + "".join(f"<td>{e(str(c))}</td>" for c in cells)
                    + f"<td>{verdict}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("bundle", "ran on", "size", "fidelity vs fp32 (golden)", "min cosine",
                                             "task metric", "p50 ms", "p90 ms", "p99 ms", "gates: figure (gate)"))
    gates = "".join(f"<tr><td>{e(p)}</td>" + "".join(f"<td>{v:g}</td>" for v in g.values()) + "</tr>"
                    for p, g in report.gates.items())
    gate_head = "".join(f"<th>{e(k)}</th>" for k in next(iter(report.gates.values()), {}))
    entries = entries_of(bundles)
    sections = [
        f"<h2>Latency per build</h2>{img(plots.latency(entries), 'latency per build')}",
        "<h2>Accuracy per precision</h2><p class=note>Top: agreement with the fp32 reference on the bundle's golden "
        "inputs (classifiers: top-1; detector: reference detections found at IoU &ge; 0.5). Bottom, with --data: "
        f"the task metric on labelled data.</p>{img(plots.accuracy_per_precision(entries), 'accuracy per precision')}",
    ]
    if any((b.task_metrics or {}).get("kind") == "mask" for b in bundles):
        sections.append(f"<h2>Mask classifier ROC</h2>{img(plots.mask_roc(entries), 'mask classifier ROC')}")
    if any((b.task_metrics or {}).get("kind") == "detection" for b in bundles):
        sections.append(f"<h2>Detection recall by face size</h2>{img(plots.recall_by_size(entries), 'recall by size')}")
    yaw = [b for b in bundles if (b.task_metrics or {}).get("kind") == "yaw"]
    if yaw:
        names = yaw[0].task_metrics["class_names"]
        body = "".join(
            f"<tr><td>{e(b.name)}</td><td>{b.task_metrics['overall_accuracy']:.2%}</td>"
            + "".join(f"<td>{'-' if v is None else f'{v:.1%}'}</td>" for v in b.task_metrics["per_class_accuracy"])
            + "</tr>"
            for b in yaw
        )
        sections.append("<h2>Yaw classes</h2><p class=note>Labels are derived from the five landmarks (solvePnP on a "
                        "generic 3D face), not measured head pose.</p><table><tr><th>bundle</th><th>OA</th>"
                        + "".join(f"<th>{e(n)}</th>" for n in names) + f"</tr>{body}</table>")
    if report.pipelines:
        body = "".join(
            f"<tr><td>{e(p['format'])}</td><td>{e(p['precision'])}</td><td colspan=4>{e(p['error'])}</td></tr>"
            if p.get("error") else
            f"<tr><td>{e(p['format'])}</td><td>{e(p['precision'])}</td><td>{p['faces']}</td><td>{p['found']}</td>"
            f"<td>{p['correct']}</td><td>{p['accuracy_of_all']:.2%}</td></tr>" for p in report.pipelines)
        sections.append("<h2>Whole pipeline</h2><p class=note>Detect, align, classify mask on the labelled scenes; "
                        "a face counts when it is found and its mask label is right (faces &ge; "
                        f"{report.pipelines[0].get('min_face_px', 32):g} px).</p><table><tr><th>format</th>"
                        "<th>precision</th><th>faces</th><th>found</th><th>found, mask right</th><th>accuracy</th></tr>"
                        f"{body}</table>")
    data = f"<p>Labelled data: {e(report.data)}.</p>" if report.data else ""
    verdict = "all passed" if report.passed else f"{len(bundles) - passed} FAILED"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>MaskGate check report</title>
<style>{STYLE}</style></head><body><h1>MaskGate check: {passed} of {len(bundles)} bundles passed ({verdict})</h1>
<p>{e(report.path)}</p>{data}
<table><tr>{head}</tr>{''.join(rows)}</table>
<p class=note>{e(WILSON_NOTE)}</p>
<h2>Gates</h2><table><tr><th>precision</th>{gate_head}</tr>{gates}</table>
{''.join(sections)}</body></html>
"""
