"""fraud-promote against a real sqlite MLflow registry and a real DuckDB warehouse in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import PROJECT_ROOT, cli_env
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler

from ml import registry
from ml.promotion import cli as promotion_cli
from ml.promotion import locking, outcome

RF = registry.RANDOM_FOREST_MODEL
IF = registry.ISOLATION_FOREST_MODEL
GOOD = {"precision": 0.91, "recall": 0.86, "f1": 0.885}
ALL_ARTIFACTS = ("model", "scaler", "classification_report.txt")


@pytest.fixture(scope="session")
def fitted(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[RandomForestClassifier, Path, Path]:
    """A real random forest and its real scaler, each also saved once as an MLflow model folder."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4))
    labels = (features[:, 0] > 0).astype(int)
    scaler = StandardScaler().fit(features)
    model = RandomForestClassifier(n_estimators=4, random_state=0).fit(
        scaler.transform(features), labels
    )
    folder = tmp_path_factory.mktemp("saved")
    for name, estimator in (("model", model), ("scaler", scaler)):
        mlflow.sklearn.save_model(
            estimator, str(folder / name), serialization_format="cloudpickle", pip_requirements=[]
        )
    return model, folder / "model", folder / "scaler"


@dataclass
class Env:
    root: Path
    mlflow_dir: Path
    warehouse_file: Path
    fitted: tuple[RandomForestClassifier, Path, Path]

    @property
    def client(self) -> mlflow.MlflowClient:
        registry.configure()
        return mlflow.MlflowClient()

    def version(
        self,
        name: str = RF,
        metrics: dict[str, float] | None = None,
        artifacts: tuple[str, ...] = ALL_ARTIFACTS,
        logged_model: bool = False,
    ) -> int:
        """Register a real model version: a real run with metrics and artifacts.

        ``model`` and ``scaler`` are MLflow sklearn model folders logged as run artifacts, or,
        with ``logged_model``, the model is an MLflow 3 logged model (log_model(name="model"),
        stored outside the run's artifacts); the report is a text artifact.
        """
        settings = registry.configure()
        experiment_id = registry.ensure_experiment(settings)
        client = mlflow.MlflowClient()
        model, model_dir, scaler_dir = self.fitted
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metrics(dict(GOOD if metrics is None else metrics))
            source = f"runs:/{run.info.run_id}/model"
            if "model" in artifacts and logged_model:
                info = mlflow.sklearn.log_model(
                    model, name="model", serialization_format="cloudpickle", pip_requirements=[]
                )
                source = info.model_uri
            elif "model" in artifacts:
                mlflow.log_artifacts(str(model_dir), "model")
            if "scaler" in artifacts:
                mlflow.log_artifacts(str(scaler_dir), "scaler")
            if "classification_report.txt" in artifacts:
                mlflow.log_text("precision recall f1\n", "classification_report.txt")
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(name)
        created = client.create_model_version(name, source=source, run_id=run.info.run_id)
        return int(created.version)

    def aliases(self, name: str = RF) -> dict[str, int]:
        return {k: int(v) for k, v in self.client.get_registered_model(name).aliases.items()}

    def tags(self, version: int, name: str = RF) -> dict[str, str]:
        return dict(self.client.get_model_version(name, str(version)).tags)

    def audit(self) -> pd.DataFrame:
        with duckdb.connect(str(self.warehouse_file), read_only=True) as con:
            exists = con.execute(
                "select count(*) from information_schema.tables "
                "where table_schema = 'audit' and table_name = 'model_promotions'"
            ).fetchone()
            if not exists or not exists[0]:
                return pd.DataFrame()
            return con.execute(
                'select * from "fraud"."audit"."model_promotions" order by decided_at'
            ).df()

    def subprocess_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return env


@pytest.fixture
def env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_template: Path,
    audit_warehouse: Path,
    fitted: tuple[RandomForestClassifier, Path, Path],
) -> Iterator[Env]:
    dirs = cli_env(tmp_path, monkeypatch, mlflow_template, audit_warehouse)
    monkeypatch.setenv("FRAUD_GIT_COMMIT", "0123abc")
    yield Env(tmp_path, dirs.mlflow_dir, dirs.warehouse_path, fitted)
    mlflow.set_tracking_uri(None)


