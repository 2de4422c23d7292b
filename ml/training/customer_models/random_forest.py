"""Training the supervised RandomForest on a held-out split, when there are enough
fraudulent customers (README "Models, scores and explanations").
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.model_selection import train_test_split

from ml import registry
from ml.features import FEATURE_COLUMNS, feature_matrix, training_data_fingerprint
from ml.provenance import utc_now_naive
from ml.scores import score_function
from ml.timing import timed
from ml.training.customer_models.params import (
    STATUS_SKIPPED,
    RandomForestParams,
    RetrainPolicy,
    TrainingContext,
)
from ml.training.customer_models.plots import (
    plot_confusion_matrix,
    plot_feature_importance,
    plot_precision_recall,
    plot_score_distribution,
)
from ml.training.customer_models.publish import (
    classification_report_text,
    publish_run,
    retrain_skip_row,
    run_identity,
    run_tags,
    trained_row,
    write_common_artifacts,
)
from ml.training.customer_models.steps import (
    evaluation_metrics,
    fit_random_forest,
    in_id_order,
    join_labels,
    reference_frame,
    rf_training_decision,
    training_run_row,
)

logger = logging.getLogger(__name__)

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
    features = in_id_order(features)
    X = feature_matrix(features)
    y = join_labels(features, labels).to_numpy()
    fingerprint = training_data_fingerprint(features)
    n_fraud = int(y.sum())
    common = run_identity(registry.RANDOM_FOREST_MODEL, features, y, fingerprint, params, context)
    skip_reason = rf_training_decision(n_fraud, params.min_fraud_customers)
    if skip_reason is None and len(X) - n_fraud < 2:
        skip_reason = "fewer than 2 non-fraudulent customers: nothing to contrast"
    if skip_reason is not None:
        logger.warning("RandomForest skipped: %s", skip_reason)
        return training_run_row(
            status=STATUS_SKIPPED, skip_reason=skip_reason, trained_at=utc_now_naive(), **common
        )
    skipped = retrain_skip_row(common, previous, policy)
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
    with timed("permutation_importance"):
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
        report = classification_report_text(
            y_test,
            test_pred,
            f"RandomForest, evaluated on the held-out stratified test split ({len(X_test)} "
            f"customers, {int(y_test.sum())} fraudulent; never seen by SMOTE or the scaler). "
            f"threshold fraud_probability >= {params.decision_threshold}",
        )
        write_common_artifacts(out, pipeline, report, reference_frame(X, all_scores))
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
        run_id, version = publish_run(
            model_name=registry.RANDOM_FOREST_MODEL,
            pipeline=pipeline,
            X=X_train,
            params=run_params,
            metrics=metrics,
            tags=run_tags(context, fingerprint, "random_forest"),
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
    return trained_row(
        common,
        run_id,
        version,
        metrics,
        n_train=len(X_train),
        n_test=len(X_test),
        evaluation_set="holdout_test_split",
        fit_seconds=fit_seconds,
        started=started,
    )
