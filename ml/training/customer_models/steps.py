"""The pure steps of a per-customer training run: label join, the label-threshold and
retrain rules, fingerprints, pipelines, SMOTE, evaluation metrics, the drift reference frame
and the training-run row. No MLflow, no warehouse.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml.features import FEATURE_COLUMNS, ID_COLUMN
from ml.timing import phase
from ml.training.customer_models.params import (
    LABEL_COLUMN,
    STATUS_TRAINED,
    TRAINING_RUN_SCHEMA,
    IsolationForestParams,
    RandomForestParams,
    RetrainPolicy,
)


def join_labels(features: pd.DataFrame, labels: pd.DataFrame) -> pd.Series:
    """Boolean label per feature row (aligned to ``features``): fraudulent when any of the
    customer's transactions is. A customer without a label row counts as not fraudulent."""
    fraudulent = set(labels.loc[labels[LABEL_COLUMN].eq(True), ID_COLUMN].astype(str))
    return features[ID_COLUMN].astype(str).isin(fraudulent).astype(bool)


def rf_training_decision(n_fraud_customers: int, min_fraud_customers: int) -> str | None:
    """The label-threshold rule: None = train; otherwise the skip reason."""
    if n_fraud_customers >= min_fraud_customers:
        return None
    return (
        f"only {n_fraud_customers} fraudulent customer(s) in gold.customer_fraud_labels; "
        f"the random forest needs at least {min_fraud_customers} "
        "(var rf_min_fraud_customers)"
    )


def training_config_fingerprint(params: Any) -> str:
    """sha256 of what defines a model besides its data: the parameters and the feature list."""
    payload = json.dumps(
        {"params": asdict(params), "features": list(FEATURE_COLUMNS)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _relative_change(now: float, before: Any) -> float:
    if before is None or pd.isna(before):
        return math.inf
    before = float(before)
    return abs(now - before) / before if before else (0.0 if now == before else math.inf)


def _days_between(earlier: Any, later: date | None) -> float | None:
    """Days from ``earlier`` (a recorded as_of_date) to ``later``; None when either is unknown."""
    if later is None or earlier is None or pd.isna(earlier):
        return None
    return float((pd.Timestamp(later) - pd.Timestamp(earlier)).days)


def retraining_decision(
    previous: Mapping[str, Any] | None,
    *,
    data_fingerprint: str,
    config_fingerprint: str,
    n_transactions: int,
    n_customers: int,
    as_of: date | None,
    policy: RetrainPolicy,
) -> str | None:
    """The retrain rule of :class:`RetrainPolicy`: None = train; otherwise the skip reason.
    ``previous`` is the last ``trained`` row of the model's ``*_training_runs`` table and
    ``as_of`` the build's var ``as_of_date``: the model's age is ``as_of`` minus the
    ``as_of_date`` of ``previous`` (unknown on either side: too old, retrain)."""
    if policy.mode == "always":
        return None
    if policy.mode == "never":
        frozen = (
            f"the registered model of run {previous.get('run_id')} (version "
            f"{previous.get('model_version')}) stays in use"
            if previous is not None
            else "no earlier training: nothing is registered for scoring to use"
        )
        return f"retrain_mode never: models are frozen; {frozen}"
    if previous is None:
        return None
    if previous.get("training_config_fingerprint") != config_fingerprint:
        return None
    age_days = _days_between(previous.get("as_of_date"), as_of)
    if age_days is None or age_days > policy.max_age_days:
        return None
    since = f"since run {previous.get('run_id')} (version {previous.get('model_version')})"
    if previous.get("training_data_fingerprint") == data_fingerprint:
        return f"training data unchanged {since}"
    change = max(
        _relative_change(n_transactions, previous.get("n_transactions")),
        _relative_change(n_customers, previous.get("n_customers")),
    )
    if change >= policy.min_data_change:
        return None
    return (
        f"training data changed by {change:.2%} {since}, {age_days:g} day(s) of data before "
        f"as_of_date {as_of}: below retrain_min_data_change "
        f"{policy.min_data_change:.0%} and within retrain_max_age_days "
        f"{policy.max_age_days:g} (--vars '{{retrain_mode: always}}' retrains)"
    )


def last_trained_run(session: Any, relation: Any) -> dict[str, Any] | None:
    """The newest ``trained`` row of a ``*_training_runs`` table (``dbt.this`` of an
    incremental run) through the model's session (DuckDB, Spark or Snowpark), or None."""
    from ml.provenance import to_pandas

    rows = to_pandas(
        session.sql(
            f"select * from {relation} where status = '{STATUS_TRAINED}' "
            "order by trained_at desc limit 1"
        )
    )
    return None if rows.empty else dict(rows.iloc[0])


def evaluation_metrics(
    y_true: Sequence[bool] | np.ndarray,
    y_pred: Sequence[bool] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
) -> dict[str, float | None]:
    """accuracy, precision, recall, f1 (from the flags) and roc_auc, average_precision (from
    the continuous score). Precision/recall/f1 are 0 when undefined; the ranking metrics are
    None when the labels hold a single class."""
    y_true = np.asarray(y_true, dtype=bool)
    y_pred = np.asarray(y_pred, dtype=bool)
    scores = np.asarray(scores, dtype="float64")
    both_classes = y_true.any() and not y_true.all()
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y_true, scores)) if both_classes else None,
        "average_precision": (
            float(average_precision_score(y_true, scores)) if both_classes else None
        ),
    }


