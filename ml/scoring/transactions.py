"""Batch scoring of gold.transaction_fraud_scores: every transaction of
gold.transaction_risk_features scored by the transaction classifier chosen by the registry's
one selection rule (``ml.registry.select_version`` through ``ml.scoring.selection``), with its
run's decision threshold, confidence, risk band and three reasons in words
(``ml.scoring.transaction_reasons``, from the contributions of ``ml.scoring.explanations``).

A transaction without history needs nothing special here: its features hold the documented
defaults of gold.transaction_risk_features (never null), and the reasons then say "new
customer" / "new merchant" (``transaction_reasons``' neutral notes or the features' own
wording)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml import registry
from ml.provenance import anti_join
from ml.registry import TRANSACTION_CLASSIFIER_MODEL, SelectedVersion
from ml.scores import confidence, risk_bands
from ml.scoring.explanations import explained_scores
from ml.scoring.selection import (
    ModelResolutionError,
    NothingRegisteredError,
    ScoringSettings,
    resolve_scoring_model,
    run_decision_threshold,
)
from ml.scoring.transaction_reasons import REASON_COLUMNS, reason_columns
from ml.settings import from_env
from ml.timing import phase
from ml.transaction_model import THRESHOLD_KEY, feature_matrix

logger = logging.getLogger(__name__)

# Rows scored at a time: bounds memory (contributions are rows x 39 doubles) at any size.
CHUNK_ROWS = 200_000

# The var that pins a version of the transaction classifier (scoring_model_version pins the
# customer model of gold.fraud_scores; one var cannot pin two models).
PINNED_VERSION_SETTING = "transaction_scoring_model_version"

TRANSACTION_SCORES_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "customer_id",
    "merchant_id",
    "transaction_timestamp",
    "fraud_probability",
    "is_flagged",
    "confidence",
    "risk_band",
    "decision_threshold",
    *REASON_COLUMNS,
    "model_name",
    "model_version",
    "model_run_id",
    "model_alias",
    "selection",
    "scored_at",
    "scoring_batch_id",
    "features_loaded_at",
)
_STRINGS = (
    "transaction_id",
    "customer_id",
    "merchant_id",
    "risk_band",
    *REASON_COLUMNS,
    "model_name",
    "model_run_id",
    "model_alias",
    "selection",
    "scoring_batch_id",
)
_TYPES: dict[str, str] = {
    **dict.fromkeys(_STRINGS, "string"),
    "fraud_probability": "float64",
    "is_flagged": "bool",
    "confidence": "float64",
    "decision_threshold": "float64",
    "model_version": "int64",
    "transaction_timestamp": "datetime64[us]",
    "scored_at": "datetime64[us]",
    "features_loaded_at": "datetime64[us]",
}


def transaction_scoring_settings(values: Mapping[str, Any], target: str) -> ScoringSettings:
    """The selection for the transaction classifier from the dbt vars of the model's meta:
    the one model name, ``scoring_alias`` (shared with gold.fraud_scores: one alias marks the
    models in use), ``transaction_scoring_model_version`` (pin; unset: its environment
    variable, never the customer model's ``scoring_model_version``), the fallback targets and
    the MLflow URIs. On a fallback target with no version carrying the alias, the latest
    version of the transaction classifier is used (selection ``fallback_latest_unvalidated``)."""
    shared = {k: v for k, v in values.items() if k != "scoring_model_version"}
    settings = ScoringSettings.from_mapping(
        {**shared, "scoring_model_names": TRANSACTION_CLASSIFIER_MODEL}, target
    )
    pinned = values.get(PINNED_VERSION_SETTING) or from_env(PINNED_VERSION_SETTING)
    return dataclasses.replace(
        settings,
        model_names=(TRANSACTION_CLASSIFIER_MODEL,),
        pinned_version=int(str(pinned)) if pinned not in (None, "") else None,
        fallback_model_name=TRANSACTION_CLASSIFIER_MODEL,
        table="gold.transaction_fraud_scores",
    )


def unscored_transactions(features: Any, scored: Any) -> Any:
    """The rows of ``features`` (relation of gold.transaction_risk_features) with no score
    in ``scored`` (relation of the existing gold.transaction_fraud_scores:
    ``transaction_id``, ``features_loaded_at``) made from features loaded at or after theirs:
    new transactions, and corrected ones whose features were recomputed since. In the
    warehouse where it can (``ml.provenance.anti_join``)."""
    return anti_join(
        features,
        scored,
        on=(("transaction_id", "transaction_id"),),
        left_not_after=("loaded_at", "features_loaded_at"),
    )


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in TRANSACTION_SCORES_COLUMNS})
    return frame.astype(_TYPES)[list(TRANSACTION_SCORES_COLUMNS)]


@phase
def score_transactions(
    features: pd.DataFrame,
    pipeline: Any,
    model: SelectedVersion,
    threshold: float,
    scoring_batch_id: str,
    scored_at: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> pd.DataFrame:
    """``TRANSACTION_SCORES_COLUMNS`` for every row of ``features`` (rows of
    gold.transaction_risk_features), scored ``chunk_rows`` at a time; one ``scored_at`` for
    the batch. ``is_flagged`` = probability >= ``threshold``."""
    scored_at = (scored_at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    if len(features) == 0:
        return _empty()
    parts = []
    for start in range(0, len(features), chunk_rows):
        parts.append(_score_chunk(features.iloc[start : start + chunk_rows], pipeline, threshold))
        logger.info(
            "scored %d of %d transactions", min(start + chunk_rows, len(features)), len(features)
        )
    out = pd.concat(parts, ignore_index=True)
    n = len(out)
    out["model_name"] = model.name
    out["model_version"] = np.full(n, model.version, dtype="int64")
    out["model_run_id"] = model.run_id
    out["model_alias"] = model.alias
    out["selection"] = model.selection
    out["scored_at"] = pd.Series([scored_at] * n, dtype="datetime64[us]")
    out["scoring_batch_id"] = scoring_batch_id
    return out.astype(_TYPES)[list(TRANSACTION_SCORES_COLUMNS)]


def _score_chunk(features: pd.DataFrame, pipeline: Any, threshold: float) -> pd.DataFrame:
    X = feature_matrix(features)
    # probability and contributions by the rule the real-time service shares: the compiled
    # LightGBM margin and path attribution, exact TreeSHAP for the flagged rows only
    probability, flagged, contrib = explained_scores(pipeline, X, threshold)
    conf = confidence(probability, threshold, flagged)
    reasons = reason_columns(X, contrib)
    out = pd.DataFrame(
        {
            "transaction_id": features["transaction_id"].astype(str).to_numpy(),
            "customer_id": features["customer_id"].astype(str).to_numpy(),
            "merchant_id": features["merchant_id"].astype(str).to_numpy(),
            "transaction_timestamp": pd.to_datetime(features["transaction_at"]).to_numpy(),
            "fraud_probability": probability,
            "is_flagged": flagged.astype(bool),
            "confidence": conf,
            "risk_band": risk_bands(flagged, conf),
            "decision_threshold": np.full(len(X), threshold),
            "features_loaded_at": pd.to_datetime(features["loaded_at"]).to_numpy(),
        }
    )
    for column in REASON_COLUMNS:
        out[column] = reasons[column].to_numpy()
    return out


def load_transaction_model(settings: ScoringSettings) -> tuple[SelectedVersion, Any, float]:
    """Configure MLflow, select the version, load it and its run's decision threshold.
    Raises ``ModelResolutionError`` naming the model when nothing is usable."""
    registry.configure(settings.tracking_uri, settings.registry_uri)
    resolved = resolve_scoring_model(settings)
    try:
        pipeline = registry.load_sklearn_model(resolved.name, resolved.version)
        threshold = run_decision_threshold(resolved.run_id)
    except Exception as exc:
        raise ModelResolutionError(
            f"Could not load {resolved.name} version {resolved.version} "
            f"({resolved.selection}{'@' + resolved.alias if resolved.alias else ''}): {exc}"
        ) from exc
    if threshold is None:
        raise ModelResolutionError(
            f"{resolved.name} version {resolved.version}: its training run {resolved.run_id} "
            f"has no {THRESHOLD_KEY!r} param; gold.transaction_fraud_scores was not rebuilt."
        )
    return resolved, pipeline, threshold


def run_transaction_scoring(
    features: pd.DataFrame,
    settings: ScoringSettings,
    scoring_batch_id: str,
    scored_at: datetime | None = None,
) -> pd.DataFrame:
    """What ``models/gold/transaction_fraud_scores.py`` calls: select and load the model,
    score ``features`` (the transactions not scored yet, or all on a full refresh). On a
    target that allows the fallback, no registered transaction classifier at all (its training
    was skipped, e.g. too few labels at a small data size) scores nothing, with a warning: the
    transactions stay unscored and the first build with a model scores them."""
    try:
        resolved, pipeline, threshold = load_transaction_model(settings)
    except NothingRegisteredError as exc:
        logger.warning(
            "gold.transaction_fraud_scores: %d transaction(s) left unscored: %s "
            "(ml_models.transaction_classifier_training_runs says why the training was "
            "skipped)",
            len(features),
            exc,
        )
        return _empty()
    logger.info(
        "Scoring %d transactions with %s version %s (%s, threshold %.4f)",
        len(features),
        resolved.name,
        resolved.version,
        resolved.selection,
        threshold,
    )
    return score_transactions(features, pipeline, resolved, threshold, scoring_batch_id, scored_at)
