"""ml.scoring.transactions: the model selection of gold.transaction_fraud_scores and the
incremental rule (which transactions still need a score), on DuckDB relations and pandas."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from ml import registry
from ml.scoring import transactions as ts

FEATURES = pd.DataFrame(
    {
        "transaction_id": ["t1", "t2", "t3", "t4"],
        "loaded_at": pd.to_datetime(["2026-10-01", "2026-10-01", "2026-10-03", "2026-10-03"]),
    }
)
# t1 scored from its features; t2 scored from older features (corrected since); t3 scored
# from features loaded later than the current ones (kept); t4 never scored.
SCORED = pd.DataFrame(
    {
        "transaction_id": ["t1", "t2", "t3"],
        "features_loaded_at": pd.to_datetime(["2026-10-01", "2026-09-30", "2026-10-04"]),
    }
)


def test_unscored_on_pandas_and_duckdb_agree() -> None:
    assert ts.unscored_transactions(FEATURES, SCORED)["transaction_id"].tolist() == ["t2", "t4"]
    con = duckdb.connect()
    left, right = con.from_df(FEATURES), con.from_df(SCORED)
    rows = ts.unscored_transactions(left, right).order("transaction_id").fetchall()
    assert [r[0] for r in rows] == ["t2", "t4"]
    nothing = ts.unscored_transactions(FEATURES, SCORED.iloc[:0])
    assert nothing["transaction_id"].tolist() == ["t1", "t2", "t3", "t4"]


def test_selection_is_the_transaction_classifier_with_its_own_pin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRAUD_SCORING_MODEL_VERSION", "7")  # the customer model's pin
    monkeypatch.delenv("FRAUD_TRANSACTION_SCORING_MODEL_VERSION", raising=False)
    settings = ts.transaction_scoring_settings({"scoring_alias": "challenger"}, "test")
    assert settings.model_names == (registry.TRANSACTION_CLASSIFIER_MODEL,)
    assert settings.alias == "challenger" and settings.pinned_version is None
    assert settings.fallback_model_name == registry.TRANSACTION_CLASSIFIER_MODEL
    assert settings.table == "gold.transaction_fraud_scores"
    pinned = ts.transaction_scoring_settings({ts.PINNED_VERSION_SETTING: "3"}, "prod")
    assert pinned.pinned_version == 3 and pinned.target == "prod"
    monkeypatch.setenv("FRAUD_TRANSACTION_SCORING_MODEL_VERSION", "4")
    assert ts.transaction_scoring_settings({}, "test").pinned_version == 4


def test_empty_batch_has_the_table_columns() -> None:
    out = ts.score_transactions(
        pd.DataFrame(columns=["transaction_id"]),
        pipeline=None,
        model=registry.SelectedVersion("m", 1, "r", None, registry.SELECTION_PINNED),
        threshold=0.5,
        scoring_batch_id="b",
    )
    assert list(out.columns) == list(ts.TRANSACTION_SCORES_COLUMNS) and len(out) == 0


def test_no_registered_classifier_leaves_transactions_unscored_on_local_only(
    fresh_mlflow_dir,
) -> None:
    """A data size whose training was skipped must not fail the build on the laptop target
    (the rows stay unscored for the next build); a production target still refuses."""
    from ml.scoring.selection import ModelResolutionError, NothingRegisteredError

    features = pd.DataFrame({"transaction_id": ["T1"]})
    local = ts.transaction_scoring_settings({}, "local")
    out = ts.run_transaction_scoring(features, local, scoring_batch_id="b")
    assert out.empty
    assert list(out.columns) == list(ts.TRANSACTION_SCORES_COLUMNS)
    production = ts.transaction_scoring_settings({}, "databricks")
    with pytest.raises(ModelResolutionError) as raised:
        ts.run_transaction_scoring(features, production, scoring_batch_id="b")
    assert not isinstance(raised.value, NothingRegisteredError)
