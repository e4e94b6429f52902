"""The build's summary: a table on the terminal, ``report.json`` and ``report.html``."""
from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
from pathlib import Path


def _fidelity(r) -> str:
    f = r.fidelity or {}
    if f.get("top1_agreement") is not None:
        return f"top-1 {100 * f['top1_agreement']:.2f}% (n={f['samples']})"
    if f.get("detection_recall") is not None:
        return f"det {100 * f['detection_recall']:.2f}% of {f['detections_reference']} (+{f['detections_extra']})"
    return "-"


def speedups(results) -> dict[str, float]:
    """Each build's speed-up over its fp32 sibling (same model, same format): fp32 ms / its ms."""
    fp32 = {(r.model, r.format): r.latency["median_ms"] for r in results if r.precision == "fp32" and r.latency}
    return {r.target: fp32[(r.model, r.format)] / r.latency["median_ms"]
            for r in results if r.latency and (r.model, r.format) in fp32 and r.latency["median_ms"] > 0}


def slower_than_fp32(results) -> list[str]:
    """Reduced-precision builds that run slower than their fp32 sibling on the same runtime."""
    return [target for target, ratio in speedups(results).items() if ratio < 1.0 and not target.endswith("-fp32")]


def rows(results) -> list[list[str]]:
    out = []
    ratios, slower = speedups(results), set(slower_than_fp32(results))
    for r in results:
        size = f"{r.size_bytes / 1e6:.2f} MB" if r.size_bytes else "-"
        diff = f"{r.fidelity['max_abs_diff']:.2g}" if r.fidelity else "-"
        lat = f"{r.latency['median_ms']:.2f}" if r.latency else "-"
        ratio = f"{ratios[r.target]:.2f}x" + (" SLOWER" if r.target in slower else "") if r.target in ratios else "-"
        out.append([r.model, r.format, r.precision, r.status if not r.error else "FAILED", size, _fidelity(r), diff, lat,
                    ratio])
    return out


HEADER = ["model", "format", "precision", "status", "size", "fidelity vs fp32 reference", "max |diff|", "ms (1 thread)",
          "vs fp32"]


def table(results) -> str:
    body = rows(results)
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *body)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    text = [line(HEADER), line(["-" * w for w in widths])] + [line(r) for r in body]
    errors = [f"{r.target}: {r.error}" for r in results if r.error]
    slower = slower_than_fp32(results)
    flags = [f"slower than its fp32 sibling on the same runtime: {', '.join(slower)}"] if slower else []
    return "\n".join(text + ([""] + flags if flags else []) + ([""] + errors if errors else []))


def write_report(out: Path, results, *, config, seconds: float, reference: str | None = None) -> tuple[Path, Path]:
    out = Path(out)
    data = {"seconds": seconds, "config": _jsonable(dataclasses.asdict(config)), "reference": reference,
            "fidelity_note": "classifiers: top-1 agreement with the fp32 PyTorch reference on held-out aligned crops; "
                             "detector: share of the reference's detections found at IoU >= 0.5 on held-out frames",
            "slower_than_fp32": slower_than_fp32(results),
            "bundles": [{**dataclasses.asdict(r), "speedup_vs_fp32": speedups(results).get(r.target)} for r in results]}
    json_path = out / "report.json"
    _atomic_write(json_path, json.dumps(data, indent=1) + "\n")
    html_path = out / "report.html"
    _atomic_write(html_path, _html(results, data))
    return json_path, html_path


def _html(results, data) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADER)
    body = "".join(("<tr class=slow>" if row[-1].endswith("SLOWER") else "<tr>")
                   + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows(results))
    slower = data["slower_than_fp32"]
    flag = (f"<p class=slow>Slower than their fp32 sibling on the same runtime: {html.escape(', '.join(slower))}.</p>"
            if slower else "")
    errors = "".join(f"<li>{html.escape(r.target)}: {html.escape(r.error)}</li>" for r in results if r.error)
    plot = _plot(results)
    img = f'<img alt="latency and fidelity per bundle" src="data:image/png;base64,{plot}">' if plot else (
        "<p>(install matplotlib for the plot)</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>MaskGate build report</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}
th{{background:#eee}}.slow{{background:#fde2e1}}</style></head><body><h1>MaskGate build report</h1>
<p>{len(results)} bundles in {data['seconds']:.0f} s. {html.escape(data['fidelity_note'])}.</p>
<table><tr>{head}</tr>{body}</table>{flag}{'<h2>Failures</h2><ul>' + errors + '</ul>' if errors else ''}
<h2>Latency and fidelity</h2>{img}</body></html>
"""


def _plot(results) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return None
    ok = [r for r in results if r.latency and r.fidelity]
    if not ok:
        return None
    models = sorted({r.model for r in ok}, key=[r.model for r in ok].index)
    fig, axes = plt.subplots(2, len(models), figsize=(4.2 * len(models), 6), squeeze=False)
    for col, model in enumerate(models):
        mine = [r for r in ok if r.model == model]
        labels = [f"{ {'openvino': 'OV'}.get(r.format, r.format)}\n{r.precision}" for r in mine]
        colours = [{"fp32": "#4c72b0", "fp16": "#55a868", "int8": "#c44e52"}[r.precision] for r in mine]
        axes[0, col].bar(range(len(mine)), [r.latency["median_ms"] for r in mine], color=colours)
        axes[0, col].set_title(model, fontsize=9)
        axes[0, col].set_ylabel("median ms, 1 thread")
        fid = [100 * (r.fidelity.get("top1_agreement") if r.fidelity.get("top1_agreement") is not None
                      else (r.fidelity.get("detection_recall") or 0)) for r in mine]
        axes[1, col].bar(range(len(mine)), fid, color=colours)
        axes[1, col].set_ylim(min(90, min(fid) - 1), 100.5)
        axes[1, col].set_ylabel("% agreement with fp32 reference")
        for ax in axes[:, col]:
            ax.set_xticks(range(len(mine)), labels, fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text)
    tmp.replace(path)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
