"""gold.transaction_fraud_scores through dbt on a private copy of the committed fixture: one
row per valid transaction with three reasons, every row in audit.model_predictions; a second
build after a new delivery scores only the new transactions and the corrected ones (their
features were recomputed), leaving every other row as it was; a full refresh rescores all and
the audit log keeps every earlier row.

    .venv/bin/pytest tests/python/end_to_end/test_transaction_fraud_scores.py
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import SMALL_FIXTURE_DIR, DbtProject

from ml.scoring import transaction_reasons as tr
from ml.scoring.prediction_log import prediction_ids

pytestmark = pytest.mark.e2e

FAST_TRAINING = {
    "rf_n_estimators": 25,
    "if_n_estimators": 25,
    "if_importance_sample_size": 200,
    "tc_n_estimators": 60,
}
SCORES = "gold.transaction_fraud_scores"
DELIVERY_ROWS = 300


def _deliver(raw: Path, name: str) -> tuple[set[str], set[str]]:
    """A landing file of fixture rows: even rows with new ids, odd rows corrected versions of
    earlier ones (same ids). Returns (new ids, corrected ids)."""
    table = pq.read_table(SMALL_FIXTURE_DIR / "transactions" / "batch_0000.parquet")
    table = table.slice(0, DELIVERY_ROWS)
    ids = [str(v) for v in table.column("transaction_id").to_pylist()]
    fresh = [f"{name}-{v}" if i % 2 == 0 else v for i, v in enumerate(ids)]
    index = table.schema.get_field_index("transaction_id")
    table = table.set_column(
        index, "transaction_id", pc.cast(fresh, table.schema.field(index).type)
    )
    pq.write_table(table, raw / "transactions" / f"{name}.parquet")
    return set(fresh[0::2]), set(ids[1::2])


def _audit_transactions(project: DbtProject) -> pd.DataFrame:
    return project.query("select * from audit.model_predictions where entity_type = 'transaction'")


def test_transaction_scores_incremental_with_reasons_and_audit(
    tmp_path: Path, dbt_project_factory: Callable[..., DbtProject]
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(SMALL_FIXTURE_DIR, raw)
    project = dbt_project_factory("txn_scores", vars={"raw_data_path": str(raw), **FAST_TRAINING})
    project.run("build")

    # One row per valid transaction in scope, three non-null reasons.
    features = project.query("select transaction_id, loaded_at from gold.transaction_risk_features")
    valid = project.query("select count(*) as n from silver.transactions_cleaned").n.iloc[0]
    scores = project.query(f"select * from {SCORES}")
    assert len(scores) == len(features) == valid > 0
    assert scores.transaction_id.is_unique
    assert set(scores.transaction_id) == set(features.transaction_id)
    for column in tr.REASON_COLUMNS:
        assert scores[column].notna().all() and (scores[column].str.len() > 0).all(), column
    assert (scores.fraud_probability.between(0, 1)).all()
    assert (scores.is_flagged == (scores.fraud_probability >= scores.decision_threshold)).all()
    assert scores.scoring_batch_id.nunique() == 1
    new_customers = project.query(
        "select transaction_id from gold.transaction_risk_features where is_new_customer"
    )
    new_rows = scores[scores.transaction_id.isin(set(new_customers.transaction_id))]
    assert len(new_rows) > 0
    assert (new_rows[list(tr.REASON_COLUMNS)] == tr.NEW_CUSTOMER_NOTE).any(axis=1).all()

    # Every score is in the audit log, with the ids of ml.scoring.prediction_log.
    audit = _audit_transactions(project)
    assert len(audit) == len(scores)
    assert set(audit.transaction_id) == set(scores.transaction_id)
    assert audit.prediction_id.tolist() == prediction_ids(
        audit.scoring_batch_id.tolist(),
        audit.entity_id.tolist(),
        audit.model_name.tolist(),
        audit.model_version.astype(int).tolist(),
        audit.entity_type.tolist(),
    )
    assert (
        project.query(
            "select count(*) as n from audit.model_predictions where entity_type = 'customer'"
        ).n.iloc[0]
        > 0
    )

    # A second build scores only what is new: new ids and corrected transactions.
    new_ids, corrected_ids = _deliver(raw, "second")
    project.run("build")
    after = project.query(f"select * from {SCORES}")
    valid_after = project.query("select count(*) as n from silver.transactions_cleaned").n.iloc[0]
    assert len(after) == valid_after and after.transaction_id.is_unique
    second_batch = set(after.scoring_batch_id) - set(scores.scoring_batch_id)
    assert len(second_batch) == 1
    rescored = set(after.transaction_id[after.scoring_batch_id.isin(second_batch)])
    features_after = project.query(
        "select transaction_id, loaded_at from gold.transaction_risk_features"
    )
    reloaded = features_after[features_after.loaded_at > scores.features_loaded_at.max()]
    assert rescored == set(reloaded.transaction_id)
    assert new_ids & set(after.transaction_id) <= rescored
    assert len(rescored) < len(after) / 2  # only the delivery, not everything
    assert rescored - new_ids <= corrected_ids
    kept = after[~after.transaction_id.isin(rescored)].set_index("transaction_id")
    before = scores.set_index("transaction_id").loc[kept.index]
    assert (kept.scoring_batch_id == before.scoring_batch_id).all()
    assert (kept.fraud_probability == before.fraud_probability).all()
    audit_after = _audit_transactions(project)
    assert len(audit_after) == len(audit) + len(rescored)
    assert audit_after.prediction_id.is_unique

    # Full refresh: every transaction rescored in one batch; the audit log keeps its history.
    project.run("build", "--full-refresh", "--select", "transaction_fraud_scores+")
    refreshed = project.query(f"select * from {SCORES}")
    assert len(refreshed) == valid_after and refreshed.scoring_batch_id.nunique() == 1
    assert set(refreshed.scoring_batch_id).isdisjoint(set(after.scoring_batch_id))
    assert len(_audit_transactions(project)) == len(audit_after) + len(refreshed)
