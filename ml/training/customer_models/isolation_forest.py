"""Training the unsupervised IsolationForest on every customer
(README "Models, scores and explanations").
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from ml import registry
from ml.features import FEATURE_COLUMNS, ID_COLUMN, feature_matrix, training_data_fingerprint
from ml.scores import ablation_contributions, score_function
from ml.training.customer_models.params import (
    LABEL_COLUMN,
    IsolationForestParams,
    RetrainPolicy,
    TrainingContext,
)
from ml.training.customer_models.plots import (
    plot_confusion_matrix,
    plot_correlations,
    plot_feature_importance,
    plot_group_comparison,
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
    build_isolation_forest,
    evaluation_metrics,
    in_id_order,
    join_labels,
    reference_frame,
)

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Orchestration: IsolationForest
# ---------------------------------------------------------------------------------------------


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
    features = in_id_order(features)
    X = feature_matrix(features)
    if len(X) < 2:
        raise ValueError(
            f"gold.transaction_features has {len(X)} row(s): nothing to train the isolation "
            "forest on"
        )
    y = join_labels(features, labels).to_numpy()
    fingerprint = training_data_fingerprint(features)
    identity = run_identity(
        registry.ISOLATION_FOREST_MODEL, features, y, fingerprint, params, context
    )
    skipped = retrain_skip_row(identity, previous, policy)
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
        report = classification_report_text(
            y,
            flagged,
            "IsolationForest, evaluated on all training customers (unsupervised: labels were "
            f"not used for fitting). threshold anomaly_score > {threshold:.6f}",
        )
        write_common_artifacts(out, pipeline, report, reference_frame(X, scores))
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
        run_id, version = publish_run(
            model_name=registry.ISOLATION_FOREST_MODEL,
            pipeline=pipeline,
            X=X,
            params=run_params,
            metrics=metrics,
            tags=run_tags(context, fingerprint, "isolation_forest"),
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
    return trained_row(
        identity,
        run_id,
        version,
        metrics,
        n_train=len(X),
        n_test=len(X),
        evaluation_set="all_customers_unsupervised",
        fit_seconds=fit_seconds,
        started=started,
    )
