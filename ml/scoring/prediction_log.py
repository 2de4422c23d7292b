"""The prediction-log format of audit.model_predictions: customer rows (gold.fraud_scores),
transaction rows (gold.transaction_fraud_scores) and online decision rows of fraud-serve
(audit.online_predictions, champion and shadow challenger) side by side, told apart by
``entity_type`` and keyed by ``entity_id`` (customer_id or transaction_id)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml import registry
from ml.scores import confidence

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
    # added with transaction scoring (appended columns: null on rows logged before, which are
    # customer rows)
    "entity_type",
    "entity_id",
    "transaction_id",
    # added with the online decisions (null on batch rows)
    "model_role",
    "decision_us",
)
CUSTOMER_ENTITY = "customer"
TRANSACTION_ENTITY = "transaction"
ONLINE_ENTITY = "online_transaction"


def prediction_key(
    entity_type: str | None, batch: str, entity_id: str, model: str, version: int
) -> str:
    """What a prediction id hashes:
    ``"<scoring_batch_id>|<customer_id>|<model_name>|<model_version>"`` for a customer (the
    original form: ids logged before stay valid), and
    ``"<scoring_batch_id>|transaction:<transaction_id>|<model_name>|<model_version>"`` for a
    transaction (so a transaction id can never collide with a customer id). ``entity_type``
    None = customer (rows logged before the column existed)."""
    if entity_type in (None, CUSTOMER_ENTITY):
        return f"{batch}|{entity_id}|{model}|{version}"
    if entity_type == TRANSACTION_ENTITY:
        return f"{batch}|transaction:{entity_id}|{model}|{version}"
    raise ValueError(
        f"unknown entity_type {entity_type!r} ({CUSTOMER_ENTITY}, {TRANSACTION_ENTITY})"
    )


def prediction_ids(
    scoring_batch_ids: Sequence[str],
    entity_ids: Sequence[str],
    model_names: Sequence[str],
    model_versions: Sequence[int],
    entity_types: Sequence[str | None] | None = None,
) -> list[str]:
    """Deterministic prediction ids: sha256 hex of ``prediction_key`` (``entity_types``
    omitted: customers; the macro audit_published_scores computes the same in SQL)."""
    types = entity_types if entity_types is not None else [None] * len(entity_ids)
    return [
        hashlib.sha256(prediction_key(t, b, e, m, int(v)).encode()).hexdigest()
        for b, e, m, v, t in zip(
            scoring_batch_ids, entity_ids, model_names, model_versions, types, strict=True
        )
    ]


def prediction_log_rows(scores: pd.DataFrame, dbt_invocation_id: str) -> pd.DataFrame:
    """``audit.model_predictions`` rows for a ``gold.fraud_scores`` frame.

    ``prediction_timestamp`` = ``scored_at``; ``score`` = ``anomaly_score``;
    ``dbt_invocation_id`` = the invocation that appended the row (equal to
    ``scoring_batch_id`` when scoring and logging ran in the same ``dbt build``)."""
    return _log_rows(
        scores,
        dbt_invocation_id,
        entity=CUSTOMER_ENTITY,
        entity_column="customer_id",
        flag_column="is_anomaly",
        score_column="anomaly_score",
    )


def transaction_log_rows(scores: pd.DataFrame, dbt_invocation_id: str) -> pd.DataFrame:
    """``audit.model_predictions`` rows for a ``gold.transaction_fraud_scores`` frame:
    ``entity_type`` 'transaction', ``entity_id`` = ``transaction_id``; ``score`` =
    ``fraud_probability``, ``is_anomaly`` = ``is_flagged`` (so one monitoring query serves both
    kinds of rows); the other columns as ``prediction_log_rows``."""
    return _log_rows(
        scores,
        dbt_invocation_id,
        entity=TRANSACTION_ENTITY,
        entity_column="transaction_id",
        flag_column="is_flagged",
        score_column="fraud_probability",
    )


def _log_rows(
    scores: pd.DataFrame,
    dbt_invocation_id: str,
    *,
    entity: str,
    entity_column: str,
    flag_column: str,
    score_column: str,
) -> pd.DataFrame:
    """The audit rows of one scores frame; customer rows keep their historical ids (no entity
    type in the key) and a null ``transaction_id``."""
    versions = scores["model_version"].astype("int64")
    n = len(scores)
    is_transaction = entity == TRANSACTION_ENTITY

    def constant(value: Any) -> pd.Series:
        return pd.Series([value] * n, dtype="string", index=scores.index)

    entity_ids = scores[entity_column].astype("string")
    out = pd.DataFrame(
        {
            "prediction_id": prediction_ids(
                scores["scoring_batch_id"].astype(str).tolist(),
                scores[entity_column].astype(str).tolist(),
                scores["model_name"].astype(str).tolist(),
                versions.tolist(),
                [TRANSACTION_ENTITY] * n if is_transaction else None,
            ),
            "customer_id": scores["customer_id"].astype("string"),
            "model_name": scores["model_name"].astype("string"),
            "model_version": versions,
            "model_alias": scores["model_alias"].astype("string"),
            "selection": scores["selection"].astype("string"),
            "prediction_timestamp": pd.to_datetime(scores["scored_at"]).astype("datetime64[us]"),
            "is_anomaly": scores[flag_column].astype(bool),
            "confidence": scores["confidence"].astype("float64"),
            "score": scores[score_column].astype("float64"),
            "risk_band": scores["risk_band"].astype("string"),
            "scoring_batch_id": scores["scoring_batch_id"].astype("string"),
            "dbt_invocation_id": constant(dbt_invocation_id),
            "entity_type": constant(entity),
            "entity_id": entity_ids,
            "transaction_id": entity_ids if is_transaction else constant(None),
            "model_role": constant(None),
            "decision_us": pd.Series([None] * n, dtype="Int64", index=scores.index),
        }
    )
    return out[list(AUDIT_COLUMNS)].reset_index(drop=True)


def online_log_rows(online: pd.DataFrame, dbt_invocation_id: str) -> pd.DataFrame:
    """``audit.model_predictions`` rows for an ``audit.online_predictions`` frame (one per
    decision and role): ``entity_type`` 'online_transaction', ``prediction_id`` = the decision
    id (unique per decision, never a sha256 of a batch key), ``scoring_batch_id`` = the log file
    of the decision, ``is_anomaly`` = ``is_flagged``, ``confidence`` by the batch scores' rule
    (``ml.scores.confidence``), ``selection`` 'alias' for a version loaded by @champion or
    @challenger and 'fallback_latest_unvalidated' otherwise (the service's fallback), and
    ``model_role`` / ``decision_us`` from the log."""
    n = len(online)
    score = online["score"].astype("float64").to_numpy()
    flagged = online["is_flagged"].astype(bool).to_numpy()
    threshold = online["decision_threshold"].astype("float64").to_numpy()
    by_alias = online["model_alias"].isin([registry.CHAMPION_ALIAS, registry.CHALLENGER_ALIAS])
    transaction_ids = online["transaction_id"].astype("string")
    out = pd.DataFrame(
        {
            "prediction_id": online["prediction_id"].astype("string"),
            "customer_id": online["customer_id"].astype("string"),
            "model_name": online["model_name"].astype("string"),
            "model_version": online["model_version"].astype("int64"),
            "model_alias": online["model_alias"].astype("string"),
            "selection": pd.Series(
                np.where(by_alias, registry.SELECTION_ALIAS, registry.SELECTION_FALLBACK),
                dtype="string",
                index=online.index,
            ),
            "prediction_timestamp": pd.to_datetime(online["prediction_timestamp"]).astype(
                "datetime64[us]"
            ),
            "is_anomaly": online["is_flagged"].astype(bool),
            "confidence": pd.Series(
                confidence(score, threshold, flagged), index=online.index, dtype="float64"
            ),
            "score": online["score"].astype("float64"),
            "risk_band": online["risk_band"].astype("string"),
            "scoring_batch_id": online["source_file_name"].astype("string"),
            "dbt_invocation_id": pd.Series(
                [dbt_invocation_id] * n, dtype="string", index=online.index
            ),
            "entity_type": pd.Series([ONLINE_ENTITY] * n, dtype="string", index=online.index),
            "entity_id": transaction_ids,
            "transaction_id": transaction_ids,
            "model_role": online["model_role"].astype("string"),
            "decision_us": online["decision_us"].astype("Int64"),
        }
    )
    return out[list(AUDIT_COLUMNS)].reset_index(drop=True)


def not_yet_logged(rows: pd.DataFrame, existing_ids: Sequence[str]) -> pd.DataFrame:
    """The rows whose ``prediction_id`` is not in ``existing_ids`` (append-only log)."""
    return rows[~rows["prediction_id"].isin(set(existing_ids))].reset_index(drop=True)


def sql_string_list(values: Sequence[str]) -> str:
    """``'a', 'b'`` with quotes escaped, for an ``IN (...)`` list."""
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
