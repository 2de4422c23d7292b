"""The transaction classifier's interface, shared by training, scoring and monitoring: what
the model sees (``FEATURE_COLUMNS`` of gold.transaction_risk_features, encoded by
``feature_matrix``) and what its score means (P(fraud) of one transaction from a scikit-learn
``Pipeline`` whose last step ``classifier`` has ``predict_proba``; the run's
``decision_threshold`` param/metric; ``contributions`` for reason codes).

The logged MLflow model is ``Pipeline([("preprocess", ...), ("classifier", ...)])``: the
preprocessing step takes the frame ``feature_matrix`` returns (categoricals as pandas
``category`` with the fixed category lists of the seeds, numeric as float64) and returns the
classifier's matrix with the same column names (``get_feature_names_out``).
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.registry import TRANSACTION_CLASSIFIER_MODEL

SHORT_NAME = "transaction_classifier"
MODEL_NAME = TRANSACTION_CLASSIFIER_MODEL  # main.ml_models.fraud_detection_transaction_classifier

KEY_COLUMNS: tuple[str, ...] = ("transaction_id", "customer_id", "merchant_id", "transaction_at")

# = meta.feature_columns of models/gold/_gold__transaction_risk_features.yml, in order (a test
# holds them equal).
FEATURE_COLUMNS: tuple[str, ...] = (
    "amount",
    "transaction_hour",
    "is_night",
    "is_weekend",
    "transaction_type",
    "merchant_category",
    "customer_txn_count_1h",
    "customer_amount_sum_1h",
    "customer_amount_avg_1h",
    "customer_txn_count_1d",
    "customer_amount_sum_1d",
    "customer_amount_avg_1d",
    "customer_txn_count_7d",
    "customer_amount_sum_7d",
    "customer_amount_avg_7d",
    "customer_txn_count_30d",
    "customer_amount_sum_30d",
    "customer_amount_avg_30d",
    "amount_to_customer_avg_7d",
    "amount_to_customer_avg_30d",
    "seconds_since_previous_txn",
    "is_new_device_30d",
    "is_new_ip_30d",
    "is_new_merchant_for_customer_30d",
    "distinct_devices_1d",
    "distinct_ips_1d",
    "merchant_txn_count_1d",
    "merchant_fraud_count_1d",
    "merchant_fraud_rate_1d",
    "merchant_txn_count_7d",
    "merchant_fraud_count_7d",
    "merchant_fraud_rate_7d",
    "merchant_txn_count_30d",
    "merchant_fraud_count_30d",
    "merchant_fraud_rate_30d",
    "customer_tenure_days",
    "is_new_customer",
    "is_new_merchant",
)
CATEGORICAL_COLUMNS: tuple[str, ...] = ("transaction_type", "merchant_category")
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c not in CATEGORICAL_COLUMNS)

SEEDS_DIR = Path(__file__).resolve().parents[1] / "seeds"
# categorical column -> (seed file, its key column)
CATEGORY_SEEDS: dict[str, tuple[str, str]] = {
    "transaction_type": ("transaction_types.csv", "transaction_type"),
    "merchant_category": ("merchant_categories.csv", "merchant_category"),
}

THRESHOLD_KEY = "decision_threshold"  # run param and metric of a training run
CLASSIFIER_STEP = "classifier"
PREPROCESS_STEP = "preprocess"


@cache
def categories(column: str) -> tuple[str, ...]:
    """The fixed, sorted category list of a categorical feature, read from its dbt seed (so
    training and serving encode identically, whatever values a batch happens to contain)."""
    if column not in CATEGORY_SEEDS:
        raise KeyError(f"{column!r} is not a categorical feature ({', '.join(CATEGORY_SEEDS)})")
    file, key = CATEGORY_SEEDS[column]
    path = SEEDS_DIR / file
    with path.open(newline="") as handle:
        values = sorted({row[key].strip() for row in csv.DictReader(handle) if row[key].strip()})
    if not values:
        raise ValueError(f"seed {path} has no values in column {key!r}")
    return tuple(values)


def feature_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """The model input: ``FEATURE_COLUMNS`` in order; categoricals as pandas ``category``
    with the seed's categories (a value outside them becomes missing, NaN); everything else
    float64 (booleans 0/1). Raises ``KeyError`` naming the missing columns."""
    missing = [c for c in FEATURE_COLUMNS if c not in frame.columns]
    if missing:
        raise KeyError(f"transaction features lack columns: {', '.join(missing)}")
    out = pd.DataFrame(index=frame.index)
    for column in FEATURE_COLUMNS:
        if column in CATEGORICAL_COLUMNS:
            dtype = pd.CategoricalDtype(list(categories(column)))
            out[column] = frame[column].astype("string").astype(object).astype(dtype)
        else:
            out[column] = pd.to_numeric(frame[column].astype("float64"), errors="raise")
    return out


def classifier_of(pipeline: Any) -> Any:
    """The ``classifier`` step of a logged transaction model."""
    return pipeline.named_steps[CLASSIFIER_STEP]


def transformed(pipeline: Any, X: pd.DataFrame) -> pd.DataFrame:
    """What the classifier sees: every step but the last applied to ``X``, as a frame named
    by the steps' output feature names."""
    head = pipeline[:-1]
    values = head.transform(X)
    names = [str(n) for n in head.get_feature_names_out()]
    return pd.DataFrame(np.asarray(values, dtype="float64"), columns=names, index=X.index)


def fraud_probability(pipeline: Any, X: pd.DataFrame) -> np.ndarray:
    """P(fraud) per row of ``X`` (the positive class of ``predict_proba``)."""
    classes = list(pipeline.classes_)
    positive = next((i for i, c in enumerate(classes) if c in (1, True)), len(classes) - 1)
    return np.asarray(pipeline.predict_proba(X)[:, positive], dtype="float64")


def contributions(pipeline: Any, X: pd.DataFrame) -> pd.DataFrame:
    """Per-row, per-feature contribution to the score, rows of ``X`` by ``FEATURE_COLUMNS``
    (positive = pushes towards fraud).

    LightGBM (a ``booster_``): exact TreeSHAP, ``predict(..., pred_contrib=True)``, in the
    model's raw log-odds units (the bias column dropped); rows sum to the margin minus the
    expected value. Any other classifier: ablation on the probability (``ml.scores``: each
    feature set to the batch median of what the classifier sees, the row rescored; one pass
    per feature)."""
    matrix = transformed(pipeline, X)
    clf = classifier_of(pipeline)
    booster = getattr(clf, "booster_", None)
    if booster is not None:
        raw = booster.predict(matrix.to_numpy(), pred_contrib=True)
        values = pd.DataFrame(np.asarray(raw)[:, :-1], columns=matrix.columns, index=X.index)
    else:
        from ml.scores import ablation_contributions

        positive = _positive_index(clf)

        def score(frame: pd.DataFrame) -> np.ndarray:
            values = clf.predict_proba(frame.to_numpy())
            return np.asarray(values[:, positive], dtype="float64")

        values = ablation_contributions(score, matrix)
    return values.reindex(columns=list(FEATURE_COLUMNS), fill_value=0.0)


def _positive_index(clf: Any) -> int:
    classes = list(clf.classes_)
    return next((i for i, c in enumerate(classes) if c in (1, True)), len(classes) - 1)
