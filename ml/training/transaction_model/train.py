"""Training the transaction classifier on a time-ordered split and registering it as
``ml.transaction_model.MODEL_NAME`` (README "The transaction classifier").

``prepare`` (pure) orders the rows, splits them in time and attaches the labels known by the
cut-off and the ground truth; ``fit_and_evaluate`` (pure) fits one family, chooses the
threshold on the validation slice and measures the test window; ``train_transaction_classifier``
adds the label guard, the retrain policy (``RetrainPolicy``, shared with the customer
models), the artifacts and the MLflow run. ``compare_families`` measures every family on the
same split (README table)."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import registry
from ml import transaction_model as tm
from ml.provenance import utc_now_naive
from ml.training.customer_models.params import RetrainPolicy, TrainingContext
from ml.training.customer_models.steps import best_f1_threshold
from ml.training.transaction_model.evaluation import CardPrecision, transaction_metrics
from ml.training.transaction_model.families import fit_pipeline
from ml.training.transaction_model.params import FAMILIES, TransactionClassifierParams
from ml.training.transaction_model.split import (
    SplitError,
    TimeSplit,
    known_labels,
    time_split,
)

logger = logging.getLogger(__name__)

STATUS_TRAINED = "trained"
STATUS_SKIPPED = "skipped"
REFERENCE_SAMPLE_ROWS = 100_000
CARD_PRECISION_ARTIFACT = "card_precision_per_day.csv"

# Column order and dtypes of ml_models.transaction_classifier_training_runs.
TRAINING_RUN_SCHEMA: dict[str, str] = {
    "run_id": "string",
    "model_name": "string",
    "model_version": "Int64",
    "status": "string",
    "skip_reason": "string",
    "trained_at": "datetime64[us]",
    "family": "string",
    "n_transactions": "Int64",
    "n_customers": "Int64",
    "n_fit": "Int64",
    "n_fraud_fit": "Int64",
    "n_validation": "Int64",
    "n_test": "Int64",
    "n_fraud_test": "Int64",
    "train_start": "datetime64[us]",
    "validation_start": "datetime64[us]",
    "train_end": "datetime64[us]",
    "label_cutoff": "datetime64[us]",
    "test_end": "datetime64[us]",
    "decision_threshold": "float64",
    "precision": "float64",
    "recall": "float64",
    "f1": "float64",
    "roc_auc": "float64",
    "average_precision": "float64",
    "card_precision_at_k": "float64",
    "card_precision_k": "Int64",
    "fit_seconds": "float64",
    "training_seconds": "float64",
    "dbt_invocation_id": "string",
    "training_data_fingerprint": "string",
    "training_config_fingerprint": "string",
    "git_commit": "string",
    "mlflow_tracking_uri": "string",
    "as_of_date": "datetime64[us]",
}


def training_run_row(**values: Any) -> pd.DataFrame:
    """One row with the fixed ``TRAINING_RUN_SCHEMA`` (missing values null)."""
    frame = pd.DataFrame({name: [values.get(name)] for name in TRAINING_RUN_SCHEMA})
    for name, dtype in TRAINING_RUN_SCHEMA.items():
        if dtype == "float64":
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        elif dtype.startswith("datetime"):
            frame[name] = pd.to_datetime(frame[name]).astype(dtype)
        else:
            frame[name] = frame[name].astype(dtype)
    return frame


# ---------------------------------------------------------------------------------------------
# Pure steps
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """Rows in time order with ``window``, ``label`` (known by the cut-off) and ``is_fraud``
    (ground truth), the split and the feature matrix."""

    frame: pd.DataFrame
    X: pd.DataFrame
    split: TimeSplit

    def rows(self, window: str) -> np.ndarray:
        return (self.frame["window"] == window).to_numpy()


def prepare(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    truth: pd.DataFrame,
    params: TransactionClassifierParams,
) -> Prepared:
    """Order by (transaction_at, transaction_id) (the warehouse order is not guaranteed and
    the fit depends on row order), split in time, attach the labels known by the cut-off and
    the ground truth ``is_fraud`` (silver.transactions_cleaned; a transaction missing from it
    is an error, not a silent non-fraud)."""
    frame = features.copy()
    frame["transaction_at"] = pd.to_datetime(frame["transaction_at"])
    frame = frame.sort_values(["transaction_at", "transaction_id"], kind="stable")
    frame = frame.reset_index(drop=True)
    split = time_split(frame["transaction_at"], params)
    frame["window"] = split.windows(frame["transaction_at"]).to_numpy()
    frame["label"] = known_labels(frame["transaction_id"], labels, split.cutoff).to_numpy()
    ground = truth.drop_duplicates("transaction_id").set_index(truth["transaction_id"].astype(str))
    is_fraud = frame["transaction_id"].astype(str).map(ground["is_fraud"])
    if is_fraud.isna().any():
        missing = frame.loc[is_fraud.isna(), "transaction_id"].head(3).tolist()
        raise ValueError(
            f"{int(is_fraud.isna().sum())} feature row(s) have no is_fraud in "
            f"silver.transactions_cleaned (e.g. {missing})"
        )
    frame["is_fraud"] = is_fraud.astype(bool).to_numpy()
    return Prepared(frame, tm.feature_matrix(frame), split)


def label_guard(prepared: Prepared, params: TransactionClassifierParams) -> str | None:
    """None = enough labels to train and evaluate; otherwise the skip reason."""
    fit = prepared.frame.loc[prepared.rows("fit")]
    validation = prepared.frame.loc[prepared.rows("validation")]
    test = prepared.frame.loc[prepared.rows("test")]
    n_fraud = int(fit["label"].sum())
    if n_fraud < params.min_fraud_transactions:
        return (
            f"only {n_fraud} fraud label(s) known by the cut-off {prepared.split.cutoff} in "
            f"the fitting window; the transaction classifier needs at least "
            f"{params.min_fraud_transactions} (var tc_min_fraud_transactions)"
        )
    if fit["label"].all():
        return "every transaction of the fitting window is labelled fraud: nothing to contrast"
    if params.decision_threshold is None and not validation["label"].any():
        return (
            "no fraud label known in the validation slice: the decision threshold cannot be "
            "chosen (var tc_validation_days, or pin tc_decision_threshold)"
        )
    if not test["is_fraud"].any() or test["is_fraud"].all():
        return "the test window holds a single class: its metrics are undefined"
    return None


@dataclass(frozen=True)
class Evaluation:
    """A fitted pipeline, its threshold and its metrics (test window; validation prefixed)."""

    pipeline: Any
    threshold: float
    threshold_selection: str
    metrics: dict[str, float | None]
    cards: CardPrecision
    test_scores: np.ndarray
    fit_seconds: float


def choose_threshold(
    y_validation: np.ndarray, scores: np.ndarray, pinned: float | None
) -> tuple[float, str]:
    """The pinned threshold, else the best-F1 one on the validation slice (never the test
    window: the caller passes validation rows only)."""
    if pinned is not None:
        return float(pinned), "fixed"
    return best_f1_threshold(np.asarray(y_validation, dtype=int), scores), "max_f1_validation"


def fit_and_evaluate(prepared: Prepared, params: TransactionClassifierParams, k: int) -> Evaluation:
    """Fit on the fitting window (labels known by the cut-off), threshold on the validation
    slice, every metric on the test window against the ground truth."""
    frame, X = prepared.frame, prepared.X
    fit, validation, test = (prepared.rows(w) for w in ("fit", "validation", "test"))
    started = time.perf_counter()
    pipeline = fit_pipeline(params, X.loc[fit], frame.loc[fit, "label"].to_numpy())
    fit_seconds = time.perf_counter() - started
    validation_scores = tm.fraud_probability(pipeline, X.loc[validation])
    threshold, selection = choose_threshold(
        frame.loc[validation, "label"].to_numpy(), validation_scores, params.decision_threshold
    )
    test_scores = tm.fraud_probability(pipeline, X.loc[test])
    metrics, cards = transaction_metrics(frame.loc[test], test_scores, threshold, k)
    validation_frame = frame.loc[validation].assign(is_fraud=frame.loc[validation, "label"])
    validation_metrics, _ = transaction_metrics(validation_frame, validation_scores, threshold, k)
    for key in ("precision", "recall", "f1", "average_precision", "card_precision_at_k"):
        metrics[f"validation_{key}"] = validation_metrics[key]
    metrics.update(
        n_fit=int(fit.sum()),
        n_fraud_fit=int(frame.loc[fit, "label"].sum()),
        n_validation=int(validation.sum()),
        n_test=int(test.sum()),
        n_fraud_test=int(frame.loc[test, "is_fraud"].sum()),
        n_flagged_test=int((test_scores >= threshold).sum()),
        fit_seconds=fit_seconds,
    )
    return Evaluation(pipeline, threshold, selection, metrics, cards, test_scores, fit_seconds)


def compare_families(
    prepared: Prepared,
    params: TransactionClassifierParams,
    k: int,
    families: tuple[str, ...] = FAMILIES,
) -> pd.DataFrame:
    """Every family on the same split, one row each: test metrics, fit seconds and the
    seconds to score the test window."""
    rows = []
    test = prepared.X.loc[prepared.rows("test")]
    for family in families:
        evaluation = fit_and_evaluate(prepared, replace(params, family=family), k)
        started = time.perf_counter()
        tm.fraud_probability(evaluation.pipeline, test)
        score_seconds = time.perf_counter() - started
        m = evaluation.metrics
        rows.append(
            {
                "family": family,
                **{
                    key: m[key]
                    for key in (
                        "decision_threshold",
                        "precision",
                        "recall",
                        "f1",
                        "roc_auc",
                        "average_precision",
                        "card_precision_at_k",
                    )
                },
                "fit_seconds": evaluation.fit_seconds,
                "test_rows_per_second": len(test) / max(score_seconds, 1e-9),
            }
        )
    return pd.DataFrame(rows)


def data_fingerprint(prepared: Prepared) -> str:
    """sha256 over the feature rows, the known labels and the ground truth in time order."""
    frame = prepared.frame
    columns = ["transaction_id", *tm.FEATURE_COLUMNS, "label", "is_fraud"]
    hashed = pd.util.hash_pandas_object(frame[columns].astype(str), index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def config_fingerprint(params: TransactionClassifierParams, k: int) -> str:
    payload = json.dumps(
        {"params": asdict(params), "features": list(tm.FEATURE_COLUMNS), "k": k},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def reference_frame(prepared: Prepared, scores: np.ndarray) -> pd.DataFrame:
    """The drift reference: features of the fitting window (categoricals as text) and the
    model's ``fraud_probability`` (also as ``anomaly_score``, the seed monitoring's name),
    at most ``REFERENCE_SAMPLE_ROWS`` rows (a seeded sample)."""
    rows = np.flatnonzero(prepared.rows("fit"))
    if len(rows) > REFERENCE_SAMPLE_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(rows, REFERENCE_SAMPLE_ROWS, replace=False))
    out = prepared.X.iloc[rows].reset_index(drop=True).copy()
    for column in tm.CATEGORICAL_COLUMNS:
        out[column] = out[column].astype("string")
    out["fraud_probability"] = np.asarray(scores, dtype="float64")[rows]
    out["anomaly_score"] = out["fraud_probability"]
    return out


# ---------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------


def train_transaction_classifier(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    truth: pd.DataFrame,
    params: TransactionClassifierParams | None = None,
    k: int = 100,
    context: TrainingContext | None = None,
    previous: Mapping[str, Any] | None = None,
    policy: RetrainPolicy | None = None,
) -> pd.DataFrame:
    """One row of ml_models.transaction_classifier_training_runs: ``trained`` (logged to
    MLflow, registered as ``tm.MODEL_NAME``) or ``skipped`` with the reason (a span too short
    for the windows, too few labels known by the cut-off, or the retrain policy keeping the
    model of ``previous``)."""
    from ml.training.customer_models.publish import retrain_skip_row

    params = params or TransactionClassifierParams()
    context = context or TrainingContext()
    started = time.perf_counter()
    identity: dict[str, Any] = {
        "model_name": tm.MODEL_NAME,
        "family": params.family,
        "n_transactions": len(features),
        "n_customers": int(features["customer_id"].nunique()) if len(features) else 0,
        "card_precision_k": k,
        "dbt_invocation_id": context.dbt_invocation_id,
        "training_config_fingerprint": config_fingerprint(params, k),
        "git_commit": context.git_commit,
        "mlflow_tracking_uri": registry.resolve_settings(context.tracking_uri).tracking_uri,
        "as_of_date": context.as_of_date,
    }
    try:
        prepared = prepare(features, labels, truth, params)
    except SplitError as exc:
        return _skipped(identity, str(exc))
    identity["training_data_fingerprint"] = data_fingerprint(prepared)
    window_columns = {
        "train_start": prepared.split.train_start,
        "validation_start": prepared.split.validation_start,
        "train_end": prepared.split.train_end,
        "label_cutoff": prepared.split.cutoff,
        "test_end": prepared.split.end,
    }
    reason = label_guard(prepared, params)
    if reason is not None:
        return _skipped({**identity, **window_columns}, reason)
    skipped = retrain_skip_row(identity, previous, policy)
    if skipped is not None:
        row = skipped.iloc[0].to_dict()
        return training_run_row(**{**identity, **window_columns, **row})

    evaluation = fit_and_evaluate(prepared, params, k)
    all_scores = tm.fraud_probability(evaluation.pipeline, prepared.X)
    with tempfile.TemporaryDirectory(prefix="fraud_tc_") as tmp:
        out = Path(tmp)
        write_artifacts(out, prepared, evaluation, all_scores)
        run_params = {
            **asdict(params),
            "model_type": tm.SHORT_NAME,
            "features": ",".join(tm.FEATURE_COLUMNS),
            "categorical_features": ",".join(tm.CATEGORICAL_COLUMNS),
            "evaluation_set": "time_split_test_window",
            "threshold_selection": evaluation.threshold_selection,
            tm.THRESHOLD_KEY: evaluation.threshold,
            "card_precision_k": k,
            **prepared.split.as_params(),
        }
        run_id, version = _publish(prepared, evaluation, run_params, identity, context, out)
    logger.info(
        "transaction classifier (%s): fit %d / test %d rows, registered %s version %s",
        params.family,
        evaluation.metrics["n_fit"],
        evaluation.metrics["n_test"],
        tm.MODEL_NAME,
        version,
    )
    values = {
        **{key: value for key, value in evaluation.metrics.items() if key in TRAINING_RUN_SCHEMA},
        **identity,
        **window_columns,
        "run_id": run_id,
        "model_version": version,
        "status": STATUS_TRAINED,
        "trained_at": utc_now_naive(),
        "training_seconds": time.perf_counter() - started,
    }
    return training_run_row(**values)


def _skipped(identity: Mapping[str, Any], reason: str) -> pd.DataFrame:
    logger.warning("transaction classifier skipped: %s", reason)
    return training_run_row(
        **identity, status=STATUS_SKIPPED, skip_reason=reason, trained_at=utc_now_naive()
    )


def write_artifacts(
    out: Path, prepared: Prepared, evaluation: Evaluation, all_scores: np.ndarray
) -> None:
    """classification_report.txt, the preprocessing step (scaler/scaler.skops, the name the
    gates require), the drift reference, card precision per day, feature importance, plots."""
    import skops.io

    from ml.training.customer_models.plots import (
        plot_confusion_matrix,
        plot_feature_importance,
        plot_precision_recall,
        plot_score_distribution,
    )
    from ml.training.customer_models.publish import classification_report_text

    test = prepared.rows("test")
    y_test = prepared.frame.loc[test, "is_fraud"].to_numpy(dtype=bool)
    flagged = evaluation.test_scores >= evaluation.threshold
    split = prepared.split
    report = classification_report_text(
        y_test,
        flagged,
        f"Transaction classifier, test window [{split.cutoff}, {split.end}] ({int(test.sum())} "
        f"transactions, {int(y_test.sum())} fraudulent by the ground truth is_fraud); fitted "
        f"on [{split.train_start}, {split.validation_start}) with labels known by "
        f"{split.cutoff}, threshold fraud_probability >= {evaluation.threshold} "
        f"({evaluation.threshold_selection}); card precision@{evaluation.cards.k} per day "
        f"(mean) {evaluation.metrics['card_precision_at_k']}",
    )
    (out / "scaler").mkdir(parents=True)
    skops.io.dump(evaluation.pipeline.named_steps[tm.PREPROCESS_STEP], out / "scaler/scaler.skops")
    (out / registry.CLASSIFICATION_REPORT_ARTIFACT).write_text(report)
    (out / "reference").mkdir()
    reference_frame(prepared, all_scores).to_parquet(
        out / registry.REFERENCE_ARTIFACT_PATH, index=False
    )
    evaluation.cards.per_day.to_csv(out / CARD_PRECISION_ARTIFACT, index=False)
    X_test = prepared.X.loc[test]
    sample = X_test.sample(min(len(X_test), 5000), random_state=0)
    importance = pd.DataFrame(
        {"mean_abs_contribution": tm.contributions(evaluation.pipeline, sample).abs().mean()}
    ).sort_values("mean_abs_contribution", ascending=False)
    importance.rename_axis("feature").to_csv(out / "feature_importance.csv")
    plots = out / "plots"
    plots.mkdir()
    title = "Transaction classifier (test window)"
    plot_confusion_matrix(y_test, flagged, plots / "confusion_matrix.png", title)
    plot_feature_importance(importance, plots / "feature_importance.png", title)
    plot_score_distribution(
        evaluation.test_scores,
        y_test,
        evaluation.threshold,
        plots / "fraud_probability_distribution.png",
        title,
    )
    plot_precision_recall(y_test, evaluation.test_scores, plots / "precision_recall_curve.png")


def _publish(
    prepared: Prepared,
    evaluation: Evaluation,
    run_params: Mapping[str, Any],
    identity: Mapping[str, Any],
    context: TrainingContext,
    out: Path,
) -> tuple[str, int]:
    from ml.training.customer_models.publish import publish_run, run_tags
    from ml.training.transaction_model.families import FAMILY_REQUIREMENTS, FAMILY_TRUSTED_TYPES

    family = str(run_params["family"])
    tags = run_tags(context, identity["training_data_fingerprint"], tm.SHORT_NAME)
    tags["family"] = family
    return publish_run(
        model_name=tm.MODEL_NAME,
        pipeline=evaluation.pipeline,
        X=prepared.X.loc[prepared.rows("fit")],
        params=run_params,
        metrics={**evaluation.metrics, tm.THRESHOLD_KEY: evaluation.threshold},
        tags=tags,
        artifacts_dir=out,
        context=context,
        skops_trusted_types=FAMILY_TRUSTED_TYPES[family],
        extra_requirements=FAMILY_REQUIREMENTS.get(family, ()),
    )
