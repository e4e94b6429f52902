"""The build's summary: a table on the terminal, ``report.json`` and ``report.html``.

One row per bundle: its fidelity on the held-out inputs, the checker's task metric (with
``--data``) and latency, the speed-up over its fp32 sibling, and pass/fail on the gates.
"""
from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import atomic_write

if TYPE_CHECKING:
    from ..check.checker import Latency


def _fidelity(r) -> str:
    f = r.fidelity
    if f is not None and f.top1_agreement is not None:
        return f"top-1 {100 * f.top1_agreement:.2f}% (n={f.samples})"
    if f is not None and f.detections is not None:
        d = f.detections
        return f"det {100 * d.recall:.2f}% of {d.reference}, {d.build - d.found} extra"
    return "-"


def speedups(results) -> dict[str, float]:
    """Each reduced-precision build's speed-up over its fp32 sibling (same model, same format),
    from the paired rounds (``builder.speed``): fp32's time over its own (``maskgate.bench.paired``)."""
    return {r.target: r.vs_fp32.speedup[0] for r in results if r.vs_fp32 is not None}


def slower_than_fp32(results) -> list[str]:
    """Reduced-precision builds slower than their fp32 sibling by more than the margin, the
    whole 95 % interval of the paired ratio beyond it (``maskgate.bench.paired``). Timings
    taken minutes apart made this flag flip between two identical builds; paired, it repeats."""
    return [r.target for r in results if r.vs_fp32 is not None and r.vs_fp32.slower]


def rows(results) -> list[list[str]]:
    from ..check.task import summary

    out = []
    for r in results:
        size = f"{r.size_bytes / 1e6:.2f} MB" if r.size_bytes else "-"
        p50, p90 = (_p50(r.latency), f"{r.latency.p90:.2f}") if r.latency else ("-", "-")
        ratio = r.vs_fp32.describe() if r.vs_fp32 is not None else "-"
        task = summary(r.check.task_metrics if r.check else None)
        verdict = "-" if r.error else ("pass" if r.passed else "FAIL")
        out.append([r.model, r.format, r.precision, r.status if not r.error else "FAILED", size, _fidelity(r), task,
                    p50, p90, ratio, verdict])
    return out


HEADER = ["model", "format", "precision", "status", "size", "fidelity vs fp32 (held-out)", "task metric",
          "p50 ms (p25-p75)", "p90 ms", "vs fp32", "gates"]
# What the marks in the table mean: printed under it, and in the HTML report.
LEGEND = ("fidelity: classifiers, top-1 agreement with the fp32 PyTorch reference on n held-out crops; detector, "
          "the share of the reference's detections found (IoU >= 0.5), and how many it adds that the reference does "
          "not make ('extra'). p50 (p25-p75): median latency of one inference and the middle half of the timed runs. "
          "vs fp32: the speed-up over the fp32 build on the same runtime, both timed in the same 12 rounds (the "
          "rounds' ratio and its 95 % interval); SLOWER where the whole interval is more than 5 % "
          "below 1x ('maskgate benchmark' does the same per camera frame).")


def _p50(latency: Latency) -> str:
    return f"{latency.p50:.2f} ({latency.p25:.2f}-{latency.p75:.2f})"


def table(results) -> str:
    body = rows(results)
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    text = [line(HEADER), line(["-" * w for w in widths])] + [line(r) for r in body] + ["", LEGEND]
    errors = [f"{r.target}: {'; '.join(r.failures())}" for r in results if not r.passed]
    slower = slower_than_fp32(results)
    flags = [f"slower than its fp32 sibling on the same runtime: {', '.join(slower)}"] if slower else []
    from .repair import describe

    diagnoses = [f"{r.target}: {describe(r.diagnosis)}" for r in results if r.diagnosis]
    return "\n".join(text + ([""] + flags if flags else []) + ([""] + diagnoses if diagnoses else [])
                     + ([""] + errors if errors else []))


def write_report(out: Path, results, *, config, seconds: float, reference: str | None = None,
                 stem: str = "report") -> tuple[Path, Path]:
    """``out/STEM.json`` and ``out/STEM.html`` (a profile's build writes its own, beside the general one)."""
    out = Path(out)
    data = {"seconds": seconds, "config": _jsonable(dataclasses.asdict(config)), "reference": reference,
            "fidelity_note": "classifiers: top-1 agreement with the fp32 PyTorch reference on held-out aligned crops; "
                             "detector: share of the reference's detections found at IoU >= 0.5 on held-out frames",
            "slower_than_fp32": slower_than_fp32(results), "passed": all(r.passed for r in results),
            "bundles": [{**r.to_dict(), "speedup_vs_fp32": speedups(results).get(r.target)} for r in results]}
    json_path = out / f"{stem}.json"
    atomic_write(json_path, json.dumps(data, indent=1) + "\n")
    html_path = out / f"{stem}.html"
    atomic_write(html_path, _html(results, data))
    return json_path, html_path


