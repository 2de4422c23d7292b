"""Per-customer reason codes for a score (README "Models, scores and explanations")."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.features import INTEGER_FEATURES

N_REASONS = 3


def percentile_ranks(X: pd.DataFrame) -> pd.DataFrame:
    """Mid-rank percentile (0-100) of every value within its column (ties share a rank)."""
    values = X.to_numpy(dtype="float64")
    n = values.shape[0]
    out = np.empty_like(values)
    for j in range(values.shape[1]):
        column = np.sort(values[:, j])
        below = np.searchsorted(column, values[:, j], side="left")
        at_or_below = np.searchsorted(column, values[:, j], side="right")
        out[:, j] = 100.0 * (below + at_or_below) / (2.0 * max(n, 1))
    return pd.DataFrame(out, columns=X.columns, index=X.index)


def _format_value(feature: str, value: float) -> str:
    return f"{value:,.0f}" if feature in INTEGER_FEATURES else f"{value:,.2f}"


def _ordinal(percentile: float) -> str:
    rounded = round(percentile, 1)
    if float(rounded).is_integer():
        whole = int(rounded)
        suffix = (
            "th" if 10 <= whole % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(whole % 10, "th")
        )
        return f"{whole}{suffix}"
    return f"{rounded:.1f}th"


def format_reason_detail(feature: str, value: float, median: float, percentile: float) -> str:
    """``"max_transaction_amount = 4,950.00 vs population median 120.00 (99.7th percentile)"``;
    counts and days are shown without decimals."""
    return (
        f"{feature} = {_format_value(feature, value)} vs population median "
        f"{_format_value(feature, median)} ({_ordinal(percentile)} percentile)"
    )


def reason_codes(
    contributions: pd.DataFrame,
    X: pd.DataFrame,
    reference: pd.Series | None = None,
    top_k: int = N_REASONS,
    min_contribution: float = 1e-9,
) -> pd.DataFrame:
    """The ``top_k`` features with the largest positive ablation contribution per customer.

    Columns ``reason_1`` .. ``reason_<k>`` (feature name) and ``reason_<k>_detail`` (value,
    population median, percentile). A customer with fewer than ``top_k`` features pushing it
    towards anomalous gets nulls for the rest (ties: the earlier feature in FEATURE_COLUMNS).
    """
    columns = list(contributions.columns)
    names_out = [f"reason_{k}{s}" for k in range(1, top_k + 1) for s in ("", "_detail")]
    if len(X) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in names_out}, index=X.index)
    medians = (X.median() if reference is None else reference.reindex(columns)).to_numpy()
    contrib = contributions.to_numpy(dtype="float64")
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :top_k]
    top_values = np.take_along_axis(contrib, order, axis=1)
    values = X[columns].to_numpy(dtype="float64")
    pct = percentile_ranks(X[columns]).to_numpy()
    rows = np.arange(len(X))
    out: dict[str, Any] = {}
    for k in range(top_k):
        j = order[:, k]
        valid = top_values[:, k] > min_contribution
        names = np.array(columns, dtype=object)[j]
        v = values[rows, j]
        p = pct[rows, j]
        details = [
            format_reason_detail(name, val, medians[jj], perc) if ok else None
            for name, val, jj, perc, ok in zip(names, v, j, p, valid, strict=True)
        ]
        out[f"reason_{k + 1}"] = [
            name if ok else None for name, ok in zip(names, valid, strict=True)
        ]
        out[f"reason_{k + 1}_detail"] = details
    return pd.DataFrame(out, index=X.index)[names_out]
