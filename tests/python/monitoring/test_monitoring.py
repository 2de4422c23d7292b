"""fraud-monitor on a real DuckDB warehouse and a real sqlite MLflow registry in tmp_path."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import cli_env
from sklearn.ensemble import IsolationForest

from ml import registry, settings
from ml.monitoring import cli as monitoring_cli
from ml.monitoring import statistics as drift_stats
from ml.monitoring.statistics import FEATURES

RF = registry.RANDOM_FOREST_MODEL
IF = registry.ISOLATION_FOREST_MODEL
LAST_DAY = datetime(2026, 10, 31, 6, 0, 0)


# -- statistics with known answers ----------------------------------------------------------


def test_psi_of_identical_distributions_is_zero() -> None:
    values = np.random.default_rng(1).lognormal(size=2_000)
    assert drift_stats.psi(values, values) == pytest.approx(0.0, abs=1e-12)
    assert drift_stats.psi(values, values.copy()[::-1]) == pytest.approx(0.0, abs=1e-12)


def test_psi_hand_computed() -> None:
    reference = np.arange(100.0)  # deciles 9.9, 19.8, ...: ten bins of exactly 10 values
    edges = drift_stats.quantile_edges(reference, 10)
    assert len(edges) == 9
    assert drift_stats.bin_shares(reference, edges) == pytest.approx([0.1] * 10)
    # current shares: 0.15, 0.05, then 0.10 x 8
    current = np.concatenate(
        [np.full(15, 3.0), np.full(5, 15.0), np.repeat(np.arange(2, 10) * 10 + 5.0, 10)]
    )
    expected = 0.05 * math.log(1.5) + (-0.05) * math.log(0.5)  # 0.0549306...
    assert drift_stats.psi(reference, current) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.0549306, abs=1e-7)


def test_psi_empty_bins_use_epsilon() -> None:
    reference = np.arange(100.0)
    current = np.zeros(50)  # everything in the first bin, nine bins empty
    eps = 1e-4
    expected = (1 - 0.1) * math.log(1 / 0.1) + 9 * (eps - 0.1) * math.log(eps / 0.1)
    assert drift_stats.psi(reference, current, epsilon=eps) == pytest.approx(expected, rel=1e-9)
    assert math.isfinite(expected) and expected > 8


def test_psi_with_tied_quantiles_merges_bins() -> None:
    reference = np.array([0.0] * 70 + list(range(1, 31)), dtype=float)
    edges = drift_stats.quantile_edges(reference, 10)
    assert edges[0] == 0.0 and len(edges) < 9
    assert drift_stats.psi(reference, reference) == pytest.approx(0.0, abs=1e-12)


def test_ks_statistic() -> None:
    assert drift_stats.ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert drift_stats.ks_statistic([1, 2, 3], [10, 11]) == 1.0
    assert drift_stats.ks_statistic([1, 2, 3], [2, 3, 4]) == pytest.approx(1 / 3)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[IsolationForest, Path, pd.DataFrame]:
    """A real isolation forest, saved once as an MLflow model, and its training reference."""
    training = feature_frame(400, seed=1)
    model = IsolationForest(n_estimators=20, random_state=0).fit(training[list(FEATURES)])
    training["anomaly_score"] = -model.score_samples(training[list(FEATURES)])
    saved = tmp_path_factory.mktemp("iforest") / "model"
    mlflow.sklearn.save_model(
        model, str(saved), serialization_format="cloudpickle", pip_requirements=[]
    )
    return model, saved, training.drop(columns="customer_id")


def feature_frame(rows: int, seed: int, scale: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {
        name: rng.lognormal(mean=1.0 + i / 8, sigma=0.5, size=rows)
        for i, name in enumerate(FEATURES)
    }
    frame = pd.DataFrame(data)
    for name, factor in (scale or {}).items():
        frame[name] = frame[name] * factor
    frame.insert(0, "customer_id", [f"C{seed}-{i:05d}" for i in range(rows)])
    return frame


@dataclass
class Env:
    root: Path
    warehouse_file: Path
    output: Path
    trained: tuple[IsolationForest, Path, pd.DataFrame]

    @property
    def model(self) -> IsolationForest:
        return self.trained[0]

    def register(self, name: str = RF, champion: bool = True, reference: bool = True) -> int:
        """A version of the real model: a run with the model and the training reference."""
        settings = registry.configure()
        experiment_id = registry.ensure_experiment(settings)
        _, saved, training = self.trained
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_artifacts(str(saved), "model")
            if reference:
                path = self.root / "training_features.parquet"
                training.to_parquet(path)
                mlflow.log_artifact(str(path), "reference")
        client = mlflow.MlflowClient()
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(name)
        source = f"runs:/{run.info.run_id}/model"
        version = int(client.create_model_version(name, source, run.info.run_id).version)
        if champion:
            client.set_registered_model_alias(name, "champion", str(version))
        return version

    def sql(self, *statements: str) -> None:
        with duckdb.connect(str(self.warehouse_file)) as con:
            for statement in statements:
                con.execute(statement)

    def load(self, features: pd.DataFrame, predictions: pd.DataFrame) -> None:
        with duckdb.connect(str(self.warehouse_file)) as con:
            con.register("f", features)
            con.register("p", predictions)
            con.execute(
                'create or replace table "fraud"."gold"."transaction_features" as select * from f'
            )
            con.execute('insert into "fraud"."audit"."model_predictions" select * from p')

    def predictions(
        self,
        features: pd.DataFrame,
        name: str = RF,
        version: int = 1,
        days: int = 5,
        per_day: list[int] | None = None,
        anomaly_rates: list[float] | None = None,
    ) -> pd.DataFrame:
        """One scoring batch per day (its own dbt_invocation_id) scored by the real model."""
        scores = -self.model.score_samples(features[list(FEATURES)])
        frames = []
        for index in range(days):
            day = LAST_DAY - timedelta(days=days - 1 - index)
            count = (per_day or [len(features)] * days)[index]
            rate = (anomaly_rates or [0.05] * days)[index]
            chosen = np.random.default_rng(index).choice(len(features), count, replace=False)
            flagged = np.zeros(count, dtype=bool)
            flagged[: round(rate * count)] = True
            frames.append(
                pd.DataFrame(
                    {
                        "prediction_id": [f"{name}-{version}-{index}-{i}" for i in range(count)],
                        "customer_id": features["customer_id"].to_numpy()[chosen],
                        "model_name": name,
                        "model_version": str(version),
                        "prediction_timestamp": [day + timedelta(seconds=i) for i in range(count)],
                        "is_anomaly": flagged,
                        "confidence": np.linspace(0.5, 0.99, count),
                        "score": scores[chosen],
                        "dbt_invocation_id": f"inv-{index}",
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


@pytest.fixture
def env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_template: Path,
    trained: tuple[IsolationForest, Path, pd.DataFrame],
) -> Iterator[Env]:
    dirs = cli_env(tmp_path, monkeypatch, mlflow_template)
    environment = Env(tmp_path, dirs.warehouse_path, tmp_path / "report", trained)
    environment.sql(
        "create schema audit",
        "create schema gold",
        'create table "fraud"."audit"."model_predictions" (prediction_id varchar, '
        "customer_id varchar, model_name varchar, model_version varchar, "
        "prediction_timestamp timestamp, "
        "is_anomaly boolean, confidence double, score double, dbt_invocation_id varchar)",
    )
    yield environment
    mlflow.set_tracking_uri(None)


def monitor(env: Env, *args: str) -> int:
    return monitoring_cli.main(["--output", str(env.output), *args])


def summary(env: Env) -> dict[str, object]:
    return json.loads((env.output / "summary.json").read_text())


# -- end to end -----------------------------------------------------------------------------------


def test_stable_data_passes_and_writes_a_self_contained_report(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    version = env.register()
    current = feature_frame(300, seed=2)  # same distribution as the training reference
    env.load(current, env.predictions(current, version=version))
    assert monitor(env) == 0
    out = capsys.readouterr().out
    assert f"report: {env.output / 'report.html'}" in out

    report = (env.output / "report.html").read_text()
    assert len(report) > 10_000
    for chart in ("volume_per_day", "anomaly_rate", "feature_psi", "score_distribution"):
        png = (env.output / f"{chart}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
        assert f"<img alt='{chart}' src='data:image/png;base64," in report
    assert "<table>" in report and "ALL CHECKS WITHIN THRESHOLDS" in report
    assert "src='http" not in report and "<script" not in report

    result = summary(env)
    assert result["exit_code"] == 0 and result["status"] == "ok"
    assert result["model_name"] == RF and result["model_version"] == str(version)
    assert result["resolved_by"] == "champion"
    metrics = result["metrics"]
    assert metrics["total_predictions"] == 1500
    assert metrics["anomaly_rate"] == pytest.approx(0.05)
    assert metrics["average_confidence"] == pytest.approx(0.745)
    assert list(metrics["volume_per_day"].values()) == [300] * 5
    assert result["window"]["end"] == (LAST_DAY + timedelta(seconds=299)).isoformat()
    drift = result["drift"]
    assert set(drift["feature_psi"]) == set(FEATURES)
    assert max(drift["feature_psi"].values()) < 0.2
    assert drift["drifted_features"] == []
    assert drift["score_psi"] < 0.2 and 0 <= drift["score_ks"] < 0.2
    assert drift["latest_batch"] == "inv-4"


def test_shifted_features_are_named_and_exit_1(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    version = env.register()
    current = feature_frame(300, seed=3, scale={"total_spend": 4.0, "max_to_avg_ratio": 0.2})
    env.load(current, env.predictions(current, version=version))
    assert monitor(env, "--model", "random_forest") == 1
    out = capsys.readouterr().out
    assert "THRESHOLD BREACHED" in out
    assert "total_spend" in out and "max_to_avg_ratio" in out
    result = summary(env)
    assert sorted(result["drift"]["drifted_features"]) == ["max_to_avg_ratio", "total_spend"]
    assert "feature_psi" in result["breaches"]
    report = (env.output / "report.html").read_text()
    assert "THRESHOLD BREACHED" in report and "data:image/png;base64," in report


def test_anomaly_rate_and_volume_drop_breaches(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    version = env.register()
    current = feature_frame(400, seed=2)
    batches = env.predictions(
        current, version=version, per_day=[400, 400, 400, 400, 80], anomaly_rates=[0.05] * 4 + [0.5]
    )
    env.load(current, batches)
    assert monitor(env) == 1
    out = capsys.readouterr().out
    result = summary(env)
    assert set(result["breaches"]) == {"anomaly_rate", "volume_drop"}
    assert "THRESHOLD BREACHED: anomaly_rate, volume_drop" in out
    checks = {check["name"]: check for check in result["checks"]}
    assert checks["anomaly_rate"]["value"] == pytest.approx(0.5)
    assert checks["volume_drop"]["value"] == pytest.approx(0.8)


def test_window_follows_days_and_as_of(env: Env) -> None:
    version = env.register()
    current = feature_frame(300, seed=2)
    env.load(current, env.predictions(current, version=version, days=5))
    assert monitor(env, "--days", "2") == 0
    assert summary(env)["metrics"]["total_predictions"] == 600  # last two days
    assert monitor(env, "--as-of", "2026-10-28") == 0  # days 27 and 28 only, within 30 days
    assert summary(env)["metrics"]["total_predictions"] == 600
    assert monitor(env, "--as-of", "2026-09-01") == 3  # long before any prediction


def test_empty_predictions_table_exits_3_and_still_writes_report(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.register()
    env.load(feature_frame(50, seed=2), env.predictions(feature_frame(1, seed=9)).head(0))
    assert monitor(env) == 3
    captured = capsys.readouterr()
    assert "no predictions for main.ml_models.fraud_detection_random_forest v1" in captured.out
    assert f"report: {env.output / 'report.html'}" in captured.out
    assert monitor(env, "--json") == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "no_predictions"
    assert "no predictions for" in captured.err
    report = (env.output / "report.html").read_text()
    assert "NO PREDICTIONS IN THE WINDOW" in report
    result = summary(env)
    assert result["status"] == "no_predictions" and result["exit_code"] == 3
    assert result["metrics"]["total_predictions"] == 0


def test_model_name_with_a_quote_is_a_bound_parameter(env: Env) -> None:
    quoted = "fraud'detection\"model"
    env.register(RF)
    version = env.register(quoted, champion=False)
    current = feature_frame(300, seed=2)
    env.load(
        current,
        pd.concat(
            [
                env.predictions(current, name=RF, version=1),
                env.predictions(current, name=quoted, version=version, days=2),
            ]
        ),
    )
    assert monitor(env, "--model", quoted, "--version", str(version)) == 0
    result = summary(env)
    assert result["model_name"] == quoted
    assert result["metrics"]["total_predictions"] == 600  # its own rows only
    assert quoted not in (env.output / "report.html").read_text()  # escaped in HTML
    # An injection attempt matches nothing instead of everything.
    assert monitor(env, "--model", "x' or '1'='1", "--version", "1") == 3
    assert monitor(env, "--model", "x' or '1'='1") == 3
    with duckdb.connect(str(env.warehouse_file), read_only=True) as con:
        count = con.execute('select count(*) from "fraud"."audit"."model_predictions"').fetchone()
    assert count == (2100,)


def test_missing_reference_is_a_breach_unless_configured_to_warn(env: Env, tmp_path: Path) -> None:
    version = env.register(reference=False)
    current = feature_frame(300, seed=2)
    env.load(current, env.predictions(current, version=version))
    assert monitor(env) == 1
    result = summary(env)
    assert result["breaches"] == ["drift_reference"]
    assert "reference/training_features.parquet" in result["drift"]["reference_problem"]
    config = tmp_path / "monitoring.yml"
    text = settings.MONITORING_FILE.read_text().replace(
        "missing_reference: fail", "missing_reference: warn"
    )
    config.write_text(text)
    assert monitor(env, "--config", str(config)) == 0


def test_infrastructure_errors_exit_2(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert monitor(env) == 2  # nothing registered
    assert "pass --model" in capsys.readouterr().err
    env.register()
    assert monitor(env) == 2  # gold.transaction_features missing
    assert '"fraud"."gold"."transaction_features" does not exist' in capsys.readouterr().err
    assert monitor(env, "--target", "nope") == 2
    assert "no target 'nope'" in capsys.readouterr().err
    assert monitor(env, "--as-of", "yesterday") == 2
    monkeypatch.setenv("FRAUD_WAREHOUSE_DIR", str(env.root / "missing"))
    assert monitor(env) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        monitoring_cli.main(["--days", "many"])
    assert usage.value.code == 2


def test_default_model_falls_back_to_isolation_forest(env: Env) -> None:
    version = env.register(IF, champion=False)
    current = feature_frame(300, seed=2)
    env.load(current, env.predictions(current, name=IF, version=version))
    assert monitor(env) == 0
    result = summary(env)
    assert result["model_name"] == IF and result["resolved_by"] == "latest version"


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        monitoring_cli.main(["--help"])
    out = capsys.readouterr().out
    for line in ("0  all checks", "1  a threshold breached", "2  usage", "3  no predictions"):
        assert line in out
