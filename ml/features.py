"""The model-input contract: the 16 customer features of ``gold.transaction_features``.

``FEATURE_COLUMNS`` is the exact, ordered list every model is trained and scored on.
``feature_matrix`` turns a frame holding those columns (as read from the warehouse: DuckDB
decimals, integers and doubles) into a validated float64 frame in that order.

Validation is strict on purpose: there is **no silent imputation**. A null or a ±inf value
raises ``FeatureValidationError`` (a ``ValueError``) that names every offending column with
its count, e.g. ``"invalid feature values: total_spend has 2 null value(s); amount_volatility
has 1 infinite value(s)"``. The gold SQL defines every feature for every customer (ratios are
0 when undefined), so a null here means the upstream contract broke and must be fixed there,
not papered over in the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml.timing import phase

ID_COLUMN = "customer_id"

FEATURE_COLUMNS: tuple[str, ...] = (
    "total_transactions",
    "total_spend",
    "avg_transaction_amount",
    "stddev_transaction_amount",
    "min_transaction_amount",
    "max_transaction_amount",
    "unique_merchant_categories",
    "unique_merchants",
    "weekend_transactions",
    "high_value_transactions",
    "customer_tenure_days",
    "amount_volatility",
    "max_to_avg_ratio",
    "weekend_transaction_rate",
    "high_value_transaction_rate",
    "avg_transactions_per_day",
)

# Features that are whole numbers (counts and days): shown without decimals in reason details.
INTEGER_FEATURES: frozenset[str] = frozenset(
    {
        "total_transactions",
        "unique_merchant_categories",
        "unique_merchants",
        "weekend_transactions",
        "high_value_transactions",
        "customer_tenure_days",
    }
)


class FeatureValidationError(ValueError):
    """The feature frame breaks the contract (missing column, null, ±inf, non-numeric)."""


def _as_float(series: pd.Series, name: str) -> pd.Series:
    """One column as float64: decimals (``decimal.Decimal`` objects), ints and floats."""
    if pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        return series.astype("float64")
    if pd.api.types.is_bool_dtype(series.dtype):
        raise FeatureValidationError(f"feature {name} is boolean, expected a number")
    try:
        # object columns hold Decimal (DuckDB DECIMAL via some drivers) or None
        return pd.to_numeric(series, errors="raise").astype("float64")
    except (TypeError, ValueError) as exc:
        raise FeatureValidationError(f"feature {name} is not numeric: {exc}") from exc


@phase
def feature_matrix(df: pd.DataFrame, columns: Sequence[str] = FEATURE_COLUMNS) -> pd.DataFrame:
    """Return the validated float64 feature frame (``columns`` in order, index kept).

    Raises ``FeatureValidationError`` (a ``ValueError``) when a column is missing or not
    numeric, or when any value is null or ±inf; the message names each offending column and
    how many values are affected. Extra columns (``customer_id``, labels) are ignored.
    """
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise FeatureValidationError(f"missing feature column(s): {', '.join(missing)}")
    out = pd.DataFrame({c: _as_float(df[c], c) for c in columns}, index=df.index)
    problems: list[str] = []
    values = out.to_numpy()
    null_counts = np.isnan(values).sum(axis=0)
    inf_counts = np.isinf(values).sum(axis=0)
    for name, n_null, n_inf in zip(columns, null_counts, inf_counts, strict=True):
        if n_null:
            problems.append(f"{name} has {int(n_null)} null value(s)")
        if n_inf:
            problems.append(f"{name} has {int(n_inf)} infinite value(s)")
    if problems:
        raise FeatureValidationError(
            "invalid feature values (no imputation is done; fix gold.transaction_features): "
            + "; ".join(problems)
        )
    return out


@phase
def training_data_fingerprint(
    df: pd.DataFrame,
    columns: Sequence[str] = FEATURE_COLUMNS,
    id_column: str = ID_COLUMN,
) -> str:
    """sha256 over the feature rows sorted by ``id_column``, independent of row order.

    Hashed, in this order: the column names (id, then features), then the sorted ids (UTF-8,
    newline separated), then the float64 little-endian feature matrix in id order. The same
    rows give the same fingerprint whatever order the warehouse returned them in; any changed
    value, added or removed customer changes it.
    """
    order = np.argsort(df[id_column].astype(str).to_numpy(), kind="stable")
    ids = df[id_column].astype(str).to_numpy()[order]
    numeric = feature_matrix(df, columns).to_numpy(dtype="<f8")[order]
    digest = hashlib.sha256()
    digest.update("\x1f".join((id_column, *columns)).encode())
    digest.update(b"\x1e")
    digest.update("\n".join(ids).encode())
    digest.update(b"\x1e")
    digest.update(np.ascontiguousarray(numeric).tobytes())
    return digest.hexdigest()
