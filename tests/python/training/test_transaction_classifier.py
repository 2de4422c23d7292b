"""The transaction classifier: time split (order, gap, labels known by the cut-off), threshold
chosen without the test window, card precision@k on a hand-computed case, settings, the
saved model's skops types, and one training against a throw-away MLflow registry."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml import transaction_model as tm
from ml.training.customer_models.params import TrainingContext
from ml.training.transaction_model import train as tc
from ml.training.transaction_model.evaluation import card_precision_at_k
from ml.training.transaction_model.params import TransactionClassifierParams, card_precision_k
from ml.training.transaction_model.split import SplitError, known_labels, time_split

START = pd.Timestamp("2026-01-01")
SMALL = {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 5, "min_fraud_transactions": 5}


def synthetic(n: int = 3000, days: int = 60, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    """Features (fraud = large amount on a new device, with noise), labels known 3 days
    after the transaction, ground truth."""
    rng = np.random.default_rng(seed)
    at = START + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    data: dict[str, object] = {c: rng.random(n) for c in tm.NUMERIC_COLUMNS}
    fraud = rng.random(n) < 0.05
    data["amount"] = np.where(fraud, rng.uniform(500, 900, n), rng.uniform(1, 600, n))
    data["is_new_device_30d"] = np.where(fraud, rng.random(n) < 0.8, rng.random(n) < 0.1)
    data["transaction_type"] = rng.choice(list(tm.categories("transaction_type")), n)
    data["merchant_category"] = rng.choice(list(tm.categories("merchant_category")), n)
    features = pd.DataFrame(
        {
            "transaction_id": [f"T{i:05d}" for i in range(n)],
            "customer_id": [f"C{i % 150:03d}" for i in range(n)],
            "merchant_id": [f"M{i % 40:02d}" for i in range(n)],
            "transaction_at": at,
            **data,
        }
    )
    labels = features.loc[fraud, ["transaction_id", "transaction_at"]].assign(
        label_known_at=lambda f: f["transaction_at"] + pd.Timedelta(days=3)
    )
    truth = pd.DataFrame({"transaction_id": features["transaction_id"], "is_fraud": fraud})
    return features.sample(frac=1.0, random_state=seed), labels, truth  # warehouse order


# ---------------------------------------------------------------------------- split


def test_time_split_windows_are_ordered_with_the_gap() -> None:
    at = pd.Series(START + pd.to_timedelta(np.arange(0, 60 * 24), unit="h"))
    params = TransactionClassifierParams(test_days=14, gap_days=7, validation_days=7)
    split = time_split(at, params)
    end = at.max()
    assert split.end == end
    assert split.cutoff == end - pd.Timedelta(days=14)
    assert split.train_end == split.cutoff - pd.Timedelta(days=7)
    assert split.validation_start == split.train_end - pd.Timedelta(days=7)
    windows = split.windows(at)
    order = {"fit": 0, "validation": 1, "gap": 2, "test": 3}
    ranks = windows.map(order)
    assert ranks.is_monotonic_increasing  # time order: fit < validation < gap < test
    assert at[windows == "fit"].max() < split.validation_start
    assert at[windows == "gap"].min() >= split.train_end
    assert at[windows == "test"].min() >= split.cutoff
    gap = at[windows == "test"].min() - at[windows == "validation"].max()
    assert gap >= pd.Timedelta(days=7)


def test_train_days_caps_the_fitting_window() -> None:
    at = pd.Series(START + pd.to_timedelta(np.arange(0, 60 * 24), unit="h"))
    split = time_split(at, TransactionClassifierParams(train_days=10))
    windows = split.windows(at)
    assert (windows == "before").any()
    assert split.train_start == split.train_end - pd.Timedelta(days=10)


def test_too_short_a_span_is_a_clear_error() -> None:
    at = pd.Series(START + pd.to_timedelta(np.arange(0, 20 * 24), unit="h"))
    with pytest.raises(SplitError, match="too short"):
        time_split(at, TransactionClassifierParams())


def test_labels_known_after_the_cutoff_are_not_training_labels() -> None:
    cutoff = pd.Timestamp("2026-02-01")
    ids = pd.Series(["a", "b", "c", "d"])
    labels = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c"],
            "label_known_at": [
                cutoff - pd.Timedelta(days=1),
                cutoff,
                cutoff + pd.Timedelta(seconds=1),
            ],
        }
    )
    assert known_labels(ids, labels, cutoff).tolist() == [True, True, False, False]


def test_prepare_uses_known_labels_for_training_and_ground_truth_for_the_test() -> None:
    features, labels, truth = synthetic()
    params = TransactionClassifierParams(**SMALL)
    prepared = tc.prepare(features, labels, truth, params)
    frame = prepared.frame
    assert frame["transaction_at"].is_monotonic_increasing
    test = frame["window"] == "test"
    assert not frame.loc[test, "label"].any()  # test labels are all known after the cut-off
    assert frame.loc[test, "is_fraud"].any()
    late = labels["label_known_at"] > prepared.split.cutoff
    unknown = frame["transaction_id"].isin(labels.loc[late, "transaction_id"])
    assert not frame.loc[unknown, "label"].any()
    assert frame.loc[~unknown & frame["is_fraud"], "label"].all()


def test_missing_ground_truth_is_an_error() -> None:
    features, labels, truth = synthetic(n=500)
    with pytest.raises(ValueError, match="no is_fraud"):
        tc.prepare(features, labels, truth.iloc[1:], TransactionClassifierParams(**SMALL))


# ---------------------------------------------------------------------------- threshold


def test_threshold_is_chosen_without_the_test_window() -> None:
    features, labels, truth = synthetic()
    params = TransactionClassifierParams(**SMALL)
    prepared = tc.prepare(features, labels, truth, params)
    first = tc.fit_and_evaluate(prepared, params, k=5)
    # flip every ground-truth label of the test window: the threshold does not move, the test
    # metrics do
    flipped = prepared.frame.copy()
    test = flipped["window"] == "test"
    flipped.loc[test, "is_fraud"] = ~flipped.loc[test, "is_fraud"]
    second = tc.fit_and_evaluate(tc.Prepared(flipped, prepared.X, prepared.split), params, 5)
    assert second.threshold == first.threshold
    assert first.threshold_selection == "max_f1_validation"
    assert second.metrics["roc_auc"] == pytest.approx(1 - first.metrics["roc_auc"])
    assert first.metrics["roc_auc"] > 0.8


def test_a_pinned_threshold_is_used_as_is() -> None:
    assert tc.choose_threshold(np.array([0, 1]), np.array([0.1, 0.9]), 0.3) == (0.3, "fixed")
    assert tc.choose_threshold(np.array([0, 1, 0]), np.array([0.1, 0.9, 0.2]), None) == (
        0.9,
        "max_f1_validation",
    )


def test_too_few_labels_give_a_skip_reason() -> None:
    features, labels, truth = synthetic()
    params = TransactionClassifierParams(**{**SMALL, "min_fraud_transactions": 10_000})
    reason = tc.label_guard(tc.prepare(features, labels, truth, params), params)
    assert reason is not None and "tc_min_fraud_transactions" in reason


# ---------------------------------------------------------------------------- card precision


def test_card_precision_at_k_hand_computed() -> None:
    rows = [  # day, card, score, fraud
        (1, "A", 0.90, True),
        (1, "B", 0.80, False),
        (1, "C", 0.10, True),
        (1, "C", 0.85, False),  # C's day score is its max, 0.85; it had a fraud that day
        (2, "A", 0.95, True),  # detected on day 1: dropped
        (2, "B", 0.70, True),
        (2, "C", 0.99, True),  # detected on day 1: dropped
        (2, "D", 0.60, False),
        (2, "E", 0.20, True),
        (3, "A", 0.50, False),  # nothing left to review: the day is left out
        (3, "B", 0.40, False),
        (4, "D", 0.30, False),  # tie with E: card id ascending, D reviewed
        (4, "E", 0.30, True),
        (5, "E", 0.10, True),  # fewer cards than k: 1 of 1
    ]
    day, card, score, fraud = zip(*rows, strict=True)
    # k=2. Day 1: A 0.90, C 0.85 reviewed, both frauds: 2/2; A, C detected. Day 2: B 0.70,
    # D 0.60 reviewed: 1/2; B detected. Day 3: A, B detected: no day. Day 4: D, E: 1/2 (E
    # detected). Day 5: E detected: no day.
    two = card_precision_at_k(day, card, score, fraud, k=2)
    assert two.per_day.set_index("day")["card_precision"].to_dict() == {1: 1.0, 2: 0.5, 4: 0.5}
    assert two.per_day["reviewed"].tolist() == [2, 2, 2]
    assert two.mean == pytest.approx(2 / 3)
    # k=1. Day 1: A (hit). Day 2: C 0.99 was not reviewed on day 1, so it is still in: hit.
    # Day 3: B 0.40 (A dropped): miss. Day 4: D and E tie at 0.30, D first by id: miss.
    # Day 5: E, 1 of 1: hit.
    one = card_precision_at_k(day, card, score, fraud, k=1)
    assert one.per_day["card_precision"].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert one.mean == pytest.approx(3 / 5)


def test_card_precision_rejects_k_below_one() -> None:
    with pytest.raises(ValueError):
        card_precision_at_k([1], ["A"], [0.5], [True], k=0)


# ---------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"tc_family": "xgboost"}, "tc_family"),
        ({"tc_gap_days": "3"}, "tc_gap_days"),  # below the default 7-day label delay
        ({"tc_test_days": 0}, "tc_test_days"),
        ({"tc_train_days": 5}, "tc_train_days"),
        ({"tc_learning_rate": 2}, "tc_learning_rate"),
    ],
)
def test_settings_are_validated(values: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TransactionClassifierParams.from_mapping(values)


def test_settings_from_dbt_vars() -> None:
    params = TransactionClassifierParams.from_mapping(
        {"tc_gap_days": "10", "tc_label_delay_days": "2.5", "tc_family": None}
    )
    assert params.gap_days == 10 and params.label_delay_days == 2.5
    assert params.family == "lightgbm"
    assert card_precision_k({}) == 100 and card_precision_k({"card_precision_k": "50"}) == 50
    with pytest.raises(ValueError, match="card_precision_k"):
        card_precision_k({"card_precision_k": "0"})


# ---------------------------------------------------------------------------- contributions


def test_lightgbm_contributions_are_exact_tree_shap() -> None:
    features, labels, truth = synthetic(n=1500)
    params = TransactionClassifierParams(**SMALL)
    prepared = tc.prepare(features, labels, truth, params)
    evaluation = tc.fit_and_evaluate(prepared, params, 5)
    X = prepared.X.head(50)
    contributions = tm.contributions(evaluation.pipeline, X)
    assert tuple(contributions.columns) == tm.FEATURE_COLUMNS
    booster = tm.classifier_of(evaluation.pipeline).booster_
    matrix = tm.transformed(evaluation.pipeline, X).to_numpy()
    raw = booster.predict(matrix, raw_score=True)
    bias = booster.predict(matrix, pred_contrib=True)[:, -1]
    # TreeSHAP: per-feature contributions + the expected value = the raw margin, row by row
    np.testing.assert_allclose(contributions.sum(axis=1) + bias, raw, rtol=1e-6, atol=1e-9)
    assert contributions["amount"].abs().mean() > contributions["transaction_hour"].abs().mean()


# ---------------------------------------------------------------------------- MLflow


def test_training_registers_a_loadable_pipeline_with_its_artifacts(fresh_mlflow_dir) -> None:
    import mlflow
    import skops.io

    from ml import registry
    from ml.training.transaction_model.families import FAMILY_TRUSTED_TYPES

    features, labels, truth = synthetic()
    params = TransactionClassifierParams(**SMALL)
    # the data's clock: the retrain policy measures the model's age on as_of_date
    context = TrainingContext(as_of_date=date(2026, 11, 1))
    row = tc.train_transaction_classifier(features, labels, truth, params, k=5, context=context)
    assert row.loc[0, "status"] == "trained", row.loc[0, "skip_reason"]
    assert row.loc[0, "as_of_date"] == pd.Timestamp("2026-11-01")
    assert row.loc[0, "model_name"] == "main.ml_models.fraud_detection_transaction_classifier"
    assert list(row.columns) == list(tc.TRAINING_RUN_SCHEMA)
    registry.configure()
    client = mlflow.MlflowClient()
    run = client.get_run(row.loc[0, "run_id"])
    threshold = float(run.data.params["decision_threshold"])
    assert run.data.metrics["decision_threshold"] == pytest.approx(threshold)
    assert "card_precision_at_k" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    for required in ("scaler", "classification_report.txt", "reference", "plots"):
        assert required in artifacts
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="reference")
    reference = pd.read_parquet(f"{local}/training_features.parquet")
    assert set(tm.FEATURE_COLUMNS) | {"fraud_probability"} <= set(reference.columns)
    pipeline = registry.load_sklearn_model(tm.MODEL_NAME, int(row.loc[0, "model_version"]))
    assert list(pipeline.named_steps) == [tm.PREPROCESS_STEP, tm.CLASSIFIER_STEP]
    probability = tm.fraud_probability(pipeline, tm.feature_matrix(features.head(10)))
    assert ((probability >= 0) & (probability <= 1)).all()
    # the saved pipeline needs exactly the trusted types named for its family
    path = fresh_mlflow_dir / "probe.skops"
    skops.io.dump(pipeline, path)
    assert set(skops.io.get_untrusted_types(file=path)) <= set(FAMILY_TRUSTED_TYPES["lightgbm"])
    # identical data and settings: the retrain policy keeps the registered version
    again = tc.train_transaction_classifier(
        features, labels, truth, params, k=5, context=context, previous=row.iloc[0].to_dict()
    )
    assert again.loc[0, "status"] == "skipped"
    assert "unchanged" in again.loc[0, "skip_reason"]


def test_a_span_too_short_is_a_skipped_row_not_a_crash(fresh_mlflow_dir) -> None:
    features, labels, truth = synthetic(n=300, days=10)
    row = tc.train_transaction_classifier(features, labels, truth, TransactionClassifierParams())
    assert row.loc[0, "status"] == "skipped"
    assert "too short" in row.loc[0, "skip_reason"]
