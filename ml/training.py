"""Training of the fraud models, called by the dbt Python models in ``models/ml/``.

Two layers:

* pure functions (no MLflow, no warehouse): parameter parsing, label join, pipelines,
  metrics, the label-threshold rule, plots, the drift reference frame;
* one orchestration function per model (``train_isolation_forest``,
  ``train_random_forest``) that fits, evaluates, logs everything to MLflow, registers the
  model and returns the one-row frame the dbt model materialises.

Metric keys (MLflow and the ``*_training_runs`` tables): ``accuracy``, ``precision``,
``recall``, ``f1``, ``roc_auc``, ``average_precision`` (fraud = positive class; a customer is
fraudulent when any of its transactions is), plus ``n_anomalies_detected`` and
``anomaly_rate`` (customers flagged / share flagged on the evaluation set).

Where the metrics come from (``evaluation_set``):

* IsolationForest is unsupervised: it is fitted without labels on every customer and
  evaluated against the labels on those same customers (``all_customers_unsupervised``).
* RandomForest is evaluated on a stratified held-out test split that neither SMOTE nor the
  scaler ever saw (``holdout_test_split``).

Run artifacts (paths relative to the run's artifact root; constants in ``ml.registry``):
``classification_report.txt``, ``scaler/scaler.skops``, ``reference/training_features.parquet``,
``plots/*.png``, ``feature_importance.csv``, ``top_anomalies.csv`` (IsolationForest); the
pipeline itself is the logged model ``model``, registered under ``ml.registry`` names.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest, RandomForestClassifier
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml import registry
from ml.features import FEATURE_COLUMNS, ID_COLUMN, feature_matrix, training_data_fingerprint
from ml.scoring import ablation_contributions, score_function

logger = logging.getLogger(__name__)

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
}


# ---------------------------------------------------------------------------------------------
# Parameters and context
# ---------------------------------------------------------------------------------------------


def _coerce(value: Any, default: Any) -> Any:
    """Cast a dbt var (often rendered as text) to the type of the default."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in {"", "none", "null"}:
            return default
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _from_mapping(cls: Any, values: Mapping[str, Any] | None, prefix: str = "") -> Any:
    """Build a params dataclass from ``{prefix + field: value}``; None / missing = default."""
    values = values or {}
    kwargs = {}
    for f in fields(cls):
        key = prefix + f.name
        if key in values and values[key] is not None:
            kwargs[f.name] = _coerce(values[key], f.default)
    return cls(**kwargs)


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
        return _from_mapping(cls, values, "if_")


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
        return _from_mapping(cls, values, "rf_")


RETRAIN_MODES = ("auto", "always")


@dataclass(frozen=True)
class RetrainPolicy:
    """When a build retrains a model (dbt vars ``retrain_<name>``).

    ``mode='always'`` trains at every build. ``'auto'`` (default) trains when there is no
    earlier training, when the model's parameters or feature list changed, when the last
    training is older than ``max_age_days``, or when the training data moved by at least
    ``min_data_change`` (relative change in transactions or customers behind the features);
    otherwise the build records a ``skipped`` row with the reason and scoring keeps using the
    registered model. Identical data never retrains (the fit would be identical too)."""

    mode: str = "auto"
    min_data_change: float = 0.05
    max_age_days: float = 7.0

    def __post_init__(self) -> None:
        if self.mode not in RETRAIN_MODES:
            raise ValueError(f"retrain_mode must be one of {RETRAIN_MODES}, got {self.mode!r}")
        if self.min_data_change < 0 or self.max_age_days < 0:
            raise ValueError("retrain_min_data_change and retrain_max_age_days must be >= 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> RetrainPolicy:
        return _from_mapping(cls, values, "retrain_")


@dataclass(frozen=True)
class TrainingContext:
    """Where a training run comes from and goes to."""

    dbt_invocation_id: str = "manual"
    dbt_target: str = "local"
    input_relations: tuple[str, ...] = ()
    tracking_uri: str | None = None
    registry_uri: str | None = None
    experiment_name: str = registry.EXPERIMENT_NAME
    git_commit: str = field(default_factory=registry.git_commit)


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------


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


def retraining_decision(
    previous: Mapping[str, Any] | None,
    *,
    data_fingerprint: str,
    config_fingerprint: str,
    n_transactions: int,
    n_customers: int,
    now: datetime,
    policy: RetrainPolicy,
) -> str | None:
    """The retrain rule of :class:`RetrainPolicy`: None = train; otherwise the skip reason.
    ``previous`` is the last ``trained`` row of the model's ``*_training_runs`` table."""
    if policy.mode == "always" or previous is None:
        return None
    if previous.get("training_config_fingerprint") != config_fingerprint:
        return None
    trained_at = pd.Timestamp(previous["trained_at"]).to_pydatetime().replace(tzinfo=None)
    age_days = (now.replace(tzinfo=None) - trained_at).total_seconds() / 86_400
    if age_days > policy.max_age_days:
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
        f"training data changed by {change:.2%} {since}, {age_days:.2f} day(s) ago: below "
        f"retrain_min_data_change {policy.min_data_change:.0%} and within retrain_max_age_days "
        f"{policy.max_age_days:g} (--vars '{{retrain_mode: always}}' retrains)"
    )


