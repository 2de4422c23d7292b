"""Trains the IsolationForest (ml.training.train_isolation_forest) and appends one row per
training to ml_models.isolation_forest_training_runs. Settings: dbt vars, see _ml__models.yml."""

import os
import sys


def _ensure_ml_importable():
    """dbt runs this file from a temporary copy: put the project root on sys.path when the
    project's ``ml`` package is not pip-installed (``pip install -e .`` makes this a no-op)."""
    try:
        import ml  # noqa: F401
    except ModuleNotFoundError:
        try:
            from dbt.flags import get_flags

            root = getattr(get_flags(), "PROJECT_DIR", None) or os.getcwd()
        except Exception:
            root = os.getcwd()
        sys.path.insert(0, os.path.abspath(str(root)))


def _relation_name(name):
    """``catalog.schema.table`` of a ref, from dbt's generated ``ref`` of this module."""
    return globals()["ref"](name, dbt_load_df_function=str).replace('"', "").replace("`", "")


def model(dbt, session):
    settings = dbt.config.meta_get("ml_settings", {})  # dbt renders the YAML mapping natively
    configured_invocation_id = dbt.config.meta_get("dbt_invocation_id")
    target_name = dbt.config.meta_get("dbt_target", "unknown")
    _ensure_ml_importable()
    from ml.features import current_dbt_invocation_id, to_pandas
    from ml.training import IsolationForestParams, TrainingContext, train_isolation_forest

    features = to_pandas(dbt.ref("transaction_features"))
    labels = to_pandas(dbt.ref("customer_fraud_labels"))
    context = TrainingContext(
        dbt_invocation_id=current_dbt_invocation_id(configured_invocation_id),
        dbt_target=target_name,
        input_relations=(
            _relation_name("transaction_features"),
            _relation_name("customer_fraud_labels"),
        ),
        tracking_uri=settings.get("mlflow_tracking_uri"),
        registry_uri=settings.get("mlflow_registry_uri"),
    )
    return train_isolation_forest(
        features, labels, IsolationForestParams.from_mapping(settings), context
    )
