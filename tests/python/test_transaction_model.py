"""The transaction classifier's shared interface (ml.transaction_model): registered name,
feature columns = the gold contract, fixed category encoding, contributions."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PROJECT_ROOT

from ml import transaction_model as tm
from ml.registry import resolve_model_name


def test_registered_name_follows_the_registry_rule() -> None:
    expected = "main.ml_models.fraud_detection_transaction_classifier"
    assert resolve_model_name(tm.SHORT_NAME) == expected
    assert expected == tm.MODEL_NAME


def test_feature_columns_are_the_yaml_meta_feature_columns() -> None:
    doc = PROJECT_ROOT / "models" / "gold" / "_gold__transaction_risk_features.yml"
    model = yaml.safe_load(doc.read_text())["models"][0]
    assert tuple(model["config"]["meta"]["feature_columns"]) == tm.FEATURE_COLUMNS
    assert set(tm.CATEGORICAL_COLUMNS) <= set(tm.FEATURE_COLUMNS)
    assert set(tm.KEY_COLUMNS) <= {c["name"] for c in model["columns"]}


@pytest.mark.parametrize("column", tm.CATEGORICAL_COLUMNS)
def test_categories_are_the_seed_values(column: str) -> None:
    file, key = tm.CATEGORY_SEEDS[column]
    with (PROJECT_ROOT / "seeds" / file).open(newline="") as handle:
        values = sorted(row[key] for row in csv.DictReader(handle))
    assert tm.categories(column) == tuple(values)


def _frame(n: int = 3) -> pd.DataFrame:
    data: dict[str, object] = {c: np.arange(n, dtype="int64") for c in tm.NUMERIC_COLUMNS}
    data["is_night"] = [True, False, True][:n]
    data["transaction_type"] = ["online", "purchase", "teleport"][:n]
    data["merchant_category"] = ["travel", "grocery", "grocery"][:n]
    return pd.DataFrame({"transaction_id": [f"T{i}" for i in range(n)], **data})


def test_feature_matrix_orders_and_encodes_with_fixed_categories() -> None:
    X = tm.feature_matrix(_frame().iloc[[1]])  # one row: categories still the full list
    assert tuple(X.columns) == tm.FEATURE_COLUMNS
    assert list(X["merchant_category"].cat.categories) == list(tm.categories("merchant_category"))
    assert X["merchant_category"].cat.codes.iloc[0] == tm.categories("merchant_category").index(
        "grocery"
    )
    full = tm.feature_matrix(_frame())
    assert full["is_night"].dtype == "float64" and full["is_night"].tolist() == [1.0, 0.0, 1.0]
    assert pd.isna(full["transaction_type"].iloc[2])  # outside the seed: missing, not a new code


def test_feature_matrix_names_missing_columns() -> None:
    with pytest.raises(KeyError, match="amount"):
        tm.feature_matrix(_frame().drop(columns=["amount"]))


def test_path_contributions_add_up_to_the_margin() -> None:
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = (X[:, 0] + 0.5 * X[:, 3] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    clf = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(X, y)
    booster = clf.booster_
    contrib = tm.path_contributions(booster, X)
    roots = sum(
        info["tree_structure"].get("internal_value", info["tree_structure"].get("leaf_value", 0))
        for info in booster.dump_model()["tree_info"]
    )
    assert contrib.shape == (400, 5)
    assert np.allclose(contrib.sum(axis=1), booster.predict(X, raw_score=True) - roots)
    # the informative features get the credit
    assert np.abs(contrib).mean(axis=0).argmax() == 0
    # the few-row gather (the real-time path) equals the tree-by-tree sum of the batch path
    for row in range(0, 400, 37):
        one = tm.path_contributions(booster, X[row : row + 1], num_threads=1)
        np.testing.assert_allclose(one[0], contrib[row], rtol=0, atol=1e-12)
