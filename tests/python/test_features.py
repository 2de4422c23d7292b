"""The model-input contract: FEATURE_COLUMNS, feature_matrix validation, the fingerprint."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PROJECT_ROOT

from ml.features import (
    FEATURE_COLUMNS,
    FeatureValidationError,
    feature_matrix,
    training_data_fingerprint,
)


def frame(n: int = 4) -> pd.DataFrame:
    data = {name: np.arange(n, dtype=float) + i for i, name in enumerate(FEATURE_COLUMNS)}
    out = pd.DataFrame(data)
    out.insert(0, "customer_id", [f"C{i}" for i in range(n)])
    return out


def test_sixteen_features_in_order() -> None:
    assert len(FEATURE_COLUMNS) == 16
    assert len(set(FEATURE_COLUMNS)) == 16
    assert FEATURE_COLUMNS[0] == "total_transactions"
    assert FEATURE_COLUMNS[-1] == "avg_transactions_per_day"


def test_feature_columns_match_the_gold_contract() -> None:
    """FEATURE_COLUMNS == the columns of gold.transaction_features after customer_id."""
    doc = PROJECT_ROOT / "models" / "gold" / "_gold__models.yml"
    if not doc.exists():
        pytest.skip("models/gold/_gold__models.yml not present")
    models = yaml.safe_load(doc.read_text())["models"]
    model = next(m for m in models if m["name"] == "transaction_features")
    columns = [c["name"] for c in model["columns"]]
    assert columns[0] == "customer_id"
    assert tuple(columns[1:]) == FEATURE_COLUMNS


def test_decimals_and_integers_become_float64_in_order() -> None:
    df = frame(3)
    df["total_spend"] = [Decimal("10.50"), Decimal("0.01"), Decimal("99999.99")]
    df["total_transactions"] = pd.Series([1, 2, 3], dtype="int64")
    df["extra"] = "ignored"
    shuffled = df[["extra", *reversed(df.columns[:-1])]]

    X = feature_matrix(shuffled)

    assert list(X.columns) == list(FEATURE_COLUMNS)
    assert (X.dtypes == "float64").all()
    assert X["total_spend"].tolist() == [10.5, 0.01, 99999.99]
    assert X.index.equals(shuffled.index)


def test_nulls_raise_naming_each_column_and_count() -> None:
    df = frame(5)
    df.loc[[0, 3], "total_spend"] = np.nan
    df["amount_volatility"] = df["amount_volatility"].astype(object)
    df.loc[1, "amount_volatility"] = None

    with pytest.raises(ValueError, match="total_spend has 2 null") as info:
        feature_matrix(df)
    assert "amount_volatility has 1 null" in str(info.value)
    assert isinstance(info.value, FeatureValidationError)


def test_nullable_integer_nulls_are_reported() -> None:
    df = frame(3)
    df["unique_merchants"] = pd.array([1, None, 3], dtype="Int64")
    with pytest.raises(ValueError, match="unique_merchants has 1 null"):
        feature_matrix(df)


def test_infinities_raise_naming_the_column() -> None:
    df = frame(4)
    df.loc[2, "max_to_avg_ratio"] = np.inf
    df.loc[3, "max_to_avg_ratio"] = -np.inf
    with pytest.raises(ValueError, match=r"max_to_avg_ratio has 2 infinite value\(s\)"):
        feature_matrix(df)


def test_missing_and_non_numeric_columns_raise() -> None:
    with pytest.raises(ValueError, match=r"missing feature column.*total_spend"):
        feature_matrix(frame().drop(columns=["total_spend"]))
    bad = frame()
    bad["customer_tenure_days"] = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="customer_tenure_days is not numeric"):
        feature_matrix(bad)


def test_fingerprint_ignores_row_order_and_sees_any_change() -> None:
    df = frame(6)
    base = training_data_fingerprint(df)
    assert base == training_data_fingerprint(df.sample(frac=1.0, random_state=1))
    assert len(base) == 64

    changed = df.copy()
    changed.loc[2, "total_spend"] += 0.01
    assert training_data_fingerprint(changed) != base
    assert training_data_fingerprint(df.iloc[:-1]) != base
