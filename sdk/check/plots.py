"""Plots for the check and build reports, as base64 PNGs for inline <img> tags.

Every function takes ``entries``: one dict per bundle with ``model``, ``format``,
``precision``, ``p50`` / ``p90`` (ms, may be None), ``fidelity`` (agreement with the fp32
reference, 0..1, may be None) and ``task`` (``maskgate.check.task`` metrics, may be None).
matplotlib is optional (not in the device install): without it every plot is None.
"""
from __future__ import annotations

import base64
import io
from typing import Literal

from ..formats import FORMATS

# One meaning per colour in a report: the colour is the runtime format (FormatSpec.colour);
# the precision is the line style of a curve and the hatching of a bar.
LineStyle = Literal["-", "--", ":", "-."]
PRECISION_STYLE: dict[str, tuple[LineStyle, str, str]] = {  # line, marker, hatch
    "fp32": ("-", "o", ""), "fp16": ("--", "s", "//"), "int8": (":", "^", "xx")}
PLUGIN_COLOUR = "#888888"
TASK_LABEL = {"mask": "mask accuracy", "yaw": "yaw OA", "detection": "detection recall"}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return None
    return plt


def _png(fig, plt) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _models(entries: list[dict]) -> list[str]:
    return list(dict.fromkeys(e["model"] for e in entries))


def _short(fmt: str) -> str:
    """A format as every table, flag and file name says it (``openvino``, not a second name)."""
    return fmt


def _colour(fmt: str) -> str:
    return FORMATS[fmt].colour if fmt in FORMATS else PLUGIN_COLOUR


def _style(precision: str) -> tuple[LineStyle, str, str]:
    """(line, marker, hatch) of a precision."""
    return PRECISION_STYLE.get(precision, ("-.", "d", ".."))


def _key(target, formats: list[str], precisions: list[str], *, bars: bool, extra=(), loc="upper right") -> None:
    """A legend that says both codes: colour = format, line style (or hatching) = precision."""
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Artist] = [Patch(facecolor=_colour(f), label=_short(f)) for f in formats]
    if bars:
        handles += [Patch(facecolor="white", edgecolor="black", hatch=_style(p)[2], label=p) for p in precisions]
    else:
        handles += [Line2D([], [], color="black", linestyle=_style(p)[0], marker=_style(p)[1], markersize=4, label=p)
                    for p in precisions]
    target.legend(handles=handles + list(extra), fontsize=7, loc=loc, ncol=len(handles) + len(extra))


def _ordered(entries: list[dict]) -> tuple[list[str], list[str]]:
    """The formats (registry order) and precisions present."""
    order = {name: i for i, name in enumerate(FORMATS)}
    formats = sorted(dict.fromkeys(e["format"] for e in entries), key=lambda f: order.get(f, len(order)))
    precisions = [p for p in PRECISION_STYLE if any(e["precision"] == p for e in entries)]
    return formats, precisions


def _label(e: dict) -> str:
    return f"{_short(e['format'])}\n{e['precision']}"


