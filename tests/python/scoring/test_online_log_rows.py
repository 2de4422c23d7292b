"""audit.model_predictions rows of online decisions (ml.scoring.prediction_log.online_log_rows)
on a hand-built audit.online_predictions frame."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.scoring import prediction_log


def online_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prediction_id": ["d-1", "d-2", "d-3", "d-4"],
            "transaction_id": ["t1", "t1", "t2", "t3"],
            "customer_id": ["c1", "c1", "c2", "c3"],
            "prediction_timestamp": pd.to_datetime(["2026-12-02 10:00:00.000001"] * 4),
            "model_role": ["champion", "challenger", "champion", "champion"],
            "model_name": ["tc"] * 4,
            "model_version": [3, 4, 3, 1],
            "model_alias": ["champion", "challenger", "champion", "latest_unvalidated"],
            "decision_threshold": [0.5, 0.8, 0.5, 0.8],
            "score": [0.9, 0.4, 0.2, 0.95],
            "is_flagged": [True, False, False, True],
            "risk_band": ["critical", "low", "medium", "high"],
            "decision_us": pd.array([120, 95, None, 300], dtype="Int64"),
            "source_file_name": ["decisions-a.jsonl"] * 4,
        }
    )


def test_online_rows_by_hand() -> None:
    rows = prediction_log.online_log_rows(online_frame(), "inv-9")
    assert tuple(rows.columns) == prediction_log.AUDIT_COLUMNS
    assert rows.prediction_id.tolist() == ["d-1", "d-2", "d-3", "d-4"]  # the decision ids
    assert set(rows.entity_type) == {prediction_log.ONLINE_ENTITY}
    assert rows.entity_id.tolist() == rows.transaction_id.tolist() == ["t1", "t1", "t2", "t3"]
    assert rows.model_role.tolist() == ["champion", "challenger", "champion", "champion"]
    assert rows.decision_us.tolist()[:2] == [120, 95] and pd.isna(rows.decision_us[2])
    assert rows.selection.tolist() == ["alias", "alias", "alias", "fallback_latest_unvalidated"]
    # the batch rule per row's own threshold: flagged (s - t) / (1 - t), else (t - s) / t
    assert rows.confidence.tolist() == pytest.approx([0.8, 0.5, 0.6, 0.75])
    assert rows.is_anomaly.tolist() == [True, False, False, True]
    assert set(rows.scoring_batch_id) == {"decisions-a.jsonl"}
    assert set(rows.dbt_invocation_id) == {"inv-9"}
    assert str(rows.prediction_timestamp.dtype) == "datetime64[us]"


def test_batch_rows_have_no_role_or_latency() -> None:
    scores = pd.DataFrame(
        {
            "scoring_batch_id": ["b1"],
            "transaction_id": ["t1"],
            "customer_id": ["c1"],
            "model_name": ["tc"],
            "model_version": [3],
            "model_alias": ["champion"],
            "selection": ["alias"],
            "scored_at": pd.to_datetime(["2026-12-02"]),
            "is_flagged": [True],
            "confidence": [0.5],
            "fraud_probability": [0.9],
            "risk_band": ["high"],
        }
    )
    rows = prediction_log.transaction_log_rows(scores, "inv")
    assert rows.model_role.isna().all() and rows.decision_us.isna().all()
    assert str(rows.decision_us.dtype) == "Int64"
    empty = prediction_log.online_log_rows(online_frame().iloc[:0], "inv")
    assert empty.empty and tuple(empty.columns) == prediction_log.AUDIT_COLUMNS
