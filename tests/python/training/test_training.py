"""Training: pure functions (metrics, label-threshold rule, params, SMOTE) and the two
orchestration functions against a throw-away MLflow registry, including loading the registered
models in a fresh Python process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT_ROOT

from ml import registry, scores
from ml.features import FEATURE_COLUMNS
from ml.training.customer_models import isolation_forest as if_training
from ml.training.customer_models import params as training_params
from ml.training.customer_models import random_forest as rf_training
from ml.training.customer_models import steps

Synthetic = Callable[..., tuple[pd.DataFrame, pd.DataFrame]]


# ---------------------------------------------------------------------------- pure functions


def test_evaluation_metrics_on_a_known_case() -> None:
    y_true = [True, True, False, False, False, False]
    y_pred = [True, False, True, False, False, False]
    scores = [0.9, 0.4, 0.8, 0.3, 0.2, 0.1]
    metrics = steps.evaluation_metrics(y_true, y_pred, scores)
    assert set(metrics) == set(training_params.EVALUATION_METRICS)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(0.5)
    # positives ranked 1st and 3rd of 6: 7 of the 8 positive/negative pairs are ordered right
    assert metrics["roc_auc"] == pytest.approx(7 / 8)
    assert metrics["average_precision"] == pytest.approx((1 + 2 / 3) / 2)


def test_metrics_with_one_class_leave_ranking_metrics_undefined() -> None:
    metrics = steps.evaluation_metrics([False] * 3, [False, True, False], [0.1, 0.9, 0.2])
    assert metrics["roc_auc"] is None and metrics["average_precision"] is None
    assert metrics["precision"] == 0.0 and metrics["recall"] == 0.0


def test_label_threshold_rule() -> None:
    assert steps.rf_training_decision(100, 100) is None
    assert steps.rf_training_decision(250, 100) is None
    reason = steps.rf_training_decision(99, 100)
    assert reason is not None
    assert "only 99 fraudulent" in reason and "at least 100" in reason
    assert "rf_min_fraud_customers" in reason


def _previous_run(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "run_id": "r1",
        "model_version": 3,
        "trained_at": pd.Timestamp("2026-11-20 10:00:00"),
        "as_of_date": pd.Timestamp("2026-11-20"),
        "training_data_fingerprint": "data-a",
        "training_config_fingerprint": "config-a",
        "n_transactions": 1_000_000,
        "n_customers": 40_000,
    }
    row.update(overrides)
    return row


def _decide(previous: dict[str, object] | None, **overrides: object) -> str | None:
    values: dict[str, object] = {
        "data_fingerprint": "data-b",
        "config_fingerprint": "config-a",
        "n_transactions": 1_010_000,
        "n_customers": 40_000,
        "as_of": date(2026, 11, 21),
        "policy": training_params.RetrainPolicy(),
    }
    values.update(overrides)
    return steps.retraining_decision(previous, **values)  # type: ignore[arg-type]


def test_retrain_policy_keeps_the_model_for_a_small_change() -> None:
    reason = _decide(_previous_run())
    assert reason is not None
    assert (
        "changed by 1.00% since run r1 (version 3), 1 day(s) of data before as_of_date 2026-11-21"
        in reason
    )
    assert "retrain_min_data_change 5%" in reason and "retrain_mode: always" in reason
    unchanged = _decide(_previous_run(), data_fingerprint="data-a")
    assert unchanged == "training data unchanged since run r1 (version 3)"


@pytest.mark.parametrize(
    ("previous", "overrides"),
    [
        (None, {}),  # first training
        (_previous_run(), {"n_transactions": 1_050_000}),  # 5 % more transactions
        (_previous_run(), {"n_transactions": 940_000}),  # 6 % fewer
        (_previous_run(), {"n_customers": 42_000}),  # 5 % more customers
        (_previous_run(), {"config_fingerprint": "config-b"}),  # parameters changed
        (_previous_run(training_config_fingerprint=None), {}),  # row from before the column
        (_previous_run(n_transactions=None), {}),  # no count to compare with
        (_previous_run(), {"as_of": date(2026, 11, 28)}),  # data 8 days newer
        (_previous_run(as_of_date=None), {}),  # row from before the as_of_date column
        (_previous_run(), {"as_of": None}),  # the build's data clock unknown
        (_previous_run(), {"policy": training_params.RetrainPolicy(mode="always")}),
        (
            _previous_run(),
            {"data_fingerprint": "data-a", "policy": training_params.RetrainPolicy(mode="always")},
        ),
        (_previous_run(), {"policy": training_params.RetrainPolicy(min_data_change=0.01)}),
    ],
)
def test_retrain_policy_retrains(
    previous: dict[str, object] | None, overrides: dict[str, object]
) -> None:
    assert _decide(previous, **overrides) is None


def test_retrain_age_is_the_data_clock_not_the_wall_clock() -> None:
    """Replaying history (as_of_date before the last training's) or a wall clock far ahead
    changes nothing: only the distance between the two as_of_date values counts."""
    assert _decide(_previous_run(), as_of=date(2018, 8, 1)) is not None
    assert _decide(_previous_run(trained_at=pd.Timestamp("2020-01-01")), as_of=date(2026, 11, 27))
    assert _decide(_previous_run(), as_of=date(2026, 11, 27)) is not None  # 7 days: kept
    assert _decide(_previous_run(), as_of=date(2026, 11, 28)) is None  # 8 days: retrained


@pytest.mark.parametrize("previous", [_previous_run(), None])
def test_retrain_mode_never_freezes_the_models(previous: dict[str, object] | None) -> None:
    never = training_params.RetrainPolicy(mode="never")
    reason = _decide(previous, config_fingerprint="config-b", as_of=date(2027, 6, 1), policy=never)
    assert reason is not None and reason.startswith("retrain_mode never: models are frozen")
    if previous is not None:
        assert "run r1 (version 3) stays in use" in reason


def test_as_of_date_var_is_an_iso_date() -> None:
    assert training_params.as_of_date_var("2018-08-01") == date(2018, 8, 1)
    assert training_params.as_of_date_var(date(2018, 8, 1)) == date(2018, 8, 1)
    assert training_params.as_of_date_var(None) is None
    for bad in ("20180801", "2018-02-30", "2018-08-01') or ('1'='1", "yesterday"):
        with pytest.raises(ValueError, match="dbt var as_of_date must be an ISO date"):
            training_params.as_of_date_var(bad)


def test_retrain_policy_from_dbt_vars_and_bad_values() -> None:
    policy = training_params.RetrainPolicy.from_mapping(
        {"retrain_mode": "always", "retrain_min_data_change": "0.1", "retrain_max_age_days": None}
    )
    assert policy == training_params.RetrainPolicy(
        mode="always", min_data_change=0.1, max_age_days=7.0
    )
    assert training_params.RetrainPolicy.from_mapping({"retrain_mode": "never"}).mode == "never"
    with pytest.raises(
        ValueError, match="dbt var retrain_mode must be one of auto, always, never; got 'sometimes'"
    ):
        training_params.RetrainPolicy.from_mapping({"retrain_mode": "sometimes"})
    with pytest.raises(ValueError, match=">= 0"):
        training_params.RetrainPolicy(min_data_change=-1)


def test_config_fingerprint_follows_the_parameters() -> None:
    base = training_params.IsolationForestParams()
    assert steps.training_config_fingerprint(base) == steps.training_config_fingerprint(
        training_params.IsolationForestParams()
    )
    assert steps.training_config_fingerprint(base) != steps.training_config_fingerprint(
        training_params.IsolationForestParams(n_estimators=201)
    )


def test_params_from_dbt_vars() -> None:
    params = training_params.IsolationForestParams.from_mapping(
        {"if_contamination": "0.05", "if_n_estimators": "50", "if_max_samples": "auto", "x": 1}
    )
    assert params.contamination == 0.05 and params.n_estimators == 50
    assert params.max_samples == "auto" and params.random_state == 42
    defaults = training_params.IsolationForestParams.from_mapping({"if_contamination": None})
    assert defaults == training_params.IsolationForestParams()
    assert defaults.contamination == 0.01 and defaults.n_estimators == 200

    rf = training_params.RandomForestParams.from_mapping(
        {"rf_min_fraud_customers": 5, "rf_max_depth": 4}
    )
    assert rf.min_fraud_customers == 5 and rf.max_depth == 4
    assert (rf.n_estimators, rf.min_samples_split, rf.min_samples_leaf) == (200, 5, 2)
    assert (rf.class_weight, rf.random_state, rf.test_size) == ("balanced", 42, 0.3)


def test_labels_join_and_default_to_not_fraudulent() -> None:
    features = pd.DataFrame({"customer_id": ["A", "B", "C"]}, index=[10, 11, 12])
    labels = pd.DataFrame({"customer_id": ["B", "A"], "is_fraudulent": [True, False]})
    joined = steps.join_labels(features, labels)
    assert joined.tolist() == [False, True, False]
    assert joined.index.tolist() == [10, 11, 12]


def test_smote_balances_and_caps_k_for_small_minorities() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    y = np.array([1] * 4 + [0] * 46)
    X_res, y_res, k = steps.smote_resample(X, y, k_neighbors=5, random_state=0)
    assert k == 3
    assert y_res.sum() == 46 and len(y_res) == 92
    np.testing.assert_array_equal(X_res[:50], X)  # originals first, synthetic rows appended
    _, y_same, k_none = steps.smote_resample(X, np.array([1] + [0] * 49), 5, 0)
    assert k_none == 0 and y_same.sum() == 1


def test_training_run_row_schema_is_fixed() -> None:
    row = steps.training_run_row(status="skipped", model_name="m", n_customers=3)
    assert list(row.columns) == list(training_params.TRAINING_RUN_SCHEMA)
    assert row.loc[0, "status"] == "skipped"
    assert pd.isna(row.loc[0, "model_version"]) and pd.isna(row.loc[0, "f1"])
    assert str(row["trained_at"].dtype) == "datetime64[us]"


# ----------------------------------------------------------------------------- orchestration


def test_random_forest_is_skipped_without_enough_labels(
    synthetic_customers: Synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlflow_dir = tmp_path / "never-created"
    monkeypatch.setenv("FRAUD_MLFLOW_DIR", str(mlflow_dir))
    features, labels = synthetic_customers(200, 8)

    row = rf_training.train_random_forest(
        features,
        labels,
        training_params.RandomForestParams(min_fraud_customers=100),
        training_params.TrainingContext(dbt_invocation_id="inv-skip"),
    )

    record = row.iloc[0]
    assert record["status"] == "skipped"
    assert "only 8 fraudulent customer(s)" in record["skip_reason"]
    assert pd.isna(record["run_id"]) and pd.isna(record["model_version"])
    assert pd.isna(record["precision"])
    assert record["n_fraud_customers"] == 8 and record["dbt_invocation_id"] == "inv-skip"
    assert not mlflow_dir.exists()  # nothing logged, nothing registered


def _artifact_paths(client: mlflow.MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for entry in client.list_artifacts(run_id, path):
        found.add(entry.path)
        if entry.is_dir:
            found |= _artifact_paths(client, run_id, entry.path)
    return found


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Both models trained once on synthetic data into a module-private MLflow folder."""
    from conftest import make_synthetic_customers

    mlflow_dir = tmp_path_factory.mktemp("training-mlflow")
    features, labels = make_synthetic_customers(600, 40, seed=3)
    context = training_params.TrainingContext(
        dbt_invocation_id="inv-test",
        dbt_target="unit",
        input_relations=("fraud.gold.transaction_features", "fraud.gold.customer_fraud_labels"),
        tracking_uri=f"sqlite:///{mlflow_dir / 'mlflow.db'}",
    )
    with pytest.MonkeyPatch.context() as patch:
        # the local store's artifact folder follows FRAUD_MLFLOW_DIR (ml/registry.py)
        patch.setenv("FRAUD_MLFLOW_DIR", str(mlflow_dir))
        iso = if_training.train_isolation_forest(
            features, labels, training_params.IsolationForestParams(n_estimators=50), context
        )
        forest = rf_training.train_random_forest(
            features,
            labels,
            training_params.RandomForestParams(n_estimators=30, min_fraud_customers=10),
            context,
        )
        yield mlflow_dir, features, iso, forest


def test_trained_rows_and_registry(trained: tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame]):
    mlflow_dir, features, iso, forest = trained
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{mlflow_dir / 'mlflow.db'}")
    for row, name in (
        (iso, registry.ISOLATION_FOREST_MODEL),
        (forest, registry.RANDOM_FOREST_MODEL),
    ):
        record = row.iloc[0]
        assert record["status"] == "trained" and record["model_name"] == name
        assert record["model_version"] == 1
        for key in training_params.EVALUATION_METRICS:
            assert 0.0 <= record[key] <= 1.0, key
        run = client.get_run(record["run_id"])
        assert set(training_params.EVALUATION_METRICS) <= set(run.data.metrics)
        tags = run.data.tags
        assert tags["dbt_invocation_id"] == "inv-test" and tags["dbt_target"] == "unit"
        assert tags["input_relations"] == (
            "fraud.gold.transaction_features,fraud.gold.customer_fraud_labels"
        )
        assert tags["training_data_fingerprint"] == record["training_data_fingerprint"]
        assert tags["git_commit"]
        version = client.get_model_version(name, "1")
        assert version.run_id == record["run_id"]
        assert version.tags["training_data_fingerprint"] == record["training_data_fingerprint"]
    assert iso.iloc[0]["n_anomalies_detected"] == round(0.01 * len(features))
    assert forest.iloc[0]["n_test"] == 180 and forest.iloc[0]["evaluation_set"] == (
        "holdout_test_split"
    )
    # planted fraud is easy: the supervised model must find it
    assert forest.iloc[0]["roc_auc"] > 0.9


