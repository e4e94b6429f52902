"""Scores and plots of a trained classifier: metrics JSON, curves, ROC, confusion matrix."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics import mask_scores, pose_scores, roc_curve  # noqa: F401  (scores re-exported for the recipes)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history_rows: list[dict], path: Path, *, title: str, stage_starts: tuple[float, ...] = ()) -> Path:
    """Loss and validation accuracy by epoch; dashed lines where a new training stage starts."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history_rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.plot(epochs, [r["train_loss"] for r in history_rows], "o-", label="train loss")
    a.plot(epochs, [r["val_loss"] for r in history_rows], "o-", label="val loss")
    for axis in (a, b):
        axis.set_xticks(epochs)
        for start in stage_starts:
            axis.axvline(start, ls="--", color="gray", lw=1)
    a.set_xlabel("epoch"), a.legend(), a.grid(alpha=0.3)
    b.plot(epochs, [r["val_accuracy"] for r in history_rows], "o-", color="C2")
    b.set_xlabel("epoch"), b.set_ylabel("val accuracy"), b.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path, *, title: str) -> Path:
    """curves: name -> (labels is-mask, scores P(mask), auc)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    for name, (positive, scores, auc) in curves.items():
        fpr, tpr = roc_curve(positive, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.4f})")
    ax.plot([1e-3, 1], [1e-3, 1], ":", color="gray")
    # Log scale: at AUCs near 1 the interesting part is the first percent of false positives.
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_xlabel("false positive rate (no_mask called mask), log scale")
    ax.set_ylabel("true positive rate (mask found)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(confusion: np.ndarray, names: tuple[str, ...], path: Path, *, title: str) -> Path:
    plt = _pyplot()
    conf = np.asarray(confusion, np.float64)
    rates = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2.5, 1.0 * len(names) + 1.8))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{int(conf[i, j])}\n{rates[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("predicted"), ax.set_ylabel("label")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
