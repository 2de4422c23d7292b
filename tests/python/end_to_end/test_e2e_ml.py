"""End to end on the small dataset: ``dbt build --target test`` (the session fixture
``small_build`` of conftest.py), then promotion by alias, rescoring, the append-only audit log
and the failure path of a target without the first-run fallback.

The tests run in file order and build on each other (one registry, one warehouse):
first build → set ``champion`` → ``dbt build --select fraud_scores+`` → ``dbt run --select
model_predictions`` → a failing scoring run. The alias is removed again at the end (the
session build is shared, see conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import PROJECT_ROOT, DbtProject

from ml import registry
from ml.features import FEATURE_COLUMNS

pytestmark = pytest.mark.e2e

RF = registry.RANDOM_FOREST_MODEL
IF = registry.ISOLATION_FOREST_MODEL
MONITORING_QUERY = """
    SELECT model_name, model_version, date_trunc('day', prediction_timestamp) d, count(*),
           avg(case when is_anomaly then 1 else 0 end), avg(confidence)
    FROM {catalog}.audit.model_predictions GROUP BY all
"""


@pytest.fixture(scope="module")
def build(small_build: DbtProject) -> Iterator[DbtProject]:
    yield small_build
    client = small_build.mlflow_client()
    for name in (RF, IF):
        for version in client.search_model_versions(f"name = '{name}'"):
            if registry.CHAMPION_ALIAS in version.aliases:
                client.delete_registered_model_alias(name, registry.CHAMPION_ALIAS)


def catalog(build: DbtProject) -> str:
    return str(build.query("select current_database() as c")["c"].iloc[0])


def artifact_paths(client: Any, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for entry in client.list_artifacts(run_id, path):
        found.add(entry.path)
        if entry.is_dir:
            found |= artifact_paths(client, run_id, entry.path)
    return found


def test_both_models_trained_and_registered(build: DbtProject) -> None:
    client = build.mlflow_client()
    for table, name in (
        ("isolation_forest_training_runs", IF),
        ("random_forest_training_runs", RF),
    ):
        runs = build.query(
            f"select * from ml_models.{table} where status = 'trained' order by trained_at"
        )
        assert len(runs) >= 1, table  # one per build of the shared project
        row = runs.iloc[-1]
        assert row["status"] == "trained" and row["model_name"] == name
        assert 0 <= row["f1"] <= 1 and 0 <= row["roc_auc"] <= 1
        latest = registry.latest_version(name, client)
        assert latest is not None and int(latest.version) == int(row["model_version"])
        tags = client.get_run(row["run_id"]).data.tags
        assert tags["dbt_invocation_id"] == row["dbt_invocation_id"]
        assert tags["dbt_target"] == "test"
        assert tags["training_data_fingerprint"] == row["training_data_fingerprint"]
        assert tags["input_relations"].endswith("gold.customer_fraud_labels")
        assert "gold.transaction_features" in tags["input_relations"]
        assert tags["git_commit"]
    # no stray "<model>__dbt_tmp..." tables left by dbt-duckdb's Python incremental runs
    leftovers = build.query(
        "select table_name from information_schema.tables where table_name like '%dbt_tmp%'"
    )
    assert leftovers.empty, leftovers


def test_required_artifacts_exist(build: DbtProject) -> None:
    client = build.mlflow_client()
    for name in (IF, RF):
        version = registry.latest_version(name, client)
        assert version is not None
        paths = artifact_paths(client, version.run_id)
        for required in (
            registry.CLASSIFICATION_REPORT_ARTIFACT,
            registry.SCALER_ARTIFACT_PATH,
            registry.REFERENCE_ARTIFACT_PATH,
        ):
            assert required in paths, (name, required)
        # the model itself is the MLflow 3 logged model "model" of that run
        models = client.search_logged_models(
            experiment_ids=[client.get_run(version.run_id).info.experiment_id],
            filter_string=f"source_run_id = '{version.run_id}'",
        )
        assert [m.name for m in models] == [registry.MODEL_ARTIFACT_NAME]
        reference = pd.read_parquet(
            client.download_artifacts(version.run_id, registry.REFERENCE_ARTIFACT_PATH)
        )
        assert list(reference.columns) == [*FEATURE_COLUMNS, "anomaly_score"]


def test_registered_models_load_in_a_fresh_process(build: DbtProject) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        import mlflow, mlflow.sklearn
        from ml import registry
        from ml.features import FEATURE_COLUMNS
        import duckdb
        mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_registry_uri(sys.argv[1])
        con = duckdb.connect(sys.argv[2], read_only=True)
        X = con.sql("select * from gold.transaction_features").df()[list(FEATURE_COLUMNS)]
        out = {}
        for name in (registry.ISOLATION_FOREST_MODEL, registry.RANDOM_FOREST_MODEL):
            model = mlflow.sklearn.load_model(f"models:/{name}/1")
            out[name] = int(len(model.predict(X.astype("float64"))))
        print(json.dumps(out))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, build.tracking_uri, str(build.warehouse_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    n = int(build.query("select count(*) n from gold.transaction_features")["n"].iloc[0])
    assert counts == {IF: n, RF: n}


def test_first_build_scores_everyone_with_the_unvalidated_fallback(build: DbtProject) -> None:
    scores = build.query("select * from gold.fraud_scores")
    n = int(build.query("select count(*) n from gold.transaction_features")["n"].iloc[0])
    assert len(scores) == n and scores["customer_id"].is_unique
    assert set(scores["selection"]) == {"fallback_latest_unvalidated"}
    assert set(scores["model_name"]) == {IF}
    assert scores["scored_at"].nunique() == 1 and scores["scoring_batch_id"].nunique() == 1
    assert scores["fraud_probability"].isna().all()
    # the training reference holds exactly the scores of the training snapshot
    client = build.mlflow_client()
    version = registry.latest_version(IF, client)
    assert version is not None
    reference = pd.read_parquet(
        client.download_artifacts(version.run_id, registry.REFERENCE_ARTIFACT_PATH)
    )
    np.testing.assert_allclose(
        np.sort(reference["anomaly_score"]), np.sort(scores["anomaly_score"]), rtol=1e-9
    )

    # the customer rows of the log (gold.transaction_fraud_scores logs its own beside them)
    audit = build.query("select * from audit.model_predictions where entity_type = 'customer'")
    assert len(audit) == len(scores)
    assert set(audit["customer_id"]) == set(scores["customer_id"])
    assert build.query("select * from audit.model_predictions")["prediction_id"].is_unique
    monitoring = build.query(MONITORING_QUERY.format(catalog=catalog(build)))
    customer_model = monitoring[monitoring["model_name"] == IF]
    assert len(customer_model) == 1 and int(customer_model.iloc[0, 3]) == n


def test_champion_rescoring_appends_a_new_batch(build: DbtProject) -> None:
    client = build.mlflow_client()
    before = build.query("select * from audit.model_predictions")
    rf_version = registry.latest_version(RF, client)
    assert rf_version is not None
    client.set_registered_model_alias(RF, registry.CHAMPION_ALIAS, rf_version.version)

    build.run("build", "--select", "fraud_scores+")

    scores = build.query("select * from gold.fraud_scores")
    assert set(scores["selection"]) == {"alias"}
    assert set(scores["model_alias"]) == {registry.CHAMPION_ALIAS}
    assert set(scores["model_name"]) == {RF}
    assert set(scores["model_version"]) == {int(rf_version.version)}
    assert scores["fraud_probability"].between(0, 1).all()
    np.testing.assert_allclose(scores["fraud_probability"], scores["anomaly_score"])

    after = build.query("select * from audit.model_predictions")
    assert len(after) == len(before) + len(scores)
    assert after["prediction_id"].is_unique
    assert after["scoring_batch_id"].nunique() == 2
    # the first batch is kept as it was
    first = after[after["scoring_batch_id"].isin(before["scoring_batch_id"])]
    pd.testing.assert_frame_equal(
        first.sort_values("prediction_id").reset_index(drop=True),
        before.sort_values("prediction_id").reset_index(drop=True),
    )


def test_fraud_metrics_reports_latest_and_champion(build: DbtProject) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ml.validation.metrics_report", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        env=build.env(),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["random_forest"]["role"] == "latest, champion"
    assert rows["isolation_forest"]["role"] == "latest"
    trained = build.query(
        "select * from ml_models.random_forest_training_runs where status = 'trained' "
        "order by trained_at"
    ).iloc[-1]
    for key in ("precision", "recall", "f1", "roc_auc", "average_precision", "accuracy"):
        assert rows["random_forest"][key] == pytest.approx(trained[key]), key
    assert rows["random_forest"]["n_evaluated"] == trained["n_test"]


def test_rerunning_the_audit_model_alone_adds_nothing(build: DbtProject) -> None:
    before = build.query("select count(*) n from audit.model_predictions")["n"].iloc[0]
    build.run("run", "--select", "model_predictions")
    after = build.query("select count(*) n from audit.model_predictions")["n"].iloc[0]
    assert after == before


def test_missing_alias_on_a_strict_target_fails_and_keeps_the_table(build: DbtProject) -> None:
    before = build.query("select * from gold.fraud_scores order by customer_id")
    result = build.run(
        "run",
        "--select",
        "fraud_scores",
        vars={"scoring_alias": "no_such_alias", "unvalidated_fallback_targets": []},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "No model has alias 'no_such_alias'" in output
    assert RF in output and IF in output
    after = build.query("select * from gold.fraud_scores order by customer_id")
    pd.testing.assert_frame_equal(after, before)


def test_rebuilding_unchanged_data_keeps_the_registered_models(build: DbtProject) -> None:
    """The retrain policy: the same features again record a 'skipped' row with the reason and
    register nothing (ml.training.RetrainPolicy; `retrain_mode: always` would retrain)."""
    client = build.mlflow_client()
    tables = {"isolation_forest_training_runs": IF, "random_forest_training_runs": RF}
    before = {name: registry.latest_version(name, client) for name in tables.values()}
    build.run("build", "--select", *tables)
    for table, name in tables.items():
        runs = build.query(f"select * from ml_models.{table} order by trained_at")
        last_trained = runs[runs["status"] == "trained"].iloc[-1]
        row = runs.iloc[-1]
        assert row["status"] == "skipped", row
        assert row["skip_reason"].startswith("training data unchanged since run ")
        assert last_trained["run_id"] in row["skip_reason"]
        assert pd.isna(row["run_id"]) and pd.isna(row["model_version"])
        assert row["training_data_fingerprint"] == last_trained["training_data_fingerprint"]
        assert row["n_transactions"] == last_trained["n_transactions"] > 0
        latest = registry.latest_version(name, client)
        assert latest is not None and before[name] is not None
        assert latest.version == before[name].version, name