def _entries(results) -> list[dict]:
    from ..check.html import headline_gate

    out = []
    for r in results:
        if r.error:
            continue
        fidelity = r.headline
        lat = r.latency.to_dict() if r.latency else {}
        out.append({"model": r.model, "format": r.format, "precision": r.precision, "p50": lat.get("p50"),
                    "p90": lat.get("p90"), "p25": lat.get("p25"), "p75": lat.get("p75"), "fidelity": fidelity,
                    "task": r.check.task_metrics if r.check else None, "gate": headline_gate(r.gates)})
    return out


def _html(results, data) -> str:
    from ..check import plots
    from ..check.html import STYLE, WILSON_NOTE, gates_html, img

    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER[:-1]) + "<th>gates: figure (gate)</th>"
    body = "".join(
        ("<tr class=fail>" if row[-1] in ("FAIL", "-") else "<tr class=slow>" if "SLOWER" in row[-2] else "<tr>")
        + "".join(f"<td>{html.escape(str(c))}</td>" for c in row[:-1])
        + f"<td>{_gates_cell(r, gates_html)}</td></tr>"
        for r, row in zip(results, rows(results))
    )
    slower = data["slower_than_fp32"]
    flag = (f"<p class=slow>Slower than their fp32 sibling on the same runtime: {html.escape(', '.join(slower))}.</p>"
            if slower else "")
    errors = "".join(f"<li>{html.escape(r.target)}: {html.escape('; '.join(r.failures()))}</li>"
                     for r in results if not r.passed)
    failures = f"<h2>Failures</h2><ul>{errors}</ul>" if errors else ""
    entries = _entries(results)
    passed = sum(r.passed for r in results)
    sections = [f"<h2>Latency per build</h2>{img(plots.latency(entries, title='p50 per bundle, 1 thread'), 'latency')}",
                "<h2>Accuracy per precision</h2><p class=note>Top: agreement with the fp32 PyTorch reference on the "
                "held-out inputs. Bottom (with --data): the task metric on labelled data.</p>"
                f"{img(plots.accuracy_per_precision(entries), 'accuracy per precision')}"]
    roc, by_size = plots.mask_roc(entries), plots.recall_by_size(entries)
    if roc:
        sections.append(f"<h2>Mask classifier ROC</h2>{img(roc, 'mask classifier ROC')}")
    if by_size:
        sections.append(f"<h2>Detection recall by face size</h2>{img(by_size, 'recall by face size')}")
    diagnosed = [r for r in results if r.diagnosis]
    if diagnosed:
        sections.append("<h2>int8 diagnosis</h2>" + "".join(_diagnosis_html(r) for r in diagnosed))
    if not roc and not by_size:
        sections.append("<p class=note>Task metrics (mask ROC, recall by face size) need labelled data: "
                        "maskgate build --data ../shared/data, or maskgate check BUILD --data DIR.</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>MaskGate build report</title>
<style>{STYLE}.slow{{background:#fff4d6}}</style></head><body>
<h1>MaskGate build: {passed} of {len(results)} bundles pass their gates</h1>
<p>{len(results)} bundles in {data['seconds']:.0f} s. {html.escape(data['fidelity_note'])}.</p>
<p class=note>{html.escape(LEGEND)} Rows shaded red failed a gate; yellow, SLOWER. In every plot the colour is the
runtime format; the precision is the hatching of a bar and the line style of a curve.</p>
<table><tr>{head}</tr>{body}</table>
<p class=note>Held out: the build's figures on hundreds of held-out inputs, gated as observed. Golden: the
bundle's own check on the inputs it carries. {html.escape(WILSON_NOTE)}</p>{flag}{failures}
{''.join(sections)}</body></html>
"""


def _gates_cell(r, gates_html) -> str:
    """A bundle's held-out and golden gates, each with its figure; or why it has none."""
    if r.error:
        return f"<span class=bad>FAILED</span> {html.escape(r.error)}"
    golden = r.check.gates if r.check else []
    cell = "<br>".join(part for part in (gates_html(r.gates, label="held out: ") if r.gates else "",
                                         gates_html(golden, label="golden: ") if golden else "") if part)
    if r.check is not None and r.check.error:
        cell += f"<br><span class=bad>FAIL</span> golden check: {html.escape(r.check.error)}"
    return cell or "-"


def _diagnosis_html(r) -> str:
    d = r.diagnosis
    e = html.escape
    layers = "".join(
        f"<tr><td>{e(x['node'])}</td><td>{e(x['op_type'])}</td><td>{x['sqnr_db']:.1f}</td>"
        f"<td>{x['added_db']:.1f}</td><td>{'kept in float' if x['node'] in d['excluded'] else ''}</td></tr>"
        for x in d["worst_layers"]
    )
    rounds = ", ".join(f"{x['excluded']} in float: {x['fidelity']:.2%}{' (passes)' if x['passed'] else ''}"
                       for x in d["rounds"])
    return (f"<h3>{e(r.target)}</h3><p class=note>{e(d['method'])}. Rounds: {e(rounds)}."
            + (f" Kept in float: {e(', '.join(d['excluded']))}." if d["excluded"] else "") + "</p>"
            "<table><tr><th>node</th><th>op</th><th>output SQNR dB</th><th>SQNR lost here, dB</th><th></th></tr>"
            f"{layers}</table>")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "to_dict"):  # ConvertOptions: the options of each format
        return _jsonable(value.to_dict())
    return value
