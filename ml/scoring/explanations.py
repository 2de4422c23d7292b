"""The probability of a transaction and the contributions its reasons are written from: one
rule for batch scoring (gold.transaction_fraud_scores) and the real-time service
(``ml.serving.model``), so the two give the same numbers.

The rule: exact TreeSHAP (LightGBM ``pred_contrib``) for the **flagged** transactions (the ones
investigators open), the path attribution of ``ml.transaction_model.path_contributions`` for the
rest (exact TreeSHAP of every row is far too slow for either path). For a LightGBM classifier
the probability and the path attribution come from the compiled kernel of
``ml.scoring.fast_evaluator.boosted`` (one walk of every tree per row gives both; equal to
LightGBM's ``predict_proba`` and to ``path_contributions`` within 1e-9); ``compiled=False``
computes the same rule with LightGBM's and numpy's own code (the reference the benchmark
measures beside it). Any other classifier: ``fraud_probability`` and the ablation
contributions of ``ml.transaction_model.contributions``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.scores import CLASSIFIER_KIND, flag
from ml.scoring.fast_evaluator.boosted import flat_booster
from ml.transaction_model import (
    FEATURE_COLUMNS,
    PATH_METHOD,
    SHAP_METHOD,
    classifier_of,
    contributions,
    fraud_probability,
    transformed,
)


def booster_of(pipeline: Any) -> Any | None:
    """The LightGBM booster of a transaction model (None for the other families)."""
    return getattr(classifier_of(pipeline), "booster_", None)


def booster_scores(
    booster: Any, matrix: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probability, flag and contributions (rows x the classifier's columns, log-odds units)
    of every row of ``matrix`` (what the classifier sees, float64) by the rule: the compiled
    margin and path attribution, exact TreeSHAP for the flagged rows. Each row's numbers do
    not depend on the other rows (one row, the service, equals its row in a batch)."""
    margin, contrib = flat_booster(booster).margin_and_path(matrix)
    probability = 1.0 / (1.0 + np.exp(-margin))  # LightGBM's binary objective, sigmoid 1
    flagged = flag(probability, threshold, CLASSIFIER_KIND)
    if flagged.any():
        exact = booster.predict(matrix[flagged], pred_contrib=True, num_threads=1)
        contrib[flagged] = np.asarray(exact)[:, :-1]  # the bias column dropped
    return probability, flagged, contrib


def explained_scores(
    pipeline: Any, X: pd.DataFrame, threshold: float
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Probability, flag (``probability >= threshold``) and contributions (rows of ``X`` by
    ``FEATURE_COLUMNS``) of the transaction model on ``X`` (``feature_matrix`` rows)."""
    booster = booster_of(pipeline)
    if booster is None:
        probability = fraud_probability(pipeline, X)
        flagged = flag(probability, threshold, CLASSIFIER_KIND)
        return probability, flagged, contributions(pipeline, X)
    matrix = transformed(pipeline, X)
    probability, flagged, raw = booster_scores(booster, matrix.to_numpy(), threshold)
    frame = pd.DataFrame(raw, columns=matrix.columns, index=X.index)
    return probability, flagged, frame.reindex(columns=list(FEATURE_COLUMNS), fill_value=0.0)


def explained_contributions(
    pipeline: Any, X: pd.DataFrame, flagged: np.ndarray, compiled: bool = True
) -> pd.DataFrame:
    """The rule's contributions for given flags (rows of ``X`` by ``FEATURE_COLUMNS``):
    exact TreeSHAP for the ``flagged`` rows, the path attribution for the rest; ``compiled``
    (LightGBM) from the compiled kernel, else LightGBM's ``pred_leaf`` and numpy
    (``ml.transaction_model.path_contributions``)."""
    booster = booster_of(pipeline)
    if booster is None:
        return contributions(pipeline, X)
    if compiled:
        matrix = transformed(pipeline, X)
        _, path = flat_booster(booster).margin_and_path(matrix.to_numpy())
        contrib = pd.DataFrame(path, columns=matrix.columns, index=X.index)
        contrib = contrib.reindex(columns=list(FEATURE_COLUMNS), fill_value=0.0)
    else:
        contrib = contributions(pipeline, X, method=PATH_METHOD)
    if flagged.any():
        rows = X.index[flagged]
        contrib.loc[rows] = contributions(pipeline, X.loc[rows], method=SHAP_METHOD)
    return contrib
