"""Trains the transaction classifier (ml.training.transaction_model) on a time-ordered split
of gold.transaction_risk_features, with the labels of silver.fraud_labels known by the
cut-off and the ground truth of silver.transactions_cleaned, and appends one row per
training (or skip) to ml_models.transaction_classifier_training_runs. Settings: dbt vars,
see _ml__models.yml."""


def _relation_name(name):
    """``catalog.schema.table`` of a ref, from dbt's generated ``ref`` of this module."""
    return globals()["ref"](name, dbt_load_df_function=str).replace('"', "").replace("`", "")


def model(dbt, session):
    from ml.training.dbt_entry import train_transaction_classifier_in_dbt

    settings = dbt.config.meta_get("ml_settings", {})
    configured_invocation_id = dbt.config.meta_get("dbt_invocation_id")
    target_name = dbt.config.meta_get("dbt_target", "unknown")
    return train_transaction_classifier_in_dbt(
        dbt,
        session,
        dbt.ref("transaction_risk_features"),
        dbt.ref("fraud_labels"),
        dbt.ref("transactions_cleaned"),
        settings,
        configured_invocation_id,
        target_name,
        (
            _relation_name("transaction_risk_features"),
            _relation_name("fraud_labels"),
            _relation_name("transactions_cleaned"),
        ),
    )
