"""Scores every customer of gold.transaction_features with the registered model chosen by
ml.scoring.selection (alias, pinned version or first-run fallback) and adds confidence, risk
band and reason codes. Settings: dbt vars, see _gold__fraud_scores.yml."""


def model(dbt, session):
    settings = dbt.config.meta_get("ml_settings", {})  # dbt renders the YAML mapping natively
    configured_invocation_id = dbt.config.meta_get("dbt_invocation_id")
    target_name = dbt.config.meta_get("dbt_target", "unknown")
    from ml.provenance import crash_point, current_dbt_invocation_id, to_pandas
    from ml.scoring.batch import run_scoring
    from ml.scoring.selection import ScoringSettings

    # Only to order the DAG: in a full build, scoring runs after this build's training.
    dbt.ref("isolation_forest_training_runs")
    dbt.ref("random_forest_training_runs")

    features = to_pandas(dbt.ref("transaction_features"))
    scores = run_scoring(
        features,
        ScoringSettings.from_mapping(settings, target_name),
        scoring_batch_id=current_dbt_invocation_id(configured_invocation_id),
    )
    crash_point("scoring")
    return scores
