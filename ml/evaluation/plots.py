"""PNG plots of a run: training curves, ROC curves per split, confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_training_curves(history: list[dict[str, Any]], path: Path) -> Path:
    epochs = [h["epoch"] for h in history]  # counting from 1
    fig, (ax_loss, ax_auc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        ax_loss.plot(epochs, [h[split]["loss"] for h in history], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_loss.legend()
    ax_auc.plot(epochs, [h["val"]["mean_auroc"] for h in history], marker="o", color="tab:green")
    ax_auc.set(xlabel="epoch", ylabel="mean AUROC", title="Validation mean AUROC")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float | None]], path: Path, title: str) -> Path:
    """`curves`: label -> (fpr, tpr, auroc)."""
    fig, ax = plt.subplots(figsize=(6, 6))
    for label, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{label} ({auc:.3f})" if auc is not None else label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.2 * len(labels) + 2))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="black" if m[i, j] < m.max() / 2 else "white")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(summary: dict[str, Any], path: Path, title: str) -> Path:
    """Observed frequency against mean confidence per bin, before and after calibration, with the ECEs."""
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for key, name, marker in (("reliability_before", "before", "o"), ("reliability_after", "after", "s")):
        table = summary[key]
        pts = [(c, f) for c, f in zip(table["confidence"], table["frequency"], strict=True) if c is not None]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, marker=marker, label=f"{name} (ECE {table['ece']:.3f})")
    ax.set(xlabel="mean predicted probability", ylabel="observed frequency", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_plots(run_dir: Path, history: list[dict[str, Any]], report: dict[str, Any], labels: list[str]) -> list[Path]:
    """All plots of a finished run; ROC curves come from the stored curves in the report."""
    paths = []
    if history:
        paths.append(plot_training_curves(history, run_dir / "training_curves.png"))
    for split, split_report in report.get("splits", {}).items():
        curves = split_report.get("roc_curves")
        if curves:
            roc = {k: (np.asarray(v["fpr"]), np.asarray(v["tpr"]), v["auroc"]) for k, v in curves.items()}
            paths.append(plot_roc(roc, run_dir / f"roc_{split}.png", f"ROC ({split})"))
        if "confusion_matrix" in split_report:
            names = labels if split_report["task"] == "multiclass" else [f"not {labels[0]}", labels[0]]
            paths.append(plot_confusion(split_report["confusion_matrix"], names, run_dir / f"confusion_{split}.png",
                                        f"Confusion matrix ({split})"))
    for split, summary in ((report.get("calibration") or {}).get("splits") or {}).items():
        paths.append(plot_reliability(summary, run_dir / f"reliability_{split}.png",
                                      f"Reliability ({split}; temperatures fitted on val)"))
    return paths


def save_partial_plots(run_dir: Path) -> list[Path]:
    """The training curves of a run that stopped before its end (cancelled, failed), from the epochs its
    `metrics.jsonl` records (a redone epoch's later lines win); nothing when no epoch finished."""
    import json

    path = run_dir / "metrics.jsonl"
    by_epoch: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            epoch, split = entry.pop("epoch"), entry.pop("split")
            by_epoch.setdefault(epoch, {"epoch": epoch})[split] = entry
    history = [h for _, h in sorted(by_epoch.items()) if "train" in h and "val" in h]
    return [plot_training_curves(history, run_dir / "training_curves.png")] if history else []
