"""A build killed at any stage leaves a warehouse and a registry the next build makes whole
(issue 11). One warehouse on a private copy of the committed fixture lives through a kill at
each stage, in pipeline order; before each kill a new delivery lands (new transactions and
corrected versions of earlier ones), so every stage has real work to lose:

    stage     kill point (SIGKILL of the dbt process; its own process group only)
    bronze    dbt's JSON log says load_log starts: transactions_raw holds the delivery, the load
              log does not
    silver    dbt's JSON log says transactions_cleaned starts
    training  FRAUD_CRASH_AT=training: a model version is registered, its row not written
    scoring   FRAUD_CRASH_AT=scoring: the batch is scored, gold.fraud_scores not replaced
              (gold.transaction_fraud_scores, which runs after it, not scored)
    audit     FRAUD_CRASH_AT=audit: gold.fraud_scores replaced and new transactions scored into
              gold.transaction_fraud_scores, audit.model_predictions not appended (the gap the
              pre-hooks of both scoring models close)

and once more on a fresh warehouse whose very first build is killed at ``audit``. After each
rerun (a plain ``dbt build``, which must pass with every test) it asserts: no lost rows (every
delivered row in bronze; raw = cleaned + rejected + superseded), every row that was ever in
gold.fraud_scores or gold.transaction_fraud_scores in audit.model_predictions exactly once
with the ids of ml.scoring.prediction_log (customer and transaction rows both present), no
registry version without its artifacts (each loads), and the champion alias on a valid
version. It prints the matrix: stage, rerun consistent.

    .venv/bin/pytest tests/python/end_to_end/test_crash_matrix.py
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import (
    DBT_TIMEOUT_S,
    PROJECT_ROOT,
    SMALL_FIXTURE_DIR,
    DbtProject,
    lost_transaction_rows,
)

from ml import registry
from ml.promotion.decision import version_info
from ml.scoring.prediction_log import prediction_ids
from ml.settings import PROMOTION_GATES_FILE
from ml.validation.gates import load_gate_config

pytestmark = pytest.mark.e2e

# stage -> ("node", dbt node whose start triggers the kill) | ("hook", FRAUD_CRASH_AT value)
KILL_POINTS: dict[str, tuple[str, str]] = {
    "bronze": ("node", "load_log"),
    "silver": ("node", "transactions_cleaned"),
    "training": ("hook", "training"),
    "scoring": ("hook", "scoring"),
    "audit": ("hook", "audit"),
}
# dbt's JSON log events that say a node starts (LogStartLine is the info-level "START" line).
START_EVENTS = {"NodeStart", "LogStartLine"}
# Small forests: the matrix proves crash consistency, not model quality (training is its cost).
FAST_TRAINING = {"rf_n_estimators": 25, "if_n_estimators": 25, "if_importance_sample_size": 200}
MODELS = (
    registry.RANDOM_FOREST_MODEL,
    registry.ISOLATION_FOREST_MODEL,
    registry.TRANSACTION_CLASSIFIER_MODEL,
)
DELIVERY_ROWS = 300


def _killed_build(project: DbtProject, how: str, where: str) -> int:
    """``dbt build`` in its own process group, SIGKILLed at the kill point; its exit code.
    The build killed in training retrains (retrain_mode always); the others keep the policy's
    default, which skips retraining for the small deliveries of the matrix."""
    env = project.env()
    if how == "hook":
        env["FRAUD_CRASH_AT"] = where
    retrain = {"retrain_mode": "always"} if where == "training" else {}
    command = project.command("build", "--log-format", "json", vars=retrain)
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            if how != "node" or not line.startswith("{"):
                continue
            event = json.loads(line)
            node = event.get("data", {}).get("node_info", {}).get("node_name")
            if event.get("info", {}).get("name") in START_EVENTS and node == where:
                os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=DBT_TIMEOUT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _deliver(raw: Path, name: str) -> None:
    """A new landing file: rows of the fixture, half with new transaction ids, half the same
    ids (corrected versions that supersede the earlier ones)."""
    table = pq.read_table(SMALL_FIXTURE_DIR / "transactions" / "batch_0000.parquet")
    table = table.slice(0, DELIVERY_ROWS)
    ids = table.column("transaction_id").to_pylist()
    fresh = [f"{name}-{value}" if i % 2 == 0 else value for i, value in enumerate(ids)]
    index = table.schema.get_field_index("transaction_id")
    table = table.set_column(
        index, "transaction_id", pc.cast(fresh, table.schema.field(index).type)
    )
    pq.write_table(table, raw / "transactions" / f"{name}.parquet")


def _published(project: DbtProject) -> dict[str, str]:
    """``{prediction_id: scoring_batch_id}`` of every row now in gold.fraud_scores and
    gold.transaction_fraud_scores (the ids of ml.scoring.prediction_log). Transaction scores are
    incremental and a corrected transaction is rescored (its row replaced), so what was ever
    published is the union of these observations, not the current counts."""
    frames = [
        project.query(
            "select scoring_batch_id, customer_id as entity_id, model_name, model_version, "
            "'customer' as entity_type from gold.fraud_scores"
        ),
        project.query(
            "select scoring_batch_id, transaction_id as entity_id, model_name, model_version, "
            "'transaction' as entity_type from gold.transaction_fraud_scores"
        ),
    ]
    out: dict[str, str] = {}
    for frame in frames:
        ids = prediction_ids(
            frame.scoring_batch_id.tolist(),
            frame.entity_id.tolist(),
            frame.model_name.tolist(),
            frame.model_version.astype(int).tolist(),
            frame.entity_type.tolist(),
        )
        out.update(zip(ids, frame.scoring_batch_id, strict=True))
    return out


def _inconsistencies(project: DbtProject, raw: Path, published: dict[str, str]) -> list[str]:
    """What is wrong after a rerun (empty: consistent)."""
    problems: list[str] = []
    # No lost rows: every delivered row is in bronze, and raw = cleaned + rejected + superseded.
    delivered = sum(pq.ParquetFile(p).metadata.num_rows for p in raw.glob("transactions/*.parquet"))
    counts = project.query(
        """
        select
            (select count(*) from bronze.transactions_raw) as raw_rows,
            (select count(*) from silver.transactions_cleaned) as cleaned,
            (select count(*) from silver.transactions_rejected) as rejected,
            (select count(*)
             from bronze.transactions_raw as r
             where not exists (
                     select 1 from silver.transactions_rejected as x
                     where x.source_file_name = r.source_file_name
                         and x.source_row_number = r.source_row_number
                         and x.loaded_at = r.loaded_at)
                 and not exists (
                     select 1 from silver.transactions_cleaned as k
                     where k.source_file_name = r.source_file_name
                         and k.source_row_number = r.source_row_number
                         and k.loaded_at = r.loaded_at)
                 and exists (
                     select 1 from silver.transactions_cleaned as k
                     where k.transaction_id = r.transaction_id)) as superseded
        """
    ).iloc[0]
    if counts.raw_rows != delivered:
        problems.append(f"{delivered} rows delivered, {counts.raw_rows} in bronze")
    if counts.raw_rows != counts.cleaned + counts.rejected + counts.superseded:
        problems.append(f"raw != cleaned + rejected + superseded: {dict(counts)}")
    if lost_transaction_rows(project):
        problems.append(f"{lost_transaction_rows(project)} raw rows lost")
    # Every published row (customer and transaction scores) audited exactly once, with the ids
    # of ml.scoring.prediction_log.
    audit = project.query("select * from audit.model_predictions")
    if audit.prediction_id.duplicated().any():
        problems.append("duplicate prediction_id in audit.model_predictions")
    logged = dict(zip(audit.prediction_id, audit.scoring_batch_id, strict=True))
    if set(logged) != set(published):
        missing = collections.Counter(published[i] for i in set(published) - set(logged))
        extra = collections.Counter(logged[i] for i in set(logged) - set(published))
        problems.append(f"audit rows per batch: missing {dict(missing)}, extra {dict(extra)}")
    by_kind = collections.Counter(audit.entity_type)
    if not by_kind.get("transaction") or not by_kind.get("customer"):
        problems.append(f"audit rows by entity_type {dict(by_kind)}: both kinds expected")
    expected = prediction_ids(
        audit.scoring_batch_id.tolist(),
        audit.entity_id.tolist(),
        audit.model_name.tolist(),
        audit.model_version.astype(int).tolist(),
        audit.entity_type.tolist(),
    )
    if audit.prediction_id.tolist() != expected:
        problems.append("audit prediction_id differs from ml.scoring.prediction_log")
    # Registry: every version has its artifacts and loads; champion on a valid version.
    client = project.mlflow_client()
    for name in MODELS:
        required = load_gate_config(str(PROMOTION_GATES_FILE), name).required_artifacts
        for version in client.search_model_versions(registry.name_filter(name)):
            number = int(version.version)
            info = version_info(client, name, number, required)
            if missing := set(required) - info.artifacts:
                problems.append(f"{name} v{number} lacks {sorted(missing)}")
            try:
                registry.load_sklearn_model(name, number)
            except Exception as exc:
                problems.append(f"{name} v{number} does not load: {exc}")
        champion = registry.registered_aliases(client, name).get(registry.CHAMPION_ALIAS)
        if (
            champion is not None
            and registry.version_by_alias(name, registry.CHAMPION_ALIAS, client) is None
        ):
            problems.append(f"{name}@champion points to missing v{champion}")
    return problems


def _print_matrix(request: pytest.FixtureRequest, rows: list[tuple[str, str, str, str]]) -> None:
    header = ("stage", "killed at", "exit of killed build", "rerun consistent")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [
        " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    text = "\n".join(["", "", "Crash matrix (tests/python/end_to_end/test_crash_matrix.py):"])
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join([text, *lines, ""]))


def _crash_and_rerun(
    project: DbtProject, raw: Path, stage: str, how: str, where: str, published: dict[str, str]
) -> tuple[tuple[str, str, str, str], list[str]]:
    exit_code = _killed_build(project, how, where)
    problems = [] if exit_code == -signal.SIGKILL else [f"not killed (exit {exit_code})"]
    if project.warehouse_path.exists():
        with contextlib.suppress(duckdb.CatalogException):  # no scores yet: none published
            published.update(_published(project))
    project.run("build")
    published.update(_published(project))
    problems += _inconsistencies(project, raw, published)
    point = f"node {where} starts" if how == "node" else f"FRAUD_CRASH_AT={where}"
    row = (stage, point, str(exit_code), "no" if problems else "yes")
    return row, [f"{stage}: {problem}" for problem in problems]


def test_a_build_killed_at_any_stage_reruns_consistent(
    tmp_path: Path,
    dbt_project_factory: Callable[..., DbtProject],
    request: pytest.FixtureRequest,
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(SMALL_FIXTURE_DIR, raw)
    project = dbt_project_factory("crash_matrix", vars={"raw_data_path": str(raw), **FAST_TRAINING})
    project.run("build")
    client = project.mlflow_client()
    client.set_registered_model_alias(registry.ISOLATION_FOREST_MODEL, "champion", "1")
    published = _published(project)
    rows, problems = [], []
    for stage, (how, where) in KILL_POINTS.items():
        _deliver(raw, f"crash_{stage}")
        row, found = _crash_and_rerun(project, raw, stage, how, where, published)
        rows.append(row)
        problems += found

    # The very first build of a warehouse killed after scoring: the log starts with that batch.
    first_raw = tmp_path / "first_raw"
    shutil.copytree(SMALL_FIXTURE_DIR, first_raw)
    first = dbt_project_factory(
        "crash_first", vars={"raw_data_path": str(first_raw), **FAST_TRAINING}
    )
    first_published: dict[str, str] = {}
    row, found = _crash_and_rerun(first, first_raw, "audit", "hook", "audit", first_published)
    rows.append(("audit (first build)", *row[1:]))
    problems += found
    _print_matrix(request, rows)
    assert len(set(first_published.values())) == 2, "the killed first build published a batch"
    assert not problems, "\n".join(problems)
