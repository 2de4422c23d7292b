"""Batch scoring of gold.fraud_scores (README "Models, scores and explanations")."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml import registry
from ml.features import ID_COLUMN, feature_matrix
from ml.registry import SelectedVersion
from ml.scores import (
    CLASSIFIER_KIND,
    ablation_contributions,
    confidence,
    decision_threshold,
    flag,
    model_kind,
    risk_bands,
    score_function,
)
from ml.scoring.reason_codes import N_REASONS, reason_codes
from ml.scoring.selection import (
    ModelResolutionError,
    ScoringSettings,
    resolve_scoring_model,
    run_decision_threshold,
)

logger = logging.getLogger(__name__)

FAST_VERIFY_ROWS = 1000  # rows on which the compiled evaluator is checked against scikit-learn

SCORES_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "anomaly_score",
    "is_anomaly",
    "fraud_probability",
    "confidence",
    "risk_band",
    "decision_threshold",
    "model_name",
    "model_version",
    "model_run_id",
    "model_alias",
    "selection",
    "scored_at",
    "scoring_batch_id",
    "reason_1",
    "reason_1_detail",
    "reason_2",
    "reason_2_detail",
    "reason_3",
    "reason_3_detail",
)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredBatch:
    """Scores plus the intermediate matrices (handy for tests and notebooks)."""

    scores: pd.DataFrame
    contributions: pd.DataFrame = field(repr=False)


def score_customers(
    features: pd.DataFrame,
    pipeline: Any,
    model: SelectedVersion,
    scoring_batch_id: str,
    scored_at: datetime | None = None,
    classifier_threshold: float | None = None,
    max_workers: int | None = None,
) -> ScoredBatch:
    """Score every row of ``features`` (``customer_id`` + the 16 features): the
    ``gold.fraud_scores`` columns (``SCORES_COLUMNS``), one ``scored_at`` for the batch."""
    scored_at = (scored_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    X = feature_matrix(features)
    kind = model_kind(pipeline)
    threshold = decision_threshold(pipeline, classifier_threshold)
    if len(X) == 0:
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in SCORES_COLUMNS})
        empty["scored_at"] = pd.Series(dtype="datetime64[us]")
        return ScoredBatch(_typed_scores(empty), pd.DataFrame(columns=X.columns))
    score_fn = score_function(pipeline)
    scores = score_fn(X)
    flagged = flag(scores, threshold, kind)
    conf = confidence(scores, threshold, flagged)
    contributions = ablation_contributions(score_fn, X, baseline=scores, max_workers=max_workers)
    reasons = reason_codes(contributions, X)
    n = len(X)
    out = pd.DataFrame(
        {
            "customer_id": features[ID_COLUMN].astype(str).to_numpy(),
            "anomaly_score": scores,
            "is_anomaly": flagged.astype(bool),
            "fraud_probability": scores if kind == CLASSIFIER_KIND else np.full(n, np.nan),
            "confidence": conf,
            "risk_band": risk_bands(flagged, conf),
            "decision_threshold": np.full(n, threshold),
            "model_name": model.name,
            "model_version": np.full(n, model.version, dtype="int64"),
            "model_run_id": model.run_id,
            "model_alias": model.alias,
            "selection": model.selection,
            "scored_at": pd.Series([scored_at] * n, dtype="datetime64[us]").to_numpy(),
            "scoring_batch_id": scoring_batch_id,
        }
    )
    for column in reasons.columns:
        out[column] = reasons[column].to_numpy()
    return ScoredBatch(_typed_scores(out), contributions)


def fast_scoring_model(
    pipeline: Any, features: pd.DataFrame, verify_rows: int = FAST_VERIFY_ROWS
) -> Any:
    """The loaded pipeline compiled by ``ml.scoring.fast_evaluator`` (the same scores, faster: the
    scoring job makes 17 batch passes, one plus one per feature for the reason codes), checked
    equal to scikit-learn on the first ``verify_rows`` rows of ``features`` (any frame with the
    feature columns). Returns the pipeline itself, with a warning, when the evaluator does not
    support the model or disagrees."""
    from ml.scoring.fast_evaluator.kernels import MismatchError, UnsupportedModelError
    from ml.scoring.fast_evaluator.scorer import compile_pipeline, verify

    try:
        scorer = compile_pipeline(pipeline)
    except UnsupportedModelError as exc:
        logger.warning(
            "Scoring with scikit-learn: the fast evaluator does not support it (%s)", exc
        )
        return pipeline
    sample = feature_matrix(features.iloc[:verify_rows])
    if len(sample):
        try:
            verify(scorer, pipeline, sample)
        except MismatchError as exc:
            logger.warning(
                "Scoring with scikit-learn: the fast evaluator disagrees with it on the first "
                "%d rows (%s)",
                len(sample),
                exc,
            )
            return pipeline
    logger.info(
        "Scoring with the fast evaluator %r (equal to scikit-learn on the first %d rows)",
        scorer,
        len(sample),
    )
    return scorer


def _typed_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Fixed dtypes so the warehouse schema never depends on the data (all-null columns)."""
    strings = [
        "customer_id",
        "risk_band",
        "model_name",
        "model_run_id",
        "model_alias",
        "selection",
        "scoring_batch_id",
        *[f"reason_{k}{s}" for k in range(1, N_REASONS + 1) for s in ("", "_detail")],
    ]
    df = df.astype({c: "string" for c in strings})
    df = df.astype(
        {
            "anomaly_score": "float64",
            "fraud_probability": "float64",
            "confidence": "float64",
            "decision_threshold": "float64",
            "is_anomaly": "bool",
            "model_version": "int64",
        }
    )
    return df[list(SCORES_COLUMNS)]


def run_scoring(
    features: pd.DataFrame,
    settings: ScoringSettings,
    scoring_batch_id: str,
    scored_at: datetime | None = None,
) -> pd.DataFrame:
    """What ``models/gold/fraud_scores.py`` calls: configure MLflow, resolve and load the
    model, compile it (``fast_scoring_model``: scikit-learn's scores, faster; the pipeline
    itself when that is not possible), score every customer. Raises ``ModelResolutionError``
    when no model is usable."""
    registry.configure(settings.tracking_uri, settings.registry_uri)
    resolved = resolve_scoring_model(settings)
    try:
        pipeline = registry.load_sklearn_model(resolved.name, resolved.version)
        threshold = (
            run_decision_threshold(resolved.run_id)
            if model_kind(pipeline) == CLASSIFIER_KIND
            else None
        )
    except Exception as exc:
        raise ModelResolutionError(
            f"Could not load {resolved.name} version {resolved.version} "
            f"({resolved.selection}{'@' + resolved.alias if resolved.alias else ''}): {exc}"
        ) from exc
    logger.info(
        "Scoring %d customers with %s version %s (%s)",
        len(features),
        resolved.name,
        resolved.version,
        resolved.selection,
    )
    model = fast_scoring_model(pipeline, features)
    return score_customers(features, model, resolved, scoring_batch_id, scored_at, threshold).scores
