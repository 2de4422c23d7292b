"""The prediction-log format of audit.model_predictions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pandas as pd

AUDIT_COLUMNS: tuple[str, ...] = (
    "prediction_id",
    "customer_id",
    "model_name",
    "model_version",
    "model_alias",
    "selection",
    "prediction_timestamp",
    "is_anomaly",
    "confidence",
    "score",
    "risk_band",
    "scoring_batch_id",
    "dbt_invocation_id",
)


def prediction_ids(
    scoring_batch_ids: Sequence[str],
    customer_ids: Sequence[str],
    model_names: Sequence[str],
    model_versions: Sequence[int],
) -> list[str]:
    """Deterministic prediction ids: sha256 hex of
    ``"<scoring_batch_id>|<customer_id>|<model_name>|<model_version>"``."""
    return [
        hashlib.sha256(f"{b}|{c}|{m}|{v}".encode()).hexdigest()
        for b, c, m, v in zip(
            scoring_batch_ids, customer_ids, model_names, model_versions, strict=True
        )
    ]


def prediction_log_rows(scores: pd.DataFrame, dbt_invocation_id: str) -> pd.DataFrame:
    """``audit.model_predictions`` rows for a ``gold.fraud_scores`` frame.

    ``prediction_timestamp`` = ``scored_at``; ``score`` = ``anomaly_score``;
    ``dbt_invocation_id`` = the invocation that appended the row (equal to
    ``scoring_batch_id`` when scoring and logging ran in the same ``dbt build``)."""
    versions = scores["model_version"].astype("int64")
    out = pd.DataFrame(
        {
            "prediction_id": prediction_ids(
                scores["scoring_batch_id"].astype(str).tolist(),
                scores["customer_id"].astype(str).tolist(),
                scores["model_name"].astype(str).tolist(),
                versions.tolist(),
            ),
            "customer_id": scores["customer_id"].astype("string"),
            "model_name": scores["model_name"].astype("string"),
            "model_version": versions,
            "model_alias": scores["model_alias"].astype("string"),
            "selection": scores["selection"].astype("string"),
            "prediction_timestamp": pd.to_datetime(scores["scored_at"]).astype("datetime64[us]"),
            "is_anomaly": scores["is_anomaly"].astype(bool),
            "confidence": scores["confidence"].astype("float64"),
            "score": scores["anomaly_score"].astype("float64"),
            "risk_band": scores["risk_band"].astype("string"),
            "scoring_batch_id": scores["scoring_batch_id"].astype("string"),
            "dbt_invocation_id": pd.Series(
                [dbt_invocation_id] * len(scores), dtype="string", index=scores.index
            ),
        }
    )
    return out[list(AUDIT_COLUMNS)].reset_index(drop=True)


def not_yet_logged(rows: pd.DataFrame, existing_ids: Sequence[str]) -> pd.DataFrame:
    """The rows whose ``prediction_id`` is not in ``existing_ids`` (append-only log)."""
    return rows[~rows["prediction_id"].isin(set(existing_ids))].reset_index(drop=True)


def sql_string_list(values: Sequence[str]) -> str:
    """``'a', 'b'`` with quotes escaped, for an ``IN (...)`` list."""
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