def test_required_artifacts_and_reference(
    trained: tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    mlflow_dir, features, iso, forest = trained
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{mlflow_dir / 'mlflow.db'}")
    iso_paths = _artifact_paths(client, iso.iloc[0]["run_id"])
    rf_paths = _artifact_paths(client, forest.iloc[0]["run_id"])
    common = {
        registry.CLASSIFICATION_REPORT_ARTIFACT,
        registry.SCALER_ARTIFACT_PATH,
        registry.REFERENCE_ARTIFACT_PATH,
        "plots/confusion_matrix.png",
        "plots/feature_importance.png",
    }
    assert common <= iso_paths
    assert common <= rf_paths
    assert {
        "plots/feature_correlations.png",
        "plots/anomaly_score_distribution.png",
        "plots/anomalous_vs_normal_features.png",
        registry.TOP_ANOMALIES_ARTIFACT,
    } <= iso_paths

    local = Path(client.download_artifacts(iso.iloc[0]["run_id"], registry.REFERENCE_ARTIFACT_PATH))
    reference = pd.read_parquet(local)
    assert list(reference.columns) == [*FEATURE_COLUMNS, "anomaly_score"]
    assert len(reference) == len(features)
    # same definition as gold.fraud_scores.anomaly_score for this model version
    mlflow.set_registry_uri(f"sqlite:///{mlflow_dir / 'mlflow.db'}")
    pipeline = mlflow.sklearn.load_model(f"models:/{registry.ISOLATION_FOREST_MODEL}/1")
    expected = scores.score_function(pipeline)(reference[list(FEATURE_COLUMNS)])
    np.testing.assert_allclose(reference["anomaly_score"], expected)

    report = Path(
        client.download_artifacts(iso.iloc[0]["run_id"], registry.CLASSIFICATION_REPORT_ARTIFACT)
    ).read_text()
    assert "fraudulent" in report and "precision" in report


FRESH_PROCESS_LOAD = textwrap.dedent(
    """
    import json, sys
    import mlflow, mlflow.pyfunc, mlflow.sklearn
    import pandas as pd
    uri, names, rows = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    X = pd.DataFrame(rows)
    out = {}
    for name in names:
        model = mlflow.sklearn.load_model(f"models:/{name}/1")
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/1")
        out[name] = {
            "sklearn": [float(v) for v in model.predict(X)],
            "pyfunc": [float(v) for v in pyfunc.predict(X)],
        }
    print(json.dumps(out))
    """
)


def test_registered_models_load_in_a_fresh_process(
    trained: tuple[Path, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    mlflow_dir, features, _, _ = trained
    X = features[list(FEATURE_COLUMNS)].head(20)
    names = [registry.ISOLATION_FOREST_MODEL, registry.RANDOM_FOREST_MODEL]
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS_LOAD,
            f"sqlite:///{mlflow_dir / 'mlflow.db'}",
            json.dumps(names),
            X.to_json(orient="records"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    predictions = json.loads(result.stdout.strip().splitlines()[-1])
    mlflow.set_registry_uri(f"sqlite:///{mlflow_dir / 'mlflow.db'}")
    for name in names:
        in_process = mlflow.sklearn.load_model(f"models:/{name}/1").predict(X)
        assert predictions[name]["sklearn"] == [float(v) for v in in_process]
        assert predictions[name]["pyfunc"] == predictions[name]["sklearn"]