def promote(*args: str) -> int:
    return promotion_cli.main(["--actor", "alice", *args])


# -- pass -----------------------------------------------------------------------------------


def test_first_promotion_passes_every_gate_and_writes_audit_row(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    version = env.version(logged_model=True)  # MLflow 3 style: the model is a logged model
    assert promote("--model", "random_forest", "--candidate", "latest") == 0
    out = capsys.readouterr().out
    assert "gate" in out and "threshold" in out and "DECISION: promoted" in out
    assert "first champion" in out

    assert env.aliases() == {"champion": version}
    tags = env.tags(version)
    assert tags["promoted_by"] == "alice"
    assert tags["gate_config_version"] == "2026-12-01.1"
    assert tags["promoted_at"].endswith("+00:00")
    description = env.client.get_model_version(RF, str(version)).description
    assert "Promoted to champion at" in description and "precision=0.9100" in description

    rows = env.audit()
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["decision"] == "promoted"
    assert row["actor"] == "alice"
    assert row["model_name"] == RF
    assert row["candidate_version"] == version
    assert pd.isna(row["previous_champion_version"])
    assert row["new_champion_version"] == version
    assert row["precision"] == pytest.approx(0.91)
    assert row["recall"] == pytest.approx(0.86)
    assert row["f1"] == pytest.approx(0.885)
    assert row["precision_threshold"] == pytest.approx(0.85)
    assert row["recall_threshold"] == pytest.approx(0.80)
    assert row["f1_threshold"] == pytest.approx(0.82)
    assert row["gate_config_version"] == "2026-12-01.1"
    assert row["git_commit"] == "0123abc"
    assert row["notes"] == "candidate: latest"
    assert len(row["promotion_id"]) == 36
    gates = {gate["gate"]: gate for gate in json.loads(row["gates_json"])}
    assert set(gates) == {
        "precision",
        "recall",
        "f1",
        "artifact:model",
        "artifact:scaler",
        "artifact:classification_report.txt",
        "vs_champion:f1",
    }
    assert all(gate["passed"] for gate in gates.values())
    assert gates["vs_champion:f1"]["detail"] == "first promotion"


def test_second_promotion_archives_the_former_champion(env: Env) -> None:
    first = env.version()
    assert promote() == 0
    second = env.version(metrics={"precision": 0.93, "recall": 0.88, "f1": 0.905})
    assert promote("--version", str(second)) == 0
    assert env.aliases() == {"champion": second, "previous": first}
    assert "archived_at" in env.tags(first)
    rows = env.audit()
    assert list(rows["decision"]) == ["promoted", "promoted"]
    assert rows.iloc[1]["previous_champion_version"] == first
    assert rows.iloc[1]["new_champion_version"] == second


def test_alias_candidate_and_json_output(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    version = env.version()
    env.client.set_registered_model_alias(RF, "challenger", str(version))
    assert promote("--alias", "challenger", "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["decision"] == "promoted"
    assert payload["candidate_version"] == version
    assert payload["exit_code"] == 0
    assert payload["audit_relation"] == '"fraud"."audit"."model_promotions"'
    assert {gate["gate"] for gate in payload["gates"]} >= {"precision", "recall", "f1"}


# -- fail -----------------------------------------------------------------------------------


def test_each_metric_gate_refuses_and_changes_nothing(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    champion = env.version()
    assert promote() == 0
    for metric, value in (("precision", 0.849), ("recall", 0.79), ("f1", 0.81)):
        capsys.readouterr()
        candidate = env.version(metrics={**GOOD, metric: value})
        assert promote("--version", str(candidate)) == 1
        out = capsys.readouterr().out
        header = next(line for line in out.splitlines() if " | " in line)
        cells = [cell.strip() for cell in header.split("|")]
        assert cells == ["gate", "value", "threshold", "result"]
        failed = {line.split()[0]: line for line in out.splitlines() if "FAIL" in line}
        # An f1 this low is also more than 0.02 below the champion's.
        assert set(failed) == ({metric, "vs_champion:f1"} if metric == "f1" else {metric})
        assert f"{value:.4f}" in failed[metric]
        assert "DECISION: refused" in out

        assert env.aliases() == {"champion": champion}
        assert "promoted_at" not in env.tags(candidate)
        assert not env.client.get_model_version(RF, str(candidate)).description
        refused = env.audit().iloc[-1]
        assert refused["decision"] == "refused"
        assert refused["candidate_version"] == candidate
        assert refused["previous_champion_version"] == champion
        assert refused["new_champion_version"] == champion
        assert refused[metric] == pytest.approx(value)
    assert list(env.audit()["decision"]) == ["promoted", "refused", "refused", "refused"]


def test_missing_artifact_refuses(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    version = env.version(artifacts=("model", "classification_report.txt"))
    assert promote("--version", str(version)) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if "FAIL" in line]
    assert len(failed) == 1 and failed[0].startswith("artifact:scaler")
    assert "missing" in failed[0]
    assert env.aliases() == {}
    assert list(env.audit()["decision"]) == ["refused"]


def test_missing_metric_refuses(env: Env) -> None:
    version = env.version(metrics={"precision": 0.9, "recall": 0.9})
    assert promote("--version", str(version), "--json") == 1
    rows = env.audit()
    gates = {gate["gate"]: gate for gate in json.loads(rows.iloc[0]["gates_json"])}
    assert gates["f1"]["passed"] is False and gates["f1"]["detail"] == "metric missing"
    assert pd.isna(rows.iloc[0]["f1"])


def test_champion_comparison_margin(env: Env) -> None:
    """Champion f1 0.90, margin 0.02: the floor is 0.88 (all candidates clear the 0.82 gate)."""
    champion = env.version(metrics={**GOOD, "f1": 0.90})
    assert promote() == 0
    worse = env.version(metrics={**GOOD, "f1": 0.879})
    assert promote("--version", str(worse)) == 1
    gates = {g["gate"]: g for g in json.loads(env.audit().iloc[-1]["gates_json"])}
    assert gates["vs_champion:f1"]["passed"] is False
    assert gates["vs_champion:f1"]["threshold"] == ">= 0.8800 (champion v1 0.9000 - 0.02)"
    assert [g for g, result in gates.items() if not result["passed"]] == ["vs_champion:f1"]
    assert env.aliases() == {"champion": champion}

    within = env.version(metrics={**GOOD, "f1": 0.8805})  # worse than the champion, within margin
    assert promote("--version", str(within)) == 0
    assert env.aliases() == {"champion": within, "previous": champion}
    gates = {g["gate"]: g for g in json.loads(env.audit().iloc[-1]["gates_json"])}
    assert gates["vs_champion:f1"]["passed"] is True
    assert list(env.audit()["decision"]) == ["promoted", "refused", "promoted"]


def test_isolation_forest_below_the_bar_is_refused(env: Env) -> None:
    env.version(IF, metrics={"precision": 0.4, "recall": 0.5, "f1": 0.44})
    assert promote("--model", "isolation_forest", "--candidate", "latest") == 1
    assert env.aliases(IF) == {}
    row = env.audit().iloc[0]
    assert row["model_name"] == IF and row["decision"] == "refused"


# -- dry run, idempotency, rollback ---------------------------------------------------------------


def test_dry_run_changes_nothing(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    first = env.version()
    assert promote() == 0
    second = env.version()
    before_rows = len(env.audit())
    assert promote("--version", str(second), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "DRY RUN, would be: promoted" in out
    assert env.aliases() == {"champion": first}
    assert "promoted_at" not in env.tags(second)
    assert "archived_at" not in env.tags(first)
    assert len(env.audit()) == before_rows

    failing = env.version(metrics={**GOOD, "recall": 0.1})
    assert promote("--version", str(failing), "--dry-run") == 1
    assert len(env.audit()) == before_rows


def test_promoting_the_champion_again_leaves_the_registry_alone(env: Env) -> None:
    version = env.version()
    assert promote() == 0
    tags_before = env.tags(version)
    assert promote() == 0
    assert env.aliases() == {"champion": version}
    assert env.tags(version) == tags_before
    rows = env.audit()
    assert list(rows["decision"]) == ["promoted", "promoted"]
    assert rows.iloc[1]["previous_champion_version"] == version
    assert "already is champion" in rows.iloc[1]["notes"]


def test_rollback_restores_previous(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    first = env.version()
    assert promote() == 0
    second = env.version()
    assert promote() == 0
    assert promote("--rollback", "--dry-run") == 0
    assert env.aliases() == {"champion": second, "previous": first}
    assert promote("--rollback") == 0
    assert "DECISION: rolled_back" in capsys.readouterr().out
    assert env.aliases() == {"champion": first}
    assert "rolled_back_at" in env.tags(second)
    assert "restored_at" in env.tags(first)
    rows = env.audit()
    assert list(rows["decision"]) == ["promoted", "promoted", "rolled_back"]
    rolled = rows.iloc[2]
    assert rolled["candidate_version"] == first
    assert rolled["previous_champion_version"] == second
    assert rolled["new_champion_version"] == first
    assert rolled["actor"] == "alice"
    # `previous` is consumed: a second rollback has nothing to go back to.
    assert promote("--rollback") == 2


def test_rollback_without_previous_is_an_error(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.version()
    assert promote() == 0
    capsys.readouterr()
    assert promote("--rollback") == 2
    assert "nothing to roll back to" in capsys.readouterr().err
    assert len(env.audit()) == 1


def test_no_registered_version_is_a_recorded_no_candidate_decision(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model whose training was skipped (too few fraudulent customers) has no version: that
    is a decision (exit 0, printed, one audit row with the skip reason), not an error."""
    reason = "only 38 fraudulent customer(s) in gold.customer_fraud_labels"
    with duckdb.connect(str(env.warehouse_file)) as con:
        con.execute('create schema if not exists "fraud"."ml_models"')
        con.execute(
            'create table "fraud"."ml_models"."random_forest_training_runs" as select '
            "cast(null as varchar) as run_id, 'skipped' as status, ? as skip_reason, "
            "timestamp '2026-11-01 10:00:00' as trained_at",
            [reason],
        )
    assert promote() == 0
    out = capsys.readouterr().out
    assert "DECISION: no candidate: " + RF + " has no registered version" in out
    assert "candidate:   none" in out
    assert promote("--model", "isolation_forest", "--json") == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["decision"] == "no_candidate" and payload["exit_code"] == 0
    audit = env.audit()
    assert list(audit["decision"]) == ["no_candidate", "no_candidate"]
    assert audit["candidate_version"].isna().all() and audit["new_champion_version"].isna().all()
    assert reason in audit["notes"].iloc[0]
    assert promote("--dry-run") == 0 and len(env.audit()) == 2
    # Only `latest` of a model the project trains: a typo or an explicit version stays an error.
    assert promote("--model", "no_such_model") == 2
    assert promote("--version", "1") == 2


# -- errors ---------------------------------------------------------------------------------------


def test_errors_exit_2_with_a_message(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert promote("--model", "no_such_model") == 2
    assert "registered model 'no_such_model' not found" in capsys.readouterr().err
    env.version()
    assert promote("--version", "7") == 2
    assert "has no version 7" in capsys.readouterr().err
    assert promote("--alias", "challenger") == 2
    assert "has no alias 'challenger'" in capsys.readouterr().err
    assert promote("--model", "a'b\"c") == 2
    assert "not found" in capsys.readouterr().err
    assert promote("--config", str(env.root / "missing.yml")) == 2
    assert "cannot read gate config" in capsys.readouterr().err
    (env.root / "noversion.yml").write_text(yaml.safe_dump({"defaults": {}}))
    assert promote("--config", str(env.root / "noversion.yml")) == 2
    assert "'version:' key is required" in capsys.readouterr().err
    assert len(env.audit()) == 0

    # Warehouse unreachable: refused before the registry changes.
    monkeypatch.setenv("FRAUD_WAREHOUSE_DIR", str(env.root / "nowhere"))
    assert promote() == 2
    assert "does not exist" in capsys.readouterr().err
    assert env.aliases() == {}

    # Registry unreachable.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert promote("--json") == 2
    captured = capsys.readouterr()
    assert "fraud-promote: error:" in captured.err
    assert json.loads(captured.out)["exit_code"] == 2


# -- concurrency ----------------------------------------------------------------------------------


def test_two_concurrent_promotions_leave_one_champion_and_two_rows(env: Env) -> None:
    """Two real processes contend for the lock at the same instant (the test holds it first)."""
    first = env.version()
    assert promote() == 0
    second, third = env.version(), env.version()
    lock_path = locking.local_lock_path(registry.resolve_settings().registry_uri)
    assert lock_path == env.mlflow_dir / "promotion.lock"

    with locking.registry_lock(lock_path, timeout=5):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "ml.promotion.cli", "--version", str(v), "--actor", f"p{v}"],
                cwd=PROJECT_ROOT,
                env=env.subprocess_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for v in (second, third)
        ]
        waiting = [threading.Event() for _ in procs]
        errors: list[list[str]] = [[] for _ in procs]

        def watch(index: int) -> None:
            stream = procs[index].stderr
            assert stream is not None
            for line in stream:
                errors[index].append(line)
                if "waiting for the promotion lock" in line:
                    waiting[index].set()

        threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while not all(event.is_set() for event in waiting):
            assert time.monotonic() < deadline, f"processes never blocked: {errors}"
            assert all(p.poll() is None for p in procs), f"a process exited early: {errors}"
            time.sleep(0.05)
    # Lock released: both processes race for it now.
    codes = [p.wait(timeout=120) for p in procs]
    for thread in threads:
        thread.join(timeout=5)
    assert codes == [0, 0], errors

    aliases = env.aliases()
    rows = env.audit()
    assert len(rows) == 3
    later = rows.iloc[1:]
    assert list(later["decision"]) == ["promoted", "promoted"]
    winner_first, winner_last = (
        int(later.iloc[0]["new_champion_version"]),
        int(later.iloc[1]["new_champion_version"]),
    )
    assert {winner_first, winner_last} == {second, third}
    # Serialised: the second decision saw the first one's champion.
    assert later.iloc[0]["previous_champion_version"] == first
    assert later.iloc[1]["previous_champion_version"] == winner_first
    assert aliases == {"champion": winner_last, "previous": winner_first}
    client = env.client
    champions = [
        v
        for v in (first, second, third)
        if "champion" in client.get_model_version(RF, str(v)).aliases
    ]
    assert champions == [winner_last]


# -- dbt owns audit.model_promotions --------------------------------------------------------


def test_missing_audit_table_is_an_error_naming_it_and_dbt(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    version = env.version()
    env.warehouse_file.unlink()
    duckdb.connect(str(env.warehouse_file)).close()  # a warehouse dbt never built
    assert promote("--model", "random_forest", "--candidate", "latest") == 2
    err = capsys.readouterr().err
    assert "audit" in err and "model_promotions" in err and "run dbt build first" in err
    assert env.aliases() == {}, "nothing may change in the registry"
    assert version == 1


def test_audit_columns_are_the_dbt_contract() -> None:
    """The row promotion writes is the table dbt declares (names, order and types)."""
    document = yaml.safe_load((PROJECT_ROOT / "models/audit/_audit__models.yml").read_text())
    (model,) = [m for m in document["models"] if m["name"] == "model_promotions"]
    assert model["config"]["contract"] == {"enforced": True}
    assert model["config"]["full_refresh"] is False
    generic = {"string": "text", "timestamp": "timestamp", "bigint": "bigint", "double": "double"}
    declared = [(c["name"], generic[c["data_type"]]) for c in model["columns"]]
    assert declared == list(outcome.AUDIT_COLUMNS)
    assert all(c.get("description") for c in model["columns"])
