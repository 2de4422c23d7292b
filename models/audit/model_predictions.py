"""Append-only prediction audit log: one row per (scoring batch, customer, model version) of
gold.fraud_scores. Rows already logged (same deterministic prediction_id) are never added
again, so rerunning without rescoring appends nothing; a batch that a crashed build published
without logging is caught up by the pre-hook of gold.fraud_scores before the next scoring
replaces it (macros/helpers/audit_published_scores.sql). See _audit__models.yml."""


def model(dbt, session):
    configured_invocation_id = dbt.config.meta_get("dbt_invocation_id")
    from ml.provenance import crash_point, current_dbt_invocation_id, to_pandas
    from ml.scoring.prediction_log import not_yet_logged, prediction_log_rows, sql_string_list

    crash_point("audit")
    scores = to_pandas(dbt.ref("fraud_scores"))
    rows = prediction_log_rows(scores, current_dbt_invocation_id(configured_invocation_id))
    if dbt.is_incremental and len(rows):
        batches = sql_string_list(sorted(rows["scoring_batch_id"].unique()))
        existing = to_pandas(
            session.sql(
                f"select prediction_id from {dbt.this} where scoring_batch_id in ({batches})"
            )
        )
        rows = not_yet_logged(rows, existing["prediction_id"].tolist())
    return rows
