"""The model a worker scores with: a registered transaction classifier version, loaded by alias,
compiled to a one-row path and checked against scikit-learn before use.

One-row path (``OnlineModel.score``): the preprocessing step's ordinal codes from dictionaries
and the numeric features passed through, in the order of ``get_feature_names_out`` (what the
pipeline's ColumnTransformer does), then LightGBM's booster on one float64 row: the margin, and
the probability and contributions by the batch rule and the same code
(``ml.scoring.explanations.booster_scores``: the compiled margin and path attribution of
``ml.scoring.fast_evaluator.boosted``, exact TreeSHAP when flagged); any other family goes
through the scikit-learn pipeline on a one-row frame (slower, same numbers).
``check_against_pipeline`` compares the one-row path with LightGBM's own ``predict_proba`` and
the numpy path attribution (``explained_contributions(..., compiled=False)``) on sample rows
and raises ``ModelCheckError`` past ``CHECK_TOLERANCE``; a model that fails is never swapped
in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ml import registry
from ml.scores import CLASSIFIER_KIND, confidence, flag, risk_bands
from ml.scoring.explanations import booster_scores, explained_contributions
from ml.scoring.selection import run_decision_threshold
from ml.scoring.transaction_reasons import reasons_for_row
from ml.transaction_model import (
    CATEGORICAL_COLUMNS,
    FEATURE_COLUMNS,
    MODEL_NAME,
    PREPROCESS_STEP,
    classifier_of,
    contributions,
    feature_matrix,
    fraud_probability,
)

CHECK_TOLERANCE = 1e-9


class ModelCheckError(RuntimeError):
    """The one-row path disagrees with the scikit-learn pipeline (the model is not used)."""


class NoModelError(RuntimeError):
    """No version has the alias the service needs."""


@dataclass(frozen=True)
class Decision:
    fraud_probability: float
    is_flagged: bool
    risk_band: str
    reasons: list[str]
    contributions: dict[str, float] = field(repr=False)


@dataclass
class OnlineModel:
    """A loaded, checked model version (immutable once built: swapped whole)."""

    name: str
    version: int
    run_id: str | None
    alias: str
    pipeline: Any
    threshold: float
    columns: tuple[str, ...] = ()
    codes: dict[str, dict[str, float]] = field(default_factory=dict)
    booster: Any = None

    @classmethod
    def build(
        cls,
        pipeline: Any,
        name: str,
        version: int,
        run_id: str | None,
        alias: str,
        threshold: float,
    ) -> OnlineModel:
        model = cls(name, version, run_id, alias, pipeline, threshold)
        preprocess = pipeline.named_steps[PREPROCESS_STEP]
        model.columns = tuple(str(c) for c in preprocess.get_feature_names_out())
        encoder = preprocess.named_transformers_["categorical"]
        for column, values in zip(CATEGORICAL_COLUMNS, encoder.categories_, strict=True):
            model.codes[column] = {str(v): float(i) for i, v in enumerate(values)}
        model.booster = getattr(classifier_of(pipeline), "booster_", None)
        return model

    # -- the rows of one request ---------------------------------------------------------------
    def matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """What the classifier sees of ``rows`` (float64, its columns; unknown category NaN)."""
        return np.asarray(
            [
                [
                    self.codes[c].get(str(features[c]), math.nan)
                    if c in self.codes
                    else float(features[c])
                    for c in self.columns
                ]
                for features in rows
            ],
            dtype="float64",
        )

    def probability_and_contributions(
        self, features: Mapping[str, Any]
    ) -> tuple[float, bool, dict[str, float]]:
        """Probability, flag and the contributions the reasons are written from, by the rule
        of ``ml.scoring.explanations`` (exact TreeSHAP when flagged, the path attribution
        otherwise) and batch's code, so they equal gold.transaction_fraud_scores'."""
        [(probability, flagged, contrib)] = self._scored([features])
        return probability, flagged, contrib

    def _scored(
        self, rows: Sequence[Mapping[str, Any]]
    ) -> list[tuple[float, bool, dict[str, float]]]:
        """``probability_and_contributions`` of several rows in one call of the batch code
        (each row's numbers do not depend on the others: ``booster_scores``)."""
        if self.booster is not None:
            matrix = self.matrix(rows)
            probability, flagged, raw = booster_scores(self.booster, matrix, self.threshold)
            return [
                (p, f, dict(zip(self.columns, contrib, strict=True)))
                for p, f, contrib in zip(
                    probability.tolist(), flagged.tolist(), raw.tolist(), strict=True
                )
            ]
        frame = feature_matrix(pd.DataFrame([dict(features) for features in rows]))
        scores = fraud_probability(self.pipeline, frame)
        flags = flag(np.asarray(scores), self.threshold, CLASSIFIER_KIND)
        contrib = contributions(self.pipeline, frame)
        return [
            (
                float(scores[i]),
                bool(flags[i]),
                {str(k): float(v) for k, v in contrib.iloc[i].to_dict().items()},
            )
            for i in range(len(rows))
        ]

    def decide(self, features: Mapping[str, Any], notes: Sequence[str] = ()) -> Decision:
        """Score one transaction: probability, flag, band and three reasons (cold-start notes,
        when any, take the last slots so the reply says the defaults were used)."""
        return self.decide_many([features], [notes])[0]

    def decide_many(
        self, rows: Sequence[Mapping[str, Any]], notes: Sequence[Sequence[str]]
    ) -> list[Decision]:
        """``decide`` for the transactions of one request at once: the model, the flags and
        the risk bands run once over all rows (vectorised, as in batch), the reasons per row.
        Each decision equals ``decide`` of its row alone."""
        if not rows:
            return []
        scored = self._scored(rows)
        scores = np.asarray([p for p, _, _ in scored])
        flagged = np.asarray([f for _, f, _ in scored])
        bands = risk_bands(flagged, confidence(scores, self.threshold, flagged))
        out = []
        for (probability, is_flagged, contrib), features, extra, band in zip(
            scored, rows, notes, bands, strict=True
        ):
            reasons = reasons_for_row(features, contrib)
            if extra:
                keep = max(0, len(reasons) - len(extra))
                reasons = (reasons[:keep] + list(extra))[: len(reasons)]
            out.append(Decision(probability, is_flagged, str(band), reasons, contrib))
        return out

    def describe(self) -> dict[str, Any]:
        return {"model_name": self.name, "model_version": self.version, "alias": self.alias}


def check_against_pipeline(model: OnlineModel, rows: pd.DataFrame) -> dict[str, float]:
    """Max absolute differences of the one-row path against the pipeline on ``rows`` (the
    feature table's columns); raises ``ModelCheckError`` past ``CHECK_TOLERANCE``."""
    if rows.empty:
        raise ModelCheckError("no sample rows to check the model against")
    X = feature_matrix(rows)
    expected_p = fraud_probability(model.pipeline, X)
    flagged = flag(expected_p, model.threshold, CLASSIFIER_KIND)
    expected_c = explained_contributions(model.pipeline, X, flagged, compiled=False)
    worst_p = worst_c = 0.0
    for i, record in enumerate(rows[list(FEATURE_COLUMNS)].to_dict("records")):
        p, _, contrib = model.probability_and_contributions(record)
        worst_p = max(worst_p, abs(p - expected_p[i]))
        for column in FEATURE_COLUMNS:
            worst_c = max(worst_c, abs(contrib[column] - float(expected_c.iloc[i][column])))
    if worst_p > CHECK_TOLERANCE or worst_c > CHECK_TOLERANCE:
        raise ModelCheckError(
            f"{model.name} v{model.version}: one-row path differs from scikit-learn "
            f"(probability {worst_p:.3g}, contributions {worst_c:.3g} > {CHECK_TOLERANCE})"
        )
    return {"probability": worst_p, "contributions": worst_c, "rows": float(len(rows))}


def alias_version(alias: str, name: str = MODEL_NAME, client: Any | None = None) -> Any | None:
    """The registered version holding ``alias`` (None when none does)."""
    return registry.version_by_alias(name, alias, client)


def load_model(
    alias: str, version: Any, sample: pd.DataFrame, client: Any | None = None
) -> OnlineModel:
    """Load ``version`` (an MLflow ModelVersion), build the one-row path and check it."""
    number = int(version.version)
    pipeline = registry.load_sklearn_model(version.name, number)
    threshold = run_decision_threshold(version.run_id, client)
    model = OnlineModel.build(
        pipeline,
        str(version.name),
        number,
        version.run_id,
        alias,
        0.5 if threshold is None else float(threshold),
    )
    check_against_pipeline(model, sample)
    return model
