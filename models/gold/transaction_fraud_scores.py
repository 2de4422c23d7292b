"""Scores every transaction of gold.transaction_risk_features with the transaction classifier
chosen by ml.registry's selection rule (ml.scoring.transactions): fraud probability, flag at
the run's decision threshold, risk band and three reasons in words. Incremental: a build scores
the transactions not scored yet (and corrected ones whose features were recomputed); a full
refresh rescores all. Settings: dbt vars, see _gold__transaction_fraud_scores.yml."""


def model(dbt, session):
    settings = dbt.config.meta_get("ml_settings", {})  # dbt renders the YAML mapping natively
    configured_invocation_id = dbt.config.meta_get("dbt_invocation_id")
    target_name = dbt.config.meta_get("dbt_target", "unknown")
    from ml.provenance import crash_point, current_dbt_invocation_id, to_pandas
    from ml.scoring.transactions import (
        run_transaction_scoring,
        transaction_scoring_settings,
        unscored_transactions,
    )

    # Only to order the DAG: after this build's training, and after gold.fraud_scores, so the
    # two scoring models never load MLflow models at the same time (dbt runs Python models in
    # threads; MLflow's model loading is not thread-safe).
    dbt.ref("transaction_classifier_training_runs")
    dbt.ref("fraud_scores")

    features = dbt.ref("transaction_risk_features")
    if dbt.is_incremental:
        scored = session.sql(f"select transaction_id, features_loaded_at from {dbt.this}")
        features = unscored_transactions(features, scored)
    scores = run_transaction_scoring(
        to_pandas(features),
        transaction_scoring_settings(settings, target_name),
        scoring_batch_id=current_dbt_invocation_id(configured_invocation_id),
    )
    crash_point("scoring")
    return scores
