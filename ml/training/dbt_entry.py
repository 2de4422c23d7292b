"""The one entry point of the dbt training models (models/ml/*_training_runs.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ml.training.customer_models.isolation_forest import train_isolation_forest
from ml.training.customer_models.params import (
    STATUS_TRAINED,
    IsolationForestParams,
    RandomForestParams,
    RetrainPolicy,
    TrainingContext,
    as_of_date_var,
)
from ml.training.customer_models.random_forest import train_random_forest
from ml.training.customer_models.steps import last_trained_run


def train_in_dbt(
    model_type: str,
    dbt: Any,
    session: Any,
    features_relation: Any,
    labels_relation: Any,
    settings: Mapping[str, Any],
    invocation_id: str | None,
    target_name: str,
    input_relations: tuple[str, ...],
) -> pd.DataFrame:
    """What both ``models/ml/*_training_runs.py`` do, ``model_type`` ``'isolation_forest'``
    or ``'random_forest'``: read features and labels (the ``dbt.ref`` relations and the
    ``dbt.config`` values stay literal in the model files, where dbt looks for them), build
    the run context, parameters and retrain policy from the settings, compare with the last
    training recorded in the model's own table (``dbt.this``) and train or skip."""
    from ml.provenance import crash_point, to_pandas

    params_class, train = _TRAINERS[model_type]
    context = _context(settings, invocation_id, target_name, input_relations)
    previous = last_trained_run(session, dbt.this) if dbt.is_incremental else None
    row = train(
        to_pandas(features_relation),
        to_pandas(labels_relation),
        params_class.from_mapping(settings),
        context,
        previous,
        RetrainPolicy.from_mapping(settings),
    )
    if row["status"].eq(STATUS_TRAINED).any():
        crash_point("training")
    return row


def _context(
    settings: Mapping[str, Any],
    invocation_id: str | None,
    target_name: str,
    input_relations: tuple[str, ...],
) -> TrainingContext:
    """The run context every training model records: dbt invocation and target, the input
    relations, the MLflow URIs and the data's clock (var ``as_of_date``)."""
    from ml.provenance import current_dbt_invocation_id

    return TrainingContext(
        dbt_invocation_id=current_dbt_invocation_id(invocation_id),
        dbt_target=target_name,
        input_relations=input_relations,
        tracking_uri=settings.get("mlflow_tracking_uri"),
        registry_uri=settings.get("mlflow_registry_uri"),
        as_of_date=as_of_date_var(settings.get("as_of_date")),
    )


_TRAINERS: dict[str, tuple[Any, Any]] = {
    "isolation_forest": (IsolationForestParams, train_isolation_forest),
    "random_forest": (RandomForestParams, train_random_forest),
}


def train_transaction_classifier_in_dbt(
    dbt: Any,
    session: Any,
    features_relation: Any,
    labels_relation: Any,
    truth_relation: Any,
    settings: Mapping[str, Any],
    invocation_id: str | None,
    target_name: str,
    input_relations: tuple[str, ...],
) -> pd.DataFrame:
    """What ``models/ml/transaction_classifier_training_runs.py`` does: the same context and
    retrain policy as the customer models, the transaction classifier's own settings."""
    from ml.provenance import to_pandas
    from ml.training.transaction_model.params import (
        TransactionClassifierParams,
        card_precision_k,
    )
    from ml.training.transaction_model.train import train_transaction_classifier

    context = _context(settings, invocation_id, target_name, input_relations)
    previous = last_trained_run(session, dbt.this) if dbt.is_incremental else None
    truth = to_pandas(truth_relation)[["transaction_id", "is_fraud"]]
    return train_transaction_classifier(
        to_pandas(features_relation),
        to_pandas(labels_relation),
        truth,
        TransactionClassifierParams.from_mapping(settings),
        card_precision_k(settings),
        context,
        previous,
        RetrainPolicy.from_mapping(settings),
    )
