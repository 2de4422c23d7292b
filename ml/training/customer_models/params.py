"""Parameters, run context and retrain policy of the per-customer models (dbt vars in
models/ml/_ml__models.yml; README "Settings").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ml import registry
from ml.provenance import head_commit
from ml.training import params_coercion
from ml.training.params_coercion import is_unset

LABEL_COLUMN = "is_fraudulent"
EVALUATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
)
STATUS_TRAINED = "trained"
STATUS_SKIPPED = "skipped"

# Column order and dtypes of ml_models.*_training_runs (identical for both models).
TRAINING_RUN_SCHEMA: dict[str, str] = {
    "run_id": "string",
    "model_name": "string",
    "model_version": "Int64",
    "status": "string",
    "skip_reason": "string",
    "trained_at": "datetime64[us]",
    "n_customers": "Int64",
    "n_fraud_customers": "Int64",
    "n_train": "Int64",
    "n_test": "Int64",
    "evaluation_set": "string",
    "accuracy": "float64",
    "precision": "float64",
    "recall": "float64",
    "f1": "float64",
    "roc_auc": "float64",
    "average_precision": "float64",
    "n_anomalies_detected": "Int64",
    "anomaly_rate": "float64",
    "fit_seconds": "float64",
    "training_seconds": "float64",
    "dbt_invocation_id": "string",
    "training_data_fingerprint": "string",
    "git_commit": "string",
    "mlflow_tracking_uri": "string",
    "n_transactions": "Int64",
    "training_config_fingerprint": "string",
    "as_of_date": "datetime64[us]",
}


# ---------------------------------------------------------------------------------------------
# Parameters and context
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IsolationForestParams:
    """IsolationForest hyper-parameters (dbt vars ``if_<name>``)."""

    contamination: float | str = 0.01
    n_estimators: int = 200
    max_samples: int | float | str = "auto"
    random_state: int = 42
    # rows used for the ablation feature importance (random sample; 0 = all rows)
    importance_sample_size: int = 5000

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> IsolationForestParams:
        return params_coercion.from_mapping(cls, values, "if_")


@dataclass(frozen=True)
class RandomForestParams:
    """RandomForest hyper-parameters, split and label rule (dbt vars ``rf_<name>``)."""

    n_estimators: int = 200
    max_depth: int | None = 10
    min_samples_split: int = 5
    min_samples_leaf: int = 2
    class_weight: str | None = "balanced"
    random_state: int = 42
    test_size: float = 0.3
    split_random_state: int = 42
    smote_k_neighbors: int = 5
    min_fraud_customers: int = 100
    # None: chosen on the training part only, as the threshold that maximises F1 on the
    # out-of-bag fraud probabilities of the real (not SMOTE) training rows; a number pins it.
    decision_threshold: float | None = None
    # threads for the fit only (-1 = all cores); the registered model predicts single-threaded
    # (scoring parallelises itself). Results do not depend on it.
    n_jobs: int | None = -1

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RandomForestParams:
        return params_coercion.from_mapping(cls, values, "rf_")


RETRAIN_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class RetrainPolicy:
    """When a build retrains a model (dbt vars ``retrain_<name>``).

    ``mode='always'`` trains at every build; ``'never'`` freezes the registered models (every
    build records a ``skipped`` row saying so; scoring keeps using the registered versions).
    ``'auto'`` (default) trains when there is no earlier training, when the model's parameters
    or feature list changed, when the last training is older than ``max_age_days``, or when
    the training data moved by at least ``min_data_change`` (relative change in transactions
    or customers behind the features); otherwise the build records a ``skipped`` row with the
    reason and scoring keeps using the registered model. Identical data never retrains (the
    fit would be identical too). Age is measured on the data's clock: the build's var
    ``as_of_date`` minus the ``as_of_date`` recorded with the last training, never the wall
    clock, so replaying history does not retrain because time passed."""

    mode: str = "auto"
    min_data_change: float = 0.05
    max_age_days: float = 7.0

    def __post_init__(self) -> None:
        if self.mode not in RETRAIN_MODES:
            raise ValueError(
                f"dbt var retrain_mode must be one of {', '.join(RETRAIN_MODES)}; got {self.mode!r}"
            )
        if self.min_data_change < 0 or self.max_age_days < 0:
            raise ValueError("retrain_min_data_change and retrain_max_age_days must be >= 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RetrainPolicy:
        return params_coercion.from_mapping(cls, values, "retrain_")


def as_of_date_var(value: Any) -> date | None:
    """The dbt var ``as_of_date`` (ISO ``YYYY-MM-DD``) as a date; None when unset. A value
    that is not an ISO calendar date raises ValueError naming the var."""
    if value is None or isinstance(value, date):
        return value
    if is_unset(value):
        return None
    text = str(value).strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"dbt var as_of_date must be an ISO date YYYY-MM-DD; got {text!r}"
        ) from None


@dataclass(frozen=True)
class TrainingContext:
    """Where a training run comes from and goes to."""

    dbt_invocation_id: str = "manual"
    dbt_target: str = "local"
    input_relations: tuple[str, ...] = ()
    tracking_uri: str | None = None
    registry_uri: str | None = None
    experiment_name: str = registry.EXPERIMENT_NAME
    git_commit: str = field(default_factory=head_commit)
    # The build's var as_of_date (the data's clock): the retrain policy measures age with it.
    as_of_date: date | None = None
