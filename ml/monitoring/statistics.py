"""Monitoring constants, exit codes and the drift statistics (PSI, KS)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml import registry, transaction_model
from ml.features import FEATURE_COLUMNS

REFERENCE_ARTIFACT = registry.REFERENCE_ARTIFACT_PATH  # reference/training_features.parquet
REFERENCE_SCORE_COLUMN = "anomaly_score"
FEATURES: tuple[str, ...] = FEATURE_COLUMNS  # the customer models' (gold.transaction_features)


def monitored_features(model_name: str) -> tuple[str, str, tuple[str, ...]]:
    """(schema, table, feature columns) whose drift is measured for a model: the transaction
    classifier's numeric inputs in gold.transaction_risk_features (booleans as 0/1; the two
    categoricals are not binned), else the customer features of gold.transaction_features."""
    if model_name == transaction_model.MODEL_NAME:
        return "gold", "transaction_risk_features", transaction_model.NUMERIC_COLUMNS
    return "gold", "transaction_features", FEATURES


CHARTS = ("volume_per_day", "anomaly_rate", "feature_psi", "score_distribution")

EXIT_OK = 0
EXIT_BREACH = 1
EXIT_ERROR = 2
EXIT_NO_DATA = 3


class MonitoringError(Exception):
    """A usage or infrastructure problem: exit code 2."""


def finite_values(values: Any) -> np.ndarray:
    array: np.ndarray = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    finite: np.ndarray = array[np.isfinite(array)]
    return finite


def quantile_edges(reference: Any, bins: int = 10) -> np.ndarray:
    """Inner bin edges: the reference's quantiles 1/bins .. (bins-1)/bins, duplicates merged."""
    ref = finite_values(reference)
    if ref.size == 0:
        raise ValueError("empty reference")
    edges: np.ndarray = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    return edges


def bin_shares(values: Any, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each right-closed bin (-inf, e0], (e0, e1], ..., (e_last, +inf)."""
    data = finite_values(values)
    if data.size == 0:
        raise ValueError("no values")
    counts = np.bincount(np.searchsorted(edges, data, side="left"), minlength=edges.size + 1)
    shares: np.ndarray = counts / counts.sum()
    return shares


def psi(reference: Any, current: Any, bins: int = 10, epsilon: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference`` (see module docstring)."""
    edges = quantile_edges(reference, bins)
    expected = np.maximum(bin_shares(reference, edges), epsilon)
    actual = np.maximum(bin_shares(current, edges), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(first: Any, second: Any) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: max |F1(x) - F2(x)|."""
    a, b = np.sort(finite_values(first)), np.sort(finite_values(second))
    if a.size == 0 or b.size == 0:
        raise ValueError("empty sample")
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))
