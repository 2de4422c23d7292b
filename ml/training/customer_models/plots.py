"""Training plots logged with each run (matplotlib object API only: no pyplot state, safe
in dbt threads).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    confusion_matrix,
    precision_recall_curve,
)

from ml.timing import phase


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig: Any, path: Path) -> None:
    # bbox "tight" instead of a constrained layout: same result here, several times faster
    fig.savefig(path, bbox_inches="tight")


@phase
def plot_correlations(X: pd.DataFrame, path: Path) -> None:
    corr = X.corr().fillna(0.0)
    fig = _figure(10, 8.5)
    ax = fig.add_subplot()
    image = ax.imshow(corr.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), corr.columns, rotation=90, fontsize=8)
    ax.set_yticks(range(len(corr)), corr.columns, fontsize=8)
    ax.set_title("Feature correlations (Pearson)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    _save(fig, path)


@phase
def plot_score_distribution(
    scores: np.ndarray, labels: np.ndarray, threshold: float, path: Path, title: str
) -> None:
    fig = _figure(9, 5)
    ax = fig.add_subplot()
    bins = np.linspace(float(np.min(scores)), float(np.max(scores)), 60)
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label="not fraudulent", log=True)
    ax.hist(scores[labels], bins=bins, alpha=0.6, label="fraudulent", log=True)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("score (higher = more anomalous)")
    ax.set_ylabel("customers (log scale)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    _save(fig, path)


@phase
def plot_feature_importance(importance: pd.DataFrame, path: Path, title: str) -> None:
    """Horizontal bars, one panel per importance column."""
    fig = _figure(6 * importance.shape[1], 6)
    for i, column in enumerate(importance.columns, start=1):
        ax = fig.add_subplot(1, importance.shape[1], i)
        ordered = importance[column].sort_values()
        ax.barh(ordered.index, ordered.to_numpy())
        ax.set_title(column, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(title)
    _save(fig, path)


@phase
def plot_group_comparison(X: pd.DataFrame, flagged: np.ndarray, path: Path) -> None:
    """Mean of each standardised feature for flagged vs not-flagged customers."""
    std = X.std(ddof=0).replace(0, 1.0)
    z = (X - X.mean()) / std
    comparison = pd.DataFrame(
        {"anomalous": z[flagged].mean(), "normal": z[~flagged].mean()}
    ).fillna(0.0)
    fig = _figure(9, 7)
    ax = fig.add_subplot()
    positions = np.arange(len(comparison))
    ax.barh(positions - 0.2, comparison["anomalous"], height=0.4, label="anomalous")
    ax.barh(positions + 0.2, comparison["normal"], height=0.4, label="normal")
    ax.set_yticks(positions, comparison.index, fontsize=8)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_xlabel("mean z-score (standard deviations from the population mean)")
    ax.set_title("Anomalous vs normal customers: feature means")
    ax.legend(loc="lower right")
    _save(fig, path)


@phase
def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str) -> None:
    matrix = confusion_matrix(y_true, y_pred, labels=[False, True])
    fig = _figure(5, 4.5)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, f"{count:,}", ha="center", va="center", color=colour)
    ax.set_xticks([0, 1], ["predicted normal", "predicted fraud"])
    ax.set_yticks([0, 1], ["not fraudulent", "fraudulent"])
    ax.set_title(title)
    _save(fig, path)


@phase
def plot_precision_recall(y_true: np.ndarray, scores: np.ndarray, path: Path) -> None:
    precision, recall, _ = precision_recall_curve(y_true, scores)
    fig = _figure(6, 5)
    ax = fig.add_subplot()
    ax.plot(recall, precision)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curve (test split)")
    _save(fig, path)
