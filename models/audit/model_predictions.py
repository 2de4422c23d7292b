"""Append-only prediction audit log: one row per (scoring batch, customer, model version) of
gold.fraud_scores and one per (scoring batch, transaction, model version) of
gold.transaction_fraud_scores (entity_type 'customer' / 'transaction'). Rows already logged
(same deterministic prediction_id) are never added again, so rerunning without rescoring
appends nothing; a batch that a crashed build published without logging is caught up by the
pre-hooks of both scoring models before the next scoring replaces it
(macros/helpers/audit_published_scores.sql). See _audit__models.yml."""


def model(dbt, session):
    configured_invocation_id = dbt.config.meta_get("dbt_invocation_id")
    import pandas as pd

    from ml.provenance import anti_join, crash_point, current_dbt_invocation_id, to_pandas
    from ml.scoring.prediction_log import (
        TRANSACTION_ENTITY,
        not_yet_logged,
        prediction_log_rows,
        sql_string_list,
        transaction_log_rows,
    )

    crash_point("audit")
    invocation_id = current_dbt_invocation_id(configured_invocation_id)
    scores = to_pandas(dbt.ref("fraud_scores"))
    rows = prediction_log_rows(scores, invocation_id)
    transactions = dbt.ref("transaction_fraud_scores")
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
    transaction_rows = transaction_log_rows(to_pandas(transactions), invocation_id)
    return pd.concat([rows, transaction_rows], ignore_index=True)