def latency(entries: list[dict], *, title: str = "latency per build") -> str | None:
    """Bars of p50 per bundle (the whisker: its interquartile range), a tick at p90; one panel per model."""
    plt = _pyplot()
    timed = [e for e in entries if e.get("p50") is not None]
    if plt is None or not timed:
        return None
    models = _models(timed)
    fig, axes = plt.subplots(1, len(models), figsize=(4.3 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        mine = [e for e in timed if e["model"] == model]
        x = range(len(mine))
        spread = [[e["p50"] - (e.get("p25") or e["p50"]) for e in mine],
                  [(e.get("p75") or e["p50"]) - e["p50"] for e in mine]]
        ax.bar(x, [e["p50"] for e in mine], color=[_colour(e["format"]) for e in mine],
               hatch=None, edgecolor="black", linewidth=0.5, yerr=spread, capsize=2)
        for patch, e in zip(ax.patches, mine):
            patch.set_hatch(_style(e["precision"])[2])
        p90 = [(i, e["p90"]) for i, e in enumerate(mine) if e.get("p90") is not None]
        if p90:
            ax.scatter([i for i, _ in p90], [v for _, v in p90], marker="_", s=200, color="black")
        ax.set_ylim(0, max([e.get("p90") or e["p50"] for e in mine] + [e.get("p75") or e["p50"] for e in mine]) * 1.08)
        ax.set_title(model, fontsize=9)
        ax.set_ylabel("ms per inference (p50)")
        ax.set_xticks(list(x), [_label(e) for e in mine], fontsize=7)
    from matplotlib.lines import Line2D

    tick = [Line2D([], [], color="black", marker="_", linestyle="", markersize=10, label="p90"),
            Line2D([], [], color="black", marker="|", linestyle="", markersize=8, label="p25-p75")]
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    _key(fig, *_ordered(timed), bars=True, extra=tick)
    return _png(fig, plt)


def accuracy_per_precision(entries: list[dict]) -> str | None:
    """Per model: agreement with the fp32 reference (top row) and, with labelled data, the
    task metric (bottom row), grouped by precision with one bar per format."""
    plt = _pyplot()
    if plt is None or not entries:
        return None
    models = _models(entries)
    with_task = any(e.get("task") for e in entries)
    rows = 2 if with_task else 1
    fig, axes = plt.subplots(rows, len(models), figsize=(4.3 * len(models), 3.1 * rows), squeeze=False)
    formats, precisions = _ordered(entries)
    width = 0.8 / max(len(formats), 1)
    for col, model in enumerate(models):
        mine = [e for e in entries if e["model"] == model]
        panels = [("fidelity", "% agreement with fp32 reference", lambda e: e.get("fidelity"))]
        if with_task:
            kind = next((e["task"]["kind"] for e in mine if e.get("task")), None)
            panels.append(("task", f"% {TASK_LABEL.get(kind or '', 'task metric')} on labelled data", _task_value))
        for row, (name, ylabel, value) in enumerate(panels):
            ax = axes[row, col]
            lowest = 100.0
            if name == "fidelity":  # each precision's gate across its group of bars: what "pass" was held to
                for i, p in enumerate(precisions):
                    gate = next((e["gate"] for e in mine if e["precision"] == p and e.get("gate") is not None), None)
                    if gate is not None:
                        ax.hlines(100 * gate, i - 0.45, i + 0.45, colors="#c00", linestyles="--", linewidth=1,
                                  label="gate" if i == 0 else None)
                        lowest = min(lowest, 100 * gate)
            for k, fmt in enumerate(formats):
                values = []
                for p in precisions:
                    e = next((e for e in mine if e["format"] == fmt and e["precision"] == p), None)
                    v = value(e) if e else None
                    values.append(float("nan") if v is None else 100 * v)
                    lowest = min(lowest, 100 * v) if v is not None else lowest
                ax.bar([i + (k - (len(formats) - 1) / 2) * width for i in range(len(precisions))], values, width,
                       label=_short(fmt), color=_colour(fmt), edgecolor="black", linewidth=0.5)
            ax.set_xticks(range(len(precisions)), precisions)
            # From just under the lowest bar or gate: the differences that decide pass or fail are a few tenths
            # of a percent; from zero they would not show, and a fixed 95 % cut bars below it off.
            ax.set_ylim(max(0.0, lowest - max(0.5, (100 - lowest) * 0.25)), 100.2)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_title(model, fontsize=9)
    handles, labels = axes[0, 0].get_legend_handles_labels()  # colour = format; precision on the x axis; the gate
    fig.legend(handles, labels, loc="upper right", fontsize=8, ncol=len(handles), title="format", title_fontsize=8)
    fig.suptitle("accuracy per precision", fontsize=10)
    return _png(fig, plt)


def _task_value(e: dict) -> float | None:
    task = e.get("task") or {}
    metric = {"mask": "accuracy", "yaw": "overall_accuracy", "detection": "recall"}.get(task.get("kind") or "", "")
    return task.get(metric)


def mask_roc(entries: list[dict]) -> str | None:
    """ROC of every mask classifier build on the labelled crops: full curve and the corner."""
    plt = _pyplot()
    curves = [e for e in entries if (e.get("task") or {}).get("kind") == "mask" and e["task"].get("roc")]
    if plt is None or not curves:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for e in curves:
        roc = e["task"]["roc"]
        label = f"{_short(e['format'])} {e['precision']} (AUC {e['task']['roc_auc']:.4f})"
        for ax in axes:
            ax.plot(roc["fpr"], roc["tpr"], _style(e["precision"])[0], color=_colour(e["format"]),
                    label=label, linewidth=1.3)
    n = curves[0]["task"]["n"]
    axes[0].plot([0, 1], [0, 1], color="#bbb", linewidth=0.8)
    axes[0].set_title(f"mask classifier ROC ({n} labelled crops; positive: mask)", fontsize=9)
    axes[1].set_xlim(0, 0.05)
    axes[1].set_ylim(0.9, 1.001)
    axes[1].set_title("top-left corner", fontsize=9)
    for ax in axes:
        ax.set_xlabel("false-positive rate (bare faces called masked)")
        ax.set_ylabel("true-positive rate")
    axes[1].legend(fontsize=7, loc="lower right", title="colour: format, line: precision", title_fontsize=7)
    return _png(fig, plt)


def recall_by_size(entries: list[dict]) -> str | None:
    """Detector builds' recall per face-width bucket on the labelled scenes."""
    plt = _pyplot()
    detectors = [e for e in entries if (e.get("task") or {}).get("kind") == "detection"]
    if plt is None or not detectors:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    buckets = [b["bucket"] for b in detectors[0]["task"]["buckets"]]
    for e in detectors:
        values = [b["recall"] if b["recall"] is not None else float("nan") for b in e["task"]["buckets"]]
        line, marker, _ = _style(e["precision"])
        ax.plot(range(len(values)), values, line, marker=marker, color=_colour(e["format"]),
                label=f"{_short(e['format'])} {e['precision']}", markersize=4, linewidth=1)
    faces = [b["faces"] for b in detectors[0]["task"]["buckets"]]
    ax.set_xticks(range(len(buckets)), [f"{b}\n({n} faces)" for b, n in zip(buckets, faces)], fontsize=7)
    ax.set_ylabel(f"recall (IoU >= {detectors[0]['task']['iou']:g})")
    ax.set_ylim(0, 1.02)
    ax.set_title("detection recall by face width", fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="lower right", title="colour: format, line: precision", title_fontsize=7)
    return _png(fig, plt)
