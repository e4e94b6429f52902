"""``maskgate compare RUN...``: a markdown table of the test figures of training runs."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import SourceError


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="markdown table of the test-split figures of several 'maskgate train' runs")
    p.add_argument("runs", nargs="+", help="output folders of 'maskgate train' (each with metrics.json)")
    p.set_defaults(func=main)


def _load(folder: str) -> dict:
    path = Path(folder) / "metrics.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable metrics.json of 'maskgate train' ({exc})") from exc


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _stages(m: dict) -> str:
    return " + ".join(
        f"{s['stage']} {s['config']['epochs']} ep (frozen {s['config']['freeze_stages']})" for s in m["stages"]
    )


def table(runs: list[tuple[str, dict]]) -> str:
    tasks = {m["task"] for _, m in runs}
    if len(tasks) != 1:
        raise SourceError(f"compare runs of one task at a time, got {sorted(tasks)}")
    if tasks == {"mask"}:
        lines = [
            "| run | model | init | training | test acc % | mask recall % | test AUC | scenes acc % | faces >= "
            "32 px acc % | seconds |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in runs:
            t = m["test"]
            auc = "-" if t["all"]["roc_auc"] is None else f"{t['all']['roc_auc']:.4f}"
            lines.append(
                f"| {name} | {m['model']} | {m['init']} | {_stages(m)} | {_pct(t['all']['accuracy'])} | "
                f"{_pct(t['all']['mask_recall'])} | {auc} | "
                f"{_pct(t['scenes']['accuracy'])} | {_pct(t['faces_at_least_32px']['accuracy'])} | "
                f"{m['train_seconds']:.0f} |"
            )
        return "\n".join(lines)
    names = runs[0][1]["yaw_bins"]["names"]
    lines = ["| run | model | init | training | OA % | within 1 class % | masked OA % | "
             + " | ".join(f"CA {n} %" for n in names) + " | seconds |",
             "|---|---|---|---|---|---|---|" + "---|" * len(names) + "---|"]
    for name, m in runs:
        t = m["test"]
        ca = " | ".join(_pct(v) for v in t["all"]["per_class_accuracy"])
        lines.append(
            f"| {name} | {m['model']} | {m['init']} | {_stages(m)} | {_pct(t['all']['overall_accuracy'])} | "
            f"{_pct(t['all'].get('within_one_class'))} | {_pct(t['masked']['overall_accuracy'])} | {ca} | "
            f"{m['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(args) -> int:
    print(table([(Path(r).name, _load(r)) for r in args.runs]))
    return 0
