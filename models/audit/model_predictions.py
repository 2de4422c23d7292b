"""Append-only prediction audit log: one row per (scoring batch, customer, model version) of
gold.fraud_scores, one per (scoring batch, transaction, model version) of
gold.transaction_fraud_scores and one per online decision of fraud-serve in
audit.online_predictions (entity_type 'customer' / 'transaction' / 'online_transaction';
online_predictions is empty without var decision_log_path). Rows already logged
(same deterministic prediction_id) are never added again, so rerunning without rescoring
appends nothing; a batch that a crashed build published without logging is caught up by the
pre-hooks of both scoring models before the next scoring replaces it
(macros/helpers/audit_published_scores.sql). See _audit__models.yml."""


def model(dbt, session):
    configured_invocation_id = dbt.config.meta_get("dbt_invocation_id")
    import pandas as pd

    from ml.provenance import anti_join, crash_point, current_dbt_invocation_id, to_pandas
    from ml.scoring.prediction_log import (
        ONLINE_ENTITY,
        TRANSACTION_ENTITY,
        not_yet_logged,
        online_log_rows,
        prediction_log_rows,
        sql_string_list,
        transaction_log_rows,
    )

    crash_point("audit")
    invocation_id = current_dbt_invocation_id(configured_invocation_id)
    scores = to_pandas(dbt.ref("fraud_scores"))
    rows = prediction_log_rows(scores, invocation_id)
    transactions = dbt.ref("transaction_fraud_scores")
    online = dbt.ref("online_predictions")
    if dbt.is_incremental:
        if len(rows):
            batches = sql_string_list(sorted(rows["scoring_batch_id"].unique()))
            existing = to_pandas(
                session.sql(
                    f"select prediction_id from {dbt.this} where scoring_batch_id in ({batches})"
                )
            )
            rows = not_yet_logged(rows, existing["prediction_id"].tolist())
        # the incremental table keeps every earlier batch: only rows not logged yet
        logged = session.sql(
            f"select scoring_batch_id, entity_id from {dbt.this} "
            f"where entity_type = '{TRANSACTION_ENTITY}'"
        )
        transactions = anti_join(
            transactions,
            logged,
            on=(("scoring_batch_id", "scoring_batch_id"), ("transaction_id", "entity_id")),
        )
        # online decisions: the decision id is the key, each is appended once
        logged_online = session.sql(
            f"select prediction_id from {dbt.this} where entity_type = '{ONLINE_ENTITY}'"
        )
        online = anti_join(online, logged_online, on=(("prediction_id", "prediction_id"),))
    transaction_rows = transaction_log_rows(to_pandas(transactions), invocation_id)
    online_rows = online_log_rows(to_pandas(online), invocation_id)
    parts = [part for part in (rows, transaction_rows, online_rows) if len(part)]
    return pd.concat(parts, ignore_index=True) if parts else rows
