"""Trains the IsolationForest (ml.training.customer_models.isolation_forest) and appends
one row per training to ml_models.isolation_forest_training_runs.
Settings: dbt vars, see _ml__models.yml."""


def _relation_name(name):
    """``catalog.schema.table`` of a ref, from dbt's generated ``ref`` of this module."""
    return globals()["ref"](name, dbt_load_df_function=str).replace('"', "").replace("`", "")


def model(dbt, session):
    from ml.training.dbt_entry import train_in_dbt

    settings = dbt.config.meta_get("ml_settings", {})  # dbt renders the YAML mapping natively
    configured_invocation_id = dbt.config.meta_get("dbt_invocation_id")
    target_name = dbt.config.meta_get("dbt_target", "unknown")
    return train_in_dbt(
        "isolation_forest",
        dbt,
        session,
        dbt.ref("transaction_features"),
        dbt.ref("customer_fraud_labels"),
        settings,
        configured_invocation_id,
        target_name,
        (_relation_name("transaction_features"), _relation_name("customer_fraud_labels")),
    )
