"""Model cards: what a trained classifier was trained on and how well it does."""
from __future__ import annotations

from pathlib import Path


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def write_card(out: str | Path, metrics: dict) -> Path:
    out = Path(out)
    crops = metrics.get("crops", {})
    counts = crops.get("counts", {})
    lines = [
        f"# {metrics['model']}",
        "",
        f"Task: {metrics['task']}. Initialisation: {metrics['init']}. Trained in {metrics['train_seconds']} s.",
        "",
        "## Data",
        "Crops cut by the project's own RetinaFace detector and eye-roll aligner "
        f"({crops.get('size', ['?', '?'])[0]}x{crops.get('size', ['?', '?'])[1]}, margin {crops.get('margin')}) from "
        "`../shared/data/faces` (one face per photo, label from the folder) and from the labelled boxes of "
        "`../shared/data/scenes` (matched to detections at IoU >= "
        f"{crops.get('match_iou')}). Split 70/15/15 by a hash of the source image path, so no photo "
        "feeds two splits; the test split is scored once, after training. "
        f"Photos without a detected face: {counts.get('faces_without_detection', '?')} of "
        f"{counts.get('faces_images', '?')}; "
        f"scene boxes missed by the detector: {counts.get('scenes_boxes_missed', '?')} of "
        f"{counts.get('scenes_boxes', '?')}.",
        "",
    ]
    if metrics["task"] == "pose":
        lines += [
            "Yaw labels are landmark-derived (solvePnP of a generic 3D five-point face onto the detected "
            "landmarks), not measured head pose; every figure below is agreement with those labels. "
            f"Classes: {', '.join(metrics['yaw_bins']['names'])}.",
            "",
        ]
    lines += ["## Training", ""]
    for stage in metrics["stages"]:
        cfg = stage["config"]
        lines.append(
            f"- {stage['stage']}: {stage['crops']} training crops, {cfg['epochs']} epochs, batch {cfg['batch_size']}, "
            f"lr {cfg['lr']}, frozen backbone stages {cfg['freeze_stages']}, seed {cfg['seed']}; best epoch "
            f"{stage['best_epoch']}"
        )
    if metrics.get("command"):
        lines += ["", "Reproduce (2-core CPU, torch 2.13.0):", "", "```"]
        if crops.get("command"):
            lines.append(crops["command"])
        lines += [metrics["command"], "```"]
    lines += ["", "## Test split", ""]
    if metrics["task"] == "mask":
        lines += ["| subset | n | accuracy | ROC AUC | mask recall | mask precision |", "|---|---|---|---|---|---|"]
        for name, s in metrics["test"].items():
            auc = "-" if s["roc_auc"] is None else f"{s['roc_auc']:.4f}"
            lines.append(
                f"| {name} | {s['n']} | {_pct(s['accuracy'])} | {auc} | {_pct(s['mask_recall'])} | "
                f"{_pct(s['mask_precision'])} |"
            )
    else:
        names = metrics["yaw_bins"]["names"]
        lines += [
            "| subset | n | OA | " + " | ".join(f"CA {n}" for n in names) + " |",
            "|---|---|---|" + "---|" * len(names),
        ]
        for name, s in metrics["test"].items():
            ca = " | ".join(_pct(v) for v in s["per_class_accuracy"])
            lines.append(f"| {name} | {s['n']} | {_pct(s['overall_accuracy'])} | {ca} |")
    lines += ["", "Plots: curves.png, confusion.png" + (", roc.png" if metrics["task"] == "mask" else "") + "."]
    path = out / "card.md"
    path.write_text("\n".join(lines) + "\n")
    return path
