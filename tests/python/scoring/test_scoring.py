"""Scoring: confidence, risk bands, reason codes (hand-built cases with known answers), model
resolution policy (fake registry client), audit rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST
from sklearn.ensemble import IsolationForest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ml import registry
from ml import scores as ml_scores
from ml.features import FEATURE_COLUMNS
from ml.scoring import batch, prediction_log, reason_codes, selection
from ml.scoring.fast_evaluator import kernels, scorer

RF = registry.RANDOM_FOREST_MODEL
IF = registry.ISOLATION_FOREST_MODEL


# ------------------------------------------------------------------ confidence and risk bands


def test_confidence_is_zero_on_the_threshold_and_one_at_the_extremes() -> None:
    scores = np.array([0.0, 0.3, 0.6, 0.8, 1.0])
    flagged = scores > 0.6
    conf = ml_scores.confidence(scores, 0.6, flagged)
    np.testing.assert_allclose(conf, [1.0, 0.5, 0.0, 0.5, 1.0])


def test_classifier_confidence_is_distance_from_one_half() -> None:
    p = np.array([0.0, 0.25, 0.5, 0.9])
    conf = ml_scores.confidence(p, 0.5, ml_scores.flag(p, 0.5, ml_scores.CLASSIFIER_KIND))
    np.testing.assert_allclose(conf, np.abs(2 * p - 1))


def test_risk_bands_follow_the_documented_thresholds() -> None:
    flagged = np.array([True, True, True, False, False, False])
    conf = np.array([0.5, 0.49, 0.0, 0.19, 0.2, 1.0])
    assert ml_scores.risk_bands(flagged, conf).tolist() == [
        "critical",
        "high",
        "high",
        "medium",
        "low",
        "low",
    ]


def test_isolation_forest_flags_match_predict() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 16)), columns=list(FEATURE_COLUMNS))
    pipe = Pipeline(
        [
            ("scaler", StandardScaler()),
            ("model", IsolationForest(contamination=0.05, random_state=0)),
        ]
    ).fit(X)
    scores = ml_scores.score_function(pipe)(X)
    threshold = ml_scores.decision_threshold(pipe)
    flagged = ml_scores.flag(scores, threshold, ml_scores.model_kind(pipe))
    np.testing.assert_array_equal(flagged, pipe.predict(X) == -1)
    assert np.all((scores > 0) & (scores <= 1))


# ------------------------------------------------------------------------------ reason codes


def hand_built() -> pd.DataFrame:
    """Five customers; customer 4 is extreme on max amount and tenure."""
    data = {name: np.full(5, 10.0) for name in FEATURE_COLUMNS}
    data["max_transaction_amount"] = np.array([100.0, 110.0, 120.0, 130.0, 4950.0])
    data["total_spend"] = np.array([1000.0, 1000.0, 1000.0, 1000.0, 1600.0])
    data["customer_tenure_days"] = np.array([400.0, 500.0, 600.0, 700.0, 10.0])
    return pd.DataFrame(data)


def linear_score(X: pd.DataFrame) -> np.ndarray:
    # More anomalous with a larger max amount, more spend, shorter tenure.
    return (
        0.001 * X["max_transaction_amount"].to_numpy()
        + 0.0001 * X["total_spend"].to_numpy()
        - 0.002 * X["customer_tenure_days"].to_numpy()
    )


def test_ablation_contribution_equals_the_known_linear_effect() -> None:
    X = hand_built()
    contributions = ml_scores.ablation_contributions(linear_score, X)
    # contribution = w * (x - median): medians 120, 1000, 500
    np.testing.assert_allclose(
        contributions["max_transaction_amount"], 0.001 * (X["max_transaction_amount"] - 120.0)
    )
    np.testing.assert_allclose(contributions["total_spend"], 0.0001 * (X["total_spend"] - 1000))
    np.testing.assert_allclose(
        contributions["customer_tenure_days"], -0.002 * (X["customer_tenure_days"] - 500.0)
    )
    untouched = [
        c
        for c in FEATURE_COLUMNS
        if c not in {"max_transaction_amount", "total_spend", "customer_tenure_days"}
    ]
    assert (contributions[untouched] == 0).all().all()


def test_reason_codes_rank_positive_contributions_with_details() -> None:
    X = hand_built()
    reasons = reason_codes.reason_codes(ml_scores.ablation_contributions(linear_score, X), X)
    extreme = reasons.iloc[4]
    # 0.001 * 4830 = 4.83 > -0.002 * (10 - 500) = 0.98 > 0.0001 * 600 = 0.06
    assert extreme["reason_1"] == "max_transaction_amount"
    assert extreme["reason_2"] == "customer_tenure_days"
    assert extreme["reason_3"] == "total_spend"
    assert extreme["reason_1_detail"] == (
        "max_transaction_amount = 4,950.00 vs population median 120.00 (90th percentile)"
    )
    assert extreme["reason_2_detail"] == (
        "customer_tenure_days = 10 vs population median 500 (10th percentile)"
    )
    # customer 2 sits on every median: nothing pushes it towards anomalous
    assert reasons.iloc[2][["reason_1", "reason_2", "reason_3"]].isna().all()
    # customer 0: only the short tenure (400 < 500) pushes it up; a smaller max amount does not
    assert reasons.iloc[0]["reason_1"] == "customer_tenure_days"
    assert pd.isna(reasons.iloc[0]["reason_2"])


def test_ablation_with_a_real_isolation_forest_finds_the_planted_outlier() -> None:
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(0.0, 1.0, size=(500, 16)), columns=list(FEATURE_COLUMNS))
    X.loc[7, "high_value_transaction_rate"] = 12.0
    pipe = Pipeline([("scaler", StandardScaler()), ("model", IsolationForest(random_state=0))])
    pipe.fit(X)
    score_fn = ml_scores.score_function(pipe)
    reasons = reason_codes.reason_codes(ml_scores.ablation_contributions(score_fn, X), X)
    assert reasons.loc[7, "reason_1"] == "high_value_transaction_rate"
    assert "(99.9th percentile)" in reasons.loc[7, "reason_1_detail"]


def test_ordinal_percentiles() -> None:
    assert reason_codes.format_reason_detail("total_spend", 1234.5, 10, 1.0).endswith(
        "(1st percentile)"
    )
    assert reason_codes.format_reason_detail("total_spend", 1, 1, 22.0).endswith(
        "(22nd percentile)"
    )
    assert reason_codes.format_reason_detail("total_spend", 1, 1, 13.0).endswith(
        "(13th percentile)"
    )
    assert reason_codes.format_reason_detail("total_spend", 1, 1, 99.74).endswith(
        "(99.7th percentile)"
    )


def test_score_customers_columns_and_single_batch_timestamp() -> None:
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.lognormal(size=(200, 16)), columns=list(FEATURE_COLUMNS))
    pipe = Pipeline([("scaler", StandardScaler()), ("model", IsolationForest(random_state=0))])
    pipe.fit(X)
    features = X.copy()
    features.insert(0, "customer_id", [f"C{i}" for i in range(200)])
    model = registry.SelectedVersion(IF, 3, "run-1", None, registry.SELECTION_FALLBACK)

    out = batch.score_customers(features, pipe, model, "batch-1").scores

    assert tuple(out.columns) == batch.SCORES_COLUMNS
    assert len(out) == 200 and out["customer_id"].is_unique
    assert out["scored_at"].nunique() == 1
    assert out["fraud_probability"].isna().all()
    assert set(out["risk_band"]) <= set(ml_scores.RISK_BANDS)
    assert out["confidence"].between(0, 1).all()
    assert (out["model_version"] == 3).all() and (out["scoring_batch_id"] == "batch-1").all()
    np.testing.assert_array_equal(out["is_anomaly"], pipe.predict(X) == -1)


def _customers(n: int = 300, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.lognormal(size=(n, 16)), columns=list(FEATURE_COLUMNS))
    features = X.copy()
    features.insert(0, "customer_id", [f"C{i}" for i in range(n)])
    return X, features


def test_fast_scoring_model_gives_the_pipelines_scores_and_reasons() -> None:
    from ml.scoring.fast_evaluator.scorer import FastScorer

    X, features = _customers()
    pipe = Pipeline([("scaler", StandardScaler()), ("model", IsolationForest(random_state=0))])
    pipe.fit(X)
    fast = batch.fast_scoring_model(pipe, X)
    assert isinstance(fast, FastScorer)
    model = registry.SelectedVersion(IF, 1, "run-1", None, registry.SELECTION_FALLBACK)
    at = datetime(2026, 1, 1)
    expected = batch.score_customers(features, pipe, model, "b", at)
    got = batch.score_customers(features, fast, model, "b", at)
    pd.testing.assert_frame_equal(got.scores, expected.scores)
    pd.testing.assert_frame_equal(got.contributions, expected.contributions)


def test_fast_scoring_model_falls_back_to_the_pipeline_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    X, _ = _customers()
    y = (X["total_spend"] > X["total_spend"].median()).astype(int)
    unsupported = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression())])
    unsupported.fit(X, y)
    with caplog.at_level(logging.WARNING, logger="ml.scoring"):
        assert batch.fast_scoring_model(unsupported, X) is unsupported
    assert "does not support" in caplog.text

    pipe = Pipeline([("scaler", StandardScaler()), ("model", IsolationForest(random_state=0))])
    pipe.fit(X)

    def disagree(*args: Any, **kwargs: Any) -> None:
        raise kernels.MismatchError("differs by 0.5")

    monkeypatch.setattr(scorer, "verify", disagree)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ml.scoring"):
        assert batch.fast_scoring_model(pipe, X) is pipe
    assert "disagrees" in caplog.text and "first 300 rows" in caplog.text


# --------------------------------------------------------------------------- model resolution


@dataclass
class FakeVersion:
    name: str
    version: str
    run_id: str


class FakeClient:
    """Registry double: {name: {version: alias list}}; ``broken`` raises like a dead server."""

    def __init__(self, models: dict[str, dict[int, list[str]]], broken: bool = False) -> None:
        self.models = models
        self.broken = broken

    def _check(self) -> None:
        if self.broken:
            raise ConnectionError("connection refused")

    def get_model_version_by_alias(self, name: str, alias: str) -> FakeVersion:
        self._check()
        for version, aliases in self.models.get(name, {}).items():
            if alias in aliases:
                return FakeVersion(name, str(version), f"run-{name[-6:]}-{version}")
        raise MlflowException(f"alias {alias} not found", error_code=INVALID_PARAMETER_VALUE)

    def search_model_versions(self, filter_string: str) -> list[FakeVersion]:
        self._check()
        name = filter_string.split("'")[1]
        return [FakeVersion(name, str(v), f"run-{v}") for v in self.models.get(name, {})]

    def get_model_version(self, name: str, version: str) -> FakeVersion:
        self._check()
        if int(version) not in self.models.get(name, {}):
            raise MlflowException("not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return FakeVersion(name, version, f"run-{version}")


def settings(**kwargs: Any) -> selection.ScoringSettings:
    return selection.ScoringSettings(**kwargs)


def test_first_name_with_the_alias_wins() -> None:
    client = FakeClient({RF: {1: [], 2: ["champion"]}, IF: {4: ["champion"]}})
    resolved = selection.resolve_scoring_model(settings(), client)
    assert (resolved.name, resolved.version, resolved.selection) == (RF, 2, "alias")
    assert resolved.alias == "champion"

    client = FakeClient({RF: {1: []}, IF: {4: ["champion"], 5: []}})
    resolved = selection.resolve_scoring_model(settings(), client)
    assert (resolved.name, resolved.version) == (IF, 4)


def test_fallback_to_latest_isolation_forest_on_allowed_targets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FakeClient({RF: {1: []}, IF: {1: [], 3: [], 2: []}})
    with caplog.at_level(logging.WARNING, logger="ml.scoring"):
        resolved = selection.resolve_scoring_model(settings(target="test"), client)
    assert (resolved.name, resolved.version) == (IF, 3)
    assert resolved.selection == "fallback_latest_unvalidated"
    assert resolved.alias is None
    assert "UNVALIDATED" in caplog.text and IF in caplog.text


def test_no_alias_on_a_strict_target_is_an_error_naming_models_and_alias() -> None:
    client = FakeClient({RF: {1: []}, IF: {1: []}})
    with pytest.raises(selection.ModelResolutionError) as info:
        selection.resolve_scoring_model(settings(target="prod", alias="champion"), client)
    message = str(info.value)
    assert "'champion'" in message and RF in message and IF in message and "'prod'" in message


def test_fallback_needs_a_version() -> None:
    with pytest.raises(selection.ModelResolutionError, match="has no registered version"):
        selection.resolve_scoring_model(settings(target="local"), FakeClient({}))


def test_pinned_version() -> None:
    client = FakeClient({IF: {1: [], 2: ["champion"]}})
    resolved = selection.resolve_scoring_model(
        settings(model_names=(IF,), pinned_version=1, target="prod"), client
    )
    assert (resolved.version, resolved.selection, resolved.alias) == (1, "pinned_version", None)
    with pytest.raises(selection.ModelResolutionError, match=r"version 9 .*does not exist"):
        selection.resolve_scoring_model(settings(model_names=(IF,), pinned_version=9), client)
    with pytest.raises(selection.ModelResolutionError, match="pins a version of ONE model"):
        selection.resolve_scoring_model(settings(pinned_version=1), client)


def test_unreachable_registry_names_model_and_alias() -> None:
    with pytest.raises(selection.ModelResolutionError) as info:
        selection.resolve_scoring_model(settings(), FakeClient({}, broken=True))
    assert f"{RF}@champion" in str(info.value) and "connection refused" in str(info.value)


def test_settings_from_dbt_vars() -> None:
    parsed = selection.ScoringSettings.from_mapping(
        {
            "scoring_model_names": "isolation_forest, b",
            "scoring_alias": None,
            "scoring_model_version": "4",
            "unvalidated_fallback_targets": [],
        },
        target="ci",
    )
    assert parsed.model_names == (IF, "b")
    assert parsed.alias == "champion" and parsed.pinned_version == 4
    assert parsed.fallback_targets == () and parsed.target == "ci"
    default = selection.ScoringSettings.from_mapping({}, target="local")
    assert default.model_names == (RF, IF) and default.fallback_targets == ("local", "test")


# ---------------------------------------------------------------------------------- audit log


def scores_frame(batch: str = "b1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "anomaly_score": [0.7, 0.3],
            "is_anomaly": [True, False],
            "confidence": [0.4, 0.5],
            "risk_band": ["high", "low"],
            "model_name": [IF, IF],
            "model_version": [2, 2],
            "model_alias": [None, None],
            "selection": ["alias", "alias"],
            "scored_at": [datetime(2026, 11, 1, 12)] * 2,
            "scoring_batch_id": [batch, batch],
        }
    )


def test_prediction_ids_are_deterministic_and_distinct() -> None:
    first = prediction_log.prediction_log_rows(scores_frame(), "inv-1")
    again = prediction_log.prediction_log_rows(scores_frame(), "inv-2")
    other_batch = prediction_log.prediction_log_rows(scores_frame("b2"), "inv-2")
    assert first["prediction_id"].tolist() == again["prediction_id"].tolist()
    assert first["prediction_id"].is_unique
    assert set(first["prediction_id"]).isdisjoint(other_batch["prediction_id"])
    assert tuple(first.columns) == prediction_log.AUDIT_COLUMNS
    assert first["score"].tolist() == [0.7, 0.3]
    assert (first["prediction_timestamp"] == pd.Timestamp("2026-11-01 12:00")).all()


def test_not_yet_logged_keeps_only_new_ids() -> None:
    rows = prediction_log.prediction_log_rows(scores_frame(), "inv")
    assert prediction_log.not_yet_logged(rows, rows["prediction_id"].tolist()).empty
    kept = prediction_log.not_yet_logged(rows, rows["prediction_id"].tolist()[:1])
    assert kept["customer_id"].tolist() == ["C2"]
    assert prediction_log.sql_string_list(["a", "o'k"]) == "'a', 'o''k'"