def build_isolation_forest(params: IsolationForestParams) -> Pipeline:
    """StandardScaler + IsolationForest in one pipeline (the scaler travels with the model)."""
    return Pipeline(
        [
            ("scaler", StandardScaler()),
            (
                "model",
                IsolationForest(
                    n_estimators=params.n_estimators,
                    contamination=params.contamination,
                    max_samples=params.max_samples,
                    random_state=params.random_state,
                ),
            ),
        ]
    )


def build_random_forest(params: RandomForestParams) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=params.n_estimators,
        max_depth=params.max_depth,
        min_samples_split=params.min_samples_split,
        min_samples_leaf=params.min_samples_leaf,
        class_weight=params.class_weight,
        random_state=params.random_state,
        oob_score=params.decision_threshold is None,
    )


def smote_resample(
    X: np.ndarray, y: np.ndarray, k_neighbors: int, random_state: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """SMOTE oversampling of the minority class; returns (X, y, k used). ``k_neighbors`` is
    capped at (minority count - 1) so small label sets still work; with fewer than 2 minority
    rows the data is returned unchanged (k = 0)."""
    from imblearn.over_sampling import SMOTE

    n_minority = int(min(np.sum(y), np.sum(~y.astype(bool))))
    k = min(k_neighbors, n_minority - 1)
    if k < 1:
        return X, y, 0
    X_res, y_res = SMOTE(k_neighbors=k, random_state=random_state).fit_resample(X, y)
    return np.asarray(X_res), np.asarray(y_res), k


@phase
def fit_random_forest(
    X_train: pd.DataFrame, y_train: np.ndarray, params: RandomForestParams
) -> tuple[Pipeline, dict[str, float]]:
    """Scaler fitted on the real training rows, SMOTE in the scaled space on the training part
    only, RandomForest on the resampled rows; returned as one scaler+RF pipeline."""
    scaler = StandardScaler().fit(X_train)
    X_scaled = scaler.transform(X_train)
    X_res, y_res, k = smote_resample(
        X_scaled, np.asarray(y_train, dtype=int), params.smote_k_neighbors, params.random_state
    )
    forest = build_random_forest(params).set_params(n_jobs=params.n_jobs).fit(X_res, y_res)
    forest.set_params(n_jobs=None)
    info: dict[str, float] = {"n_train_resampled": len(y_res), "smote_k_neighbors_used": k}
    if params.decision_threshold is None:
        # SMOTE puts the real rows first; their out-of-bag probabilities come from trees that
        # never saw them (synthetic neighbours may have been seen: slightly optimistic).
        oob = forest.oob_decision_function_[: len(X_scaled), 1]
        info["decision_threshold"] = best_f1_threshold(np.asarray(y_train, dtype=int), oob)
    return Pipeline([("scaler", scaler), ("model", forest)]), info


def best_f1_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The probability threshold (grid 0.05..0.95) with the best F1 on (y_true, scores); ties go
    to the higher threshold (fewer false alarms). 0.5 when there is no positive label."""
    if y_true.sum() == 0:
        return 0.5
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2)
    best, best_f1 = 0.5, -1.0
    for threshold in grid:
        predicted = scores >= threshold
        true_positives = float(np.sum(predicted & (y_true == 1)))
        f1 = 2 * true_positives / (predicted.sum() + y_true.sum())
        if f1 >= best_f1:
            best, best_f1 = float(threshold), f1
    return best


@phase
def reference_frame(X: pd.DataFrame, anomaly_score: np.ndarray) -> pd.DataFrame:
    """The drift reference: the 16 features + ``anomaly_score`` (no identifiers).

    ``anomaly_score`` is exactly what ``gold.fraud_scores.anomaly_score`` would hold for these
    rows with this model version (``ml.scoring.score_function``). Both models use every
    customer of the training snapshot (the RandomForest's train and test parts alike), so
    scoring the unchanged snapshot shows no drift against its reference."""
    out = X[list(FEATURE_COLUMNS)].reset_index(drop=True).astype("float64")
    out["anomaly_score"] = np.asarray(anomaly_score, dtype="float64")
    return out


def training_run_row(**values: Any) -> pd.DataFrame:
    """One row with the fixed ``TRAINING_RUN_SCHEMA`` (missing values null)."""
    row = {name: [values.get(name)] for name in TRAINING_RUN_SCHEMA}
    frame = pd.DataFrame(row)
    for name, dtype in TRAINING_RUN_SCHEMA.items():
        if dtype == "float64":
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        else:
            frame[name] = frame[name].astype(dtype)
    return frame


def in_id_order(features: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by customer_id: the warehouse returns them in no guaranteed order, and the
    forests' subsampling and the train/test split depend on row positions. Sorted, the same
    data (same fingerprint) and the same random_state give the same model."""
    return features.sort_values(ID_COLUMN, kind="stable").reset_index(drop=True)