def last_trained_run(session: Any, relation: Any) -> dict[str, Any] | None:
    """The newest ``trained`` row of a ``*_training_runs`` table (``dbt.this`` of an
    incremental run) through the model's session (DuckDB, Spark or Snowpark), or None."""
    from ml.features import to_pandas

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


def _in_id_order(features: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by customer_id: the warehouse returns them in no guaranteed order, and the
    forests' subsampling and the train/test split depend on row positions. Sorted, the same
    data (same fingerprint) and the same random_state give the same model."""
    return features.sort_values(ID_COLUMN, kind="stable").reset_index(drop=True)


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib object API only: no pyplot global state, safe in dbt's threads)
# ---------------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig: Any, path: Path) -> None:
    # bbox "tight" instead of a constrained layout: same result here, several times faster
    fig.savefig(path, bbox_inches="tight")


def plot_correlations(X: pd.DataFrame, path: Path) -> None:
    corr = X.corr().fillna(0.0)
    fig = _figure(10, 8.5)
    ax = fig.add_subplot()
    image = ax.imshow(corr.to_numpy(), cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), corr.columns, rotation=90, fontsize=8)
    ax.set_yticks(range(len(corr)), corr.columns, fontsize=8)
    ax.set_title("Feature correlations (Pearson)")
    fig.colorbar(image, ax=ax, shrink=0.8)
    _save(fig, path)


def plot_score_distribution(
    scores: np.ndarray, labels: np.ndarray, threshold: float, path: Path, title: str
) -> None:
    fig = _figure(9, 5)
    ax = fig.add_subplot()
    bins = np.linspace(float(np.min(scores)), float(np.max(scores)), 60)
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label="not fraudulent", log=True)
    ax.hist(scores[labels], bins=bins, alpha=0.6, label="fraudulent", log=True)
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("score (higher = more anomalous)")
    ax.set_ylabel("customers (log scale)")
    ax.set_title(title)
    ax.legend(loc="upper right")
    _save(fig, path)


def plot_feature_importance(importance: pd.DataFrame, path: Path, title: str) -> None:
    """Horizontal bars, one panel per importance column."""
    fig = _figure(6 * importance.shape[1], 6)
    for i, column in enumerate(importance.columns, start=1):
        ax = fig.add_subplot(1, importance.shape[1], i)
        ordered = importance[column].sort_values()
        ax.barh(ordered.index, ordered.to_numpy())
        ax.set_title(column, fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(title)
    _save(fig, path)


def plot_group_comparison(X: pd.DataFrame, flagged: np.ndarray, path: Path) -> None:
    """Mean of each standardised feature for flagged vs not-flagged customers."""
    std = X.std(ddof=0).replace(0, 1.0)
    z = (X - X.mean()) / std
    comparison = pd.DataFrame(
        {"anomalous": z[flagged].mean(), "normal": z[~flagged].mean()}
    ).fillna(0.0)
    fig = _figure(9, 7)
    ax = fig.add_subplot()
    positions = np.arange(len(comparison))
    ax.barh(positions - 0.2, comparison["anomalous"], height=0.4, label="anomalous")
    ax.barh(positions + 0.2, comparison["normal"], height=0.4, label="normal")
    ax.set_yticks(positions, comparison.index, fontsize=8)
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_xlabel("mean z-score (standard deviations from the population mean)")
    ax.set_title("Anomalous vs normal customers: feature means")
    ax.legend(loc="lower right")
    _save(fig, path)


def plot_confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, path: Path, title: str) -> None:
    matrix = confusion_matrix(y_true, y_pred, labels=[False, True])
    fig = _figure(5, 4.5)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, f"{count:,}", ha="center", va="center", color=colour)
    ax.set_xticks([0, 1], ["predicted normal", "predicted fraud"])
    ax.set_yticks([0, 1], ["not fraudulent", "fraudulent"])
    ax.set_title(title)
    _save(fig, path)


def plot_precision_recall(y_true: np.ndarray, scores: np.ndarray, path: Path) -> None:
    precision, recall, _ = precision_recall_curve(y_true, scores)
    fig = _figure(6, 5)
    ax = fig.add_subplot()
    ax.plot(recall, precision)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curve (test split)")
    _save(fig, path)


# ---------------------------------------------------------------------------------------------
# MLflow publishing
# ---------------------------------------------------------------------------------------------


def _finite_metrics(metrics: Mapping[str, float | int | None]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if v is not None and not (isinstance(v, float) and math.isnan(v))
    }


def _publish(
    *,
    model_name: str,
    pipeline: Pipeline,
    X: pd.DataFrame,
    params: Mapping[str, Any],
    metrics: Mapping[str, float | int | None],
    tags: Mapping[str, str],
    artifacts_dir: Path,
    context: TrainingContext,
) -> tuple[str, int]:
    """Log one run (params, metrics, tags, every file under ``artifacts_dir`` keeping its
    relative path, the pipeline as model ``model``) and register it. Returns (run id,
    version)."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    sample = X.head(5)
    signature = infer_signature(sample, pipeline.predict(sample))
    with registry.MLFLOW_WRITE_LOCK:
        settings = registry.configure(context.tracking_uri, context.registry_uri)
        experiment_id = registry.ensure_experiment(settings, context.experiment_name)
        with mlflow.start_run(experiment_id=experiment_id, run_name=model_name) as run:
            mlflow.set_tags(dict(tags))
            mlflow.log_params({k: str(v) for k, v in params.items()})
            mlflow.log_metrics(_finite_metrics(metrics))
            mlflow.log_artifacts(str(artifacts_dir))
            logged = mlflow.sklearn.log_model(
                pipeline,
                name=registry.MODEL_ARTIFACT_NAME,
                serialization_format="skops",
                skops_trusted_types=list(registry.SKOPS_TRUSTED_TYPES),
                signature=signature,
                input_example=sample,
                registered_model_name=model_name,
                # explicit: MLflow's inference imports the model in a subprocess (~20 s)
                pip_requirements=model_pip_requirements(),
            )
            version = logged.registered_model_version
            client = mlflow.MlflowClient()
            for key in ("training_data_fingerprint", "dbt_invocation_id", "git_commit"):
                client.set_model_version_tag(model_name, str(version), key, tags[key])
            client.update_model_version(
                model_name,
                str(version),
                description=(
                    f"{tags['model_type']} trained by dbt invocation "
                    f"{tags['dbt_invocation_id']} (target {tags['dbt_target']}) on "
                    f"{tags['input_relations']}; run {run.info.run_id}"
                ),
            )
    return run.info.run_id, int(version)


def model_pip_requirements() -> list[str]:
    """Pinned runtime requirements of the logged pipelines (installed versions)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("scikit-learn", "skops", "numpy", "scipy", "pandas"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def _run_tags(context: TrainingContext, fingerprint: str, model_type: str) -> dict[str, str]:
    return {
        "git_commit": context.git_commit,
        "dbt_invocation_id": context.dbt_invocation_id,
        "dbt_target": context.dbt_target,
        "input_relations": ",".join(context.input_relations),
        "training_data_fingerprint": fingerprint,
        "model_type": model_type,
    }


def _write_common_artifacts(
    out: Path,
    pipeline: Pipeline,
    report_text: str,
    reference: pd.DataFrame,
) -> None:
    import skops.io

    (out / "scaler").mkdir(parents=True, exist_ok=True)
    skops.io.dump(pipeline.named_steps["scaler"], out / registry.SCALER_ARTIFACT_PATH)
    (out / registry.CLASSIFICATION_REPORT_ARTIFACT).write_text(report_text)
    (out / "reference").mkdir(parents=True, exist_ok=True)
    reference.to_parquet(out / registry.REFERENCE_ARTIFACT_PATH, index=False)
    (out / "plots").mkdir(parents=True, exist_ok=True)


def _report(y_true: np.ndarray, y_pred: np.ndarray, header: str) -> str:
    body = classification_report(
        y_true,
        y_pred,
        labels=[False, True],
        target_names=["not_fraudulent", "fraudulent"],
        digits=4,
        zero_division=0,
    )
    matrix = confusion_matrix(y_true, y_pred, labels=[False, True])
    return (
        f"{header}\n\n{body}\nconfusion matrix (rows: actual not_fraudulent, fraudulent; "
        f"columns: predicted)\n{matrix}\n"
    )


# ---------------------------------------------------------------------------------------------
# Orchestration: IsolationForest
# ---------------------------------------------------------------------------------------------


def _run_identity(
    model_name: str,
    features: pd.DataFrame,
    y: np.ndarray,
    fingerprint: str,
    params: Any,
    context: TrainingContext,
) -> dict[str, Any]:
    """The columns every ``*_training_runs`` row carries, trained or skipped."""
    return {
        "model_name": model_name,
        "n_customers": len(features),
        "n_fraud_customers": int(y.sum()),
        "n_transactions": int(features["total_transactions"].sum()),
        "dbt_invocation_id": context.dbt_invocation_id,
        "training_data_fingerprint": fingerprint,
        "training_config_fingerprint": training_config_fingerprint(params),
        "git_commit": context.git_commit,
        "mlflow_tracking_uri": registry.resolve_settings(context.tracking_uri).tracking_uri,
    }


def _retrain_skip(
    identity: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    policy: RetrainPolicy | None,
) -> pd.DataFrame | None:
    """The ``skipped`` row when the retrain policy says the registered model is still current."""
    now = _utc_now()
    reason = retraining_decision(
        previous,
        data_fingerprint=identity["training_data_fingerprint"],
        config_fingerprint=identity["training_config_fingerprint"],
        n_transactions=identity["n_transactions"],
        n_customers=identity["n_customers"],
        now=now,
        policy=policy or RetrainPolicy(),
    )
    if reason is None:
        return None
    logger.info("%s not retrained: %s", identity["model_name"], reason)
    return training_run_row(status=STATUS_SKIPPED, skip_reason=reason, trained_at=now, **identity)


def train_isolation_forest(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    params: IsolationForestParams | None = None,
    context: TrainingContext | None = None,
    previous: Mapping[str, Any] | None = None,
    policy: RetrainPolicy | None = None,
) -> pd.DataFrame:
    """Fit scaler+IsolationForest on every customer, evaluate against the fraud labels, log
    params / metrics / plots / artifacts / drift reference to MLflow, register the model as
    ``registry.ISOLATION_FOREST_MODEL``; return the one-row ``TRAINING_RUN_SCHEMA`` frame.
    With ``previous`` (the last trained row) the :class:`RetrainPolicy` may skip the fit."""
    params = params or IsolationForestParams()
    context = context or TrainingContext()
    started = time.perf_counter()
    features = _in_id_order(features)
    X = feature_matrix(features)
    if len(X) < 2:
        raise ValueError(
            f"gold.transaction_features has {len(X)} row(s): nothing to train the isolation "
            "forest on"
        )
    y = join_labels(features, labels).to_numpy()
    fingerprint = training_data_fingerprint(features)
    identity = _run_identity(
        registry.ISOLATION_FOREST_MODEL, features, y, fingerprint, params, context
    )
    skipped = _retrain_skip(identity, previous, policy)
    if skipped is not None:
        return skipped

    fit_started = time.perf_counter()
    pipeline = build_isolation_forest(params).fit(X)
    fit_seconds = time.perf_counter() - fit_started
    score_fn = score_function(pipeline)
    scores = score_fn(X)
    threshold = float(-pipeline.named_steps["model"].offset_)
    flagged = pipeline.predict(X) == -1
    metrics: dict[str, float | int | None] = {
        **evaluation_metrics(y, flagged, scores),
        "n_anomalies_detected": int(flagged.sum()),
        "anomaly_rate": float(flagged.mean()) if len(flagged) else 0.0,
        "n_customers": len(X),
        "n_fraud_customers": int(y.sum()),
        "decision_threshold": threshold,
        "fit_seconds": fit_seconds,
    }

    # Importance: mean |ablation effect| on the anomaly score (the same per-feature
    # "replace by the median and rescore" effect the reason codes use, so the global picture
    # and the per-customer reasons agree; an unsupervised model has no label-based importance).
    sample = X
    if 0 < params.importance_sample_size < len(X):
        sample = X.sample(params.importance_sample_size, random_state=params.random_state)
    effects = ablation_contributions(score_fn, sample, reference=X.median())
    importance = pd.DataFrame(
        {
            "mean_abs_ablation_effect": effects.abs().mean(),
            "mean_ablation_effect": effects.mean(),
        }
    ).sort_values("mean_abs_ablation_effect", ascending=False)

    with tempfile.TemporaryDirectory(prefix="fraud_if_") as tmp:
        out = Path(tmp)
        report = _report(
            y,
            flagged,
            "IsolationForest, evaluated on all training customers (unsupervised: labels were "
            f"not used for fitting). threshold anomaly_score > {threshold:.6f}",
        )
        _write_common_artifacts(out, pipeline, report, reference_frame(X, scores))
        plot_correlations(X, out / "plots" / "feature_correlations.png")
        plot_score_distribution(
            scores,
            y,
            threshold,
            out / "plots" / "anomaly_score_distribution.png",
            "IsolationForest anomaly score (-score_samples)",
        )
        plot_feature_importance(
            importance[["mean_abs_ablation_effect"]],
            out / "plots" / "feature_importance.png",
            "Mean |ablation effect| on the anomaly score",
        )
        plot_group_comparison(X, flagged, out / "plots" / "anomalous_vs_normal_features.png")
        plot_confusion_matrix(
            y, flagged, out / "plots" / "confusion_matrix.png", "IsolationForest vs fraud labels"
        )
        importance.rename_axis("feature").to_csv(out / "feature_importance.csv")
        top = features[[ID_COLUMN]].copy()
        top["anomaly_score"] = scores
        top["is_anomaly"] = flagged
        top[LABEL_COLUMN] = y
        top = pd.concat([top, X], axis=1).nlargest(100, "anomaly_score")
        top.to_csv(out / registry.TOP_ANOMALIES_ARTIFACT, index=False)

        run_params = {
            **asdict(params),
            "model_type": "isolation_forest",
            "features": ",".join(FEATURE_COLUMNS),
            "evaluation_set": "all_customers_unsupervised",
        }
        run_id, version = _publish(
            model_name=registry.ISOLATION_FOREST_MODEL,
            pipeline=pipeline,
            X=X,
            params=run_params,
            metrics=metrics,
            tags=_run_tags(context, fingerprint, "isolation_forest"),
            artifacts_dir=out,
            context=context,
        )

    logger.info(
        "IsolationForest: %d customers, %d flagged, registered %s version %s (run %s)",
        len(X),
        int(flagged.sum()),
        registry.ISOLATION_FOREST_MODEL,
        version,
        run_id,
    )
    return training_run_row(
        run_id=run_id,
        model_version=version,
        status=STATUS_TRAINED,
        trained_at=_utc_now(),
        n_train=len(X),
        n_test=len(X),
        evaluation_set="all_customers_unsupervised",
        fit_seconds=fit_seconds,
        training_seconds=time.perf_counter() - started,
        **identity,
        **{k: metrics[k] for k in (*EVALUATION_METRICS, "n_anomalies_detected", "anomaly_rate")},
    )


# ---------------------------------------------------------------------------------------------
# Orchestration: RandomForest
# ---------------------------------------------------------------------------------------------


def train_random_forest(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    params: RandomForestParams | None = None,
    context: TrainingContext | None = None,
    previous: Mapping[str, Any] | None = None,
    policy: RetrainPolicy | None = None,
) -> pd.DataFrame:
    """Supervised model, trained only with enough labels (``rf_training_decision``): stratified
    split, SMOTE on the training part, scaler+RF pipeline, metrics on the untouched test part,
    logged and registered as ``registry.RANDOM_FOREST_MODEL``. Too few fraudulent customers, or
    a :class:`RetrainPolicy` that keeps the model of ``previous`` (the last trained row):
    nothing is logged and the row says ``status='skipped'`` with the reason."""
    params = params or RandomForestParams()
    context = context or TrainingContext()
    started = time.perf_counter()
    features = _in_id_order(features)
    X = feature_matrix(features)
    y = join_labels(features, labels).to_numpy()
    fingerprint = training_data_fingerprint(features)
    n_fraud = int(y.sum())
    common = _run_identity(registry.RANDOM_FOREST_MODEL, features, y, fingerprint, params, context)
    skip_reason = rf_training_decision(n_fraud, params.min_fraud_customers)
    if skip_reason is None and len(X) - n_fraud < 2:
        skip_reason = "fewer than 2 non-fraudulent customers: nothing to contrast"
    if skip_reason is not None:
        logger.warning("RandomForest skipped: %s", skip_reason)
        return training_run_row(
            status=STATUS_SKIPPED, skip_reason=skip_reason, trained_at=_utc_now(), **common
        )
    skipped = _retrain_skip(common, previous, policy)
    if skipped is not None:
        return skipped

    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=params.test_size, stratify=y, random_state=params.split_random_state
    )
    fit_started = time.perf_counter()
    pipeline, resample_info = fit_random_forest(X_train, y_train, params)
    fit_seconds = time.perf_counter() - fit_started
    threshold_selection = "fixed"
    if params.decision_threshold is None:
        threshold_selection = "max_f1_out_of_bag_training_rows"
        params = replace(params, decision_threshold=resample_info.pop("decision_threshold"))
    assert params.decision_threshold is not None
    score_fn = score_function(pipeline)
    test_scores = score_fn(X_test)
    test_pred = test_scores >= params.decision_threshold
    metrics: dict[str, float | int | None] = {
        **evaluation_metrics(y_test, test_pred, test_scores),
        "n_anomalies_detected": int(test_pred.sum()),
        "anomaly_rate": float(test_pred.mean()),
        "n_customers": len(X),
        "n_fraud_customers": n_fraud,
        "n_train": len(X_train),
        "n_test": len(X_test),
        "n_fraud_test": int(y_test.sum()),
        "fit_seconds": fit_seconds,
        **resample_info,
    }

    from sklearn.inspection import permutation_importance

    forest = pipeline.named_steps["model"]
    permutation = permutation_importance(
        pipeline,
        X_test,
        y_test,
        scoring="average_precision",
        n_repeats=5,
        random_state=params.random_state,
    )
    importance = pd.DataFrame(
        {
            "permutation_importance_average_precision": permutation.importances_mean,
            "impurity_importance": forest.feature_importances_,
        },
        index=list(FEATURE_COLUMNS),
    ).sort_values("permutation_importance_average_precision", ascending=False)

    all_scores = score_fn(X)
    with tempfile.TemporaryDirectory(prefix="fraud_rf_") as tmp:
        out = Path(tmp)
        report = _report(
            y_test,
            test_pred,
            f"RandomForest, evaluated on the held-out stratified test split ({len(X_test)} "
            f"customers, {int(y_test.sum())} fraudulent; never seen by SMOTE or the scaler). "
            f"threshold fraud_probability >= {params.decision_threshold}",
        )
        _write_common_artifacts(out, pipeline, report, reference_frame(X, all_scores))
        plot_confusion_matrix(
            y_test, test_pred, out / "plots" / "confusion_matrix.png", "RandomForest (test split)"
        )
        plot_feature_importance(
            importance,
            out / "plots" / "feature_importance.png",
            "RandomForest: permutation importance (test AP drop) and impurity importance",
        )
        plot_score_distribution(
            test_scores,
            y_test,
            params.decision_threshold,
            out / "plots" / "fraud_probability_distribution.png",
            "RandomForest fraud probability (test split)",
        )
        if 0 < y_test.sum() < len(y_test):
            plot_precision_recall(y_test, test_scores, out / "plots" / "precision_recall_curve.png")
        importance.rename_axis("feature").to_csv(out / "feature_importance.csv")

        run_params = {
            **asdict(params),
            "model_type": "random_forest",
            "features": ",".join(FEATURE_COLUMNS),
            "evaluation_set": "holdout_test_split",
            "threshold_selection": threshold_selection,
        }
        run_id, version = _publish(
            model_name=registry.RANDOM_FOREST_MODEL,
            pipeline=pipeline,
            X=X_train,
            params=run_params,
            metrics=metrics,
            tags=_run_tags(context, fingerprint, "random_forest"),
            artifacts_dir=out,
            context=context,
        )

    logger.info(
        "RandomForest: %d train / %d test customers, registered %s version %s (run %s)",
        len(X_train),
        len(X_test),
        registry.RANDOM_FOREST_MODEL,
        version,
        run_id,
    )
    return training_run_row(
        run_id=run_id,
        model_version=version,
        status=STATUS_TRAINED,
        trained_at=_utc_now(),
        n_train=len(X_train),
        n_test=len(X_test),
        evaluation_set="holdout_test_split",
        fit_seconds=fit_seconds,
        training_seconds=time.perf_counter() - started,
        **common,
        **{k: metrics[k] for k in (*EVALUATION_METRICS, "n_anomalies_detected", "anomaly_rate")},
    )


# ---------------------------------------------------------------------------------------------
# The dbt Python models' entry point
# ---------------------------------------------------------------------------------------------


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
    from ml.features import current_dbt_invocation_id, to_pandas

    params_class, train = _TRAINERS[model_type]
    context = TrainingContext(
        dbt_invocation_id=current_dbt_invocation_id(invocation_id),
        dbt_target=target_name,
        input_relations=input_relations,
        tracking_uri=settings.get("mlflow_tracking_uri"),
        registry_uri=settings.get("mlflow_registry_uri"),
    )
    previous = last_trained_run(session, dbt.this) if dbt.is_incremental else None
    return train(
        to_pandas(features_relation),
        to_pandas(labels_relation),
        params_class.from_mapping(settings),
        context,
        previous,
        RetrainPolicy.from_mapping(settings),
    )


_TRAINERS: dict[str, tuple[Any, Any]] = {
    "isolation_forest": (IsolationForestParams, train_isolation_forest),
    "random_forest": (RandomForestParams, train_random_forest),
}
