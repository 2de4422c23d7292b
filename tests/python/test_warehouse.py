"""ml.warehouse: the dbt profile read like dbt, real DuckDB files, and a real PostgreSQL."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from conftest import DUCKDB_PROFILE, PROJECT_ROOT

from ml import warehouse as wh
from ml.promotion import outcome

ROOT = PROJECT_ROOT
PG_SCRIPT = ROOT / "tests" / "governance" / "postgres.sh"

PROFILES = (
    DUCKDB_PROFILE
    + """    strict:
      type: duckdb
      path: "{{ env_var('FRAUD_TEST_REQUIRED') }}/x.duckdb"
"""
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("DBT_", "FRAUD_", "DATABRICKS_", "SNOWFLAKE_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def duck(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """A profiles dir whose `local` target is a real DuckDB file fraud.duckdb in tmp_path."""
    (tmp_path / "profiles.yml").write_text(PROFILES)
    clean_env.setenv("DBT_PROFILES_DIR", str(tmp_path))
    clean_env.setenv("FRAUD_WAREHOUSE_DIR", str(tmp_path))
    duckdb.connect(str(tmp_path / "fraud.duckdb")).close()
    return tmp_path / "fraud.duckdb"


# -- the project's profile -------------------------------------------------------------------


def test_project_profile_renders_env_var_defaults(clean_env: pytest.MonkeyPatch) -> None:
    local = wh.load_target()
    assert local.profiles_path == ROOT / "profiles.yml"
    assert local.profile_name == "fraud_detection"
    assert local.target_name == "local" and local.type == "duckdb"
    path = wh.duckdb_path(local)
    assert path.parent == ROOT / "warehouse" and path.suffix == ".duckdb"

    postgres = wh.load_target("postgres")
    assert postgres.config["host"] == "127.0.0.1"
    assert postgres.config["port"] == 5432  # `| as_number`: an int, not "5432"
    assert postgres.config["password"] == ""
    databricks = wh.load_target("databricks")
    assert databricks.config["catalog"] == "main"
    assert databricks.config["token"] == "offline-placeholder"
    assert wh.load_target("snowflake").config["database"] == "MAIN"


def test_project_profile_follows_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("FRAUD_WAREHOUSE_DIR", str(tmp_path / "elsewhere"))
    clean_env.setenv("FRAUD_PG_PORT", "6543")
    clean_env.setenv("DATABRICKS_CATALOG", "prod")
    assert wh.duckdb_path(wh.load_target()).parent == tmp_path / "elsewhere"
    assert wh.load_target("postgres").config["port"] == 6543
    assert wh.load_target("databricks").config["catalog"] == "prod"
    clean_env.setenv("DBT_TARGET", "test")
    assert wh.load_target().target_name == "test"  # DBT_TARGET picks the default target
    assert wh.load_target("local").target_name == "local"  # --target wins


def test_profile_errors_are_clear(duck: Path, clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(wh.WarehouseError, match=r"no target 'nope'.*known: local, strict"):
        wh.load_target("nope")
    with pytest.raises(wh.WarehouseError, match="'FRAUD_TEST_REQUIRED'"):
        wh.load_target("strict")
    clean_env.setenv("FRAUD_TEST_REQUIRED", str(duck.parent))
    assert wh.load_target("strict").config["path"] == f"{duck.parent}/x.duckdb"
    with pytest.raises(wh.WarehouseError, match=r"profiles\.yml not found"):
        wh.load_target(profiles_dir=duck.parent / "missing")
    with pytest.raises(wh.WarehouseError, match="does not exist"):
        wh.connect("strict")


def test_render_value_filters() -> None:
    assert wh.render_value("{{ '12' | as_number }}") == 12
    assert wh.render_value("{{ '1.5' | as_number }}") == 1.5
    assert wh.render_value("{{ 'true' | as_bool }}") is True
    assert wh.render_value("{{ '0042' }}") == "0042"  # text stays text (a password, say)
    assert wh.render_value({"a": ["{{ 'x' ~ 'y' }}"]}) == {"a": ["xy"]}
    with pytest.raises(wh.WarehouseError):
        wh.render_value("{{ 'abc' | as_number }}")


# -- quoting and parameters ---------------------------------------------------------------------


def test_identifier_quoting_per_engine() -> None:
    assert wh.quote_identifier("duckdb", 'we"ird') == '"we""ird"'
    assert wh.quote_identifier("postgres", "audit") == '"audit"'
    assert wh.quote_identifier("databricks", "a`b") == "`a``b`"
    assert wh.quote_identifier("snowflake", "audit") == '"AUDIT"'


def test_qmark_to_format_skips_quoted_text() -> None:
    sql = "select '?', \"a?\" from t where x = ? and y like '50%' and z = ?"
    assert wh.qmark_to_format(sql) == (
        "select '?', \"a?\" from t where x = %s and y like '50%%' and z = %s"
    )


# -- DuckDB ------------------------------------------------------------------------------------


def test_duckdb_relations_parameters_and_existence(duck: Path) -> None:
    with wh.connect() as warehouse:
        assert warehouse.kind == "duckdb" and warehouse.catalog == "fraud"
        relation = warehouse.relation("audit", "model_predictions")
        assert relation == '"fraud"."audit"."model_predictions"'
        assert not warehouse.table_exists("audit", "model_predictions")
        warehouse.create_schema("audit")
        warehouse.execute(f"create table {relation} (model_name varchar, n bigint, ts timestamp)")
        assert warehouse.table_exists("audit", "model_predictions")
        assert not warehouse.table_exists("gold", "model_predictions")
        hostile = "x'; drop table audit.model_predictions; --"
        warehouse.insert_row(
            "audit",
            "model_predictions",
            {"model_name": hostile, "n": 1, "ts": datetime(2026, 1, 1)},
        )
        warehouse.insert_row(
            "audit", "model_predictions", {"model_name": "plain", "n": 2, "ts": None}
        )
        frame = warehouse.query(
            f"select model_name as Model_Name, n from {relation} where model_name = ?", [hostile]
        )
        assert list(frame.columns) == ["model_name", "n"]  # lower-cased
        assert frame.to_dict("records") == [{"model_name": hostile, "n": 1}]
        injected = warehouse.query(
            f"select count(*) as n from {relation} where model_name = ?", ["x' or '1'='1"]
        )
        assert int(injected.iloc[0, 0]) == 0


def test_schema_prefix_of_a_sandbox(duck: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("FRAUD_SCHEMA_PREFIX", "dbt_alice_")
    with wh.connect() as warehouse:
        assert warehouse.relation("audit", "x") == '"fraud"."dbt_alice_audit"."x"'


def test_duckdb_lock_is_retried_then_reported(duck: Path) -> None:
    """Another process holds the file: a short timeout fails clearly, a longer one waits."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            "c = duckdb.connect(sys.argv[1])\n"
            "print('ready', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n",
            str(duck),
            "1.5",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        with pytest.raises(wh.WarehouseError, match="locked by another process"):
            wh.connect(lock_timeout=0.5)
        assert time.monotonic() - started < 3
        with wh.connect(lock_timeout=30) as warehouse:  # waits for the holder to exit
            assert int(warehouse.query("select 1 as one").iloc[0, 0]) == 1
        assert holder.poll() is not None
    finally:
        holder.kill()
        holder.wait()


# -- PostgreSQL (real server, psycopg2 `%s` parameters) --------------------------------------------


def _postgres_available() -> bool:
    import glob

    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("pg_ctl"))


@pytest.fixture(scope="module")
def postgres_env() -> Iterator[dict[str, str]]:
    if not _postgres_available() and not os.environ.get("CI"):
        pytest.skip(
            "PostgreSQL is not installed (tests/governance/postgres.sh installs it as root)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="fraud-wh-pg-"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRAUD_PG_")}
    env.update(
        FRAUD_PG_PASSWORD=secrets.token_urlsafe(16),
        FRAUD_PG_DE_PASSWORD=secrets.token_urlsafe(16),
        FRAUD_PG_DS_PASSWORD=secrets.token_urlsafe(16),
        FRAUD_PG_MLE_PASSWORD=secrets.token_urlsafe(16),
    )
    try:
        started = subprocess.run(
            [str(PG_SCRIPT), "start", str(workdir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert started.returncode == 0, started.stderr
        values = dict(
            line.split("=", 1) for line in started.stdout.splitlines() if re.match(r"\w+=", line)
        )
        yield {
            "FRAUD_PG_HOST": values["FRAUD_PG_HOST"],
            "FRAUD_PG_PORT": values["FRAUD_PG_PORT"],
            "FRAUD_PG_USER": values["FRAUD_PG_USER"],
            "FRAUD_PG_DATABASE": values["FRAUD_PG_DATABASE"],
            "FRAUD_PG_PASSWORD": env["FRAUD_PG_PASSWORD"],
        }
    finally:
        subprocess.run([str(PG_SCRIPT), "stop", str(workdir)], capture_output=True, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.postgres
def test_postgres_target_of_the_project_profile(
    postgres_env: dict[str, str], clean_env: pytest.MonkeyPatch
) -> None:

    for key, value in postgres_env.items():
        clean_env.setenv(key, value)
    with wh.connect("postgres") as warehouse:
        assert warehouse.kind == "postgres" and warehouse.catalog == "main"
        # The promotion audit table (dbt creates it; here by hand, in the engine's types):
        # quoted reserved-ish names, bound values.
        warehouse.create_schema("audit")
        columns = ", ".join(
            f"{warehouse.quote(name)} {warehouse.sql_type(kind)}"
            for name, kind in outcome.AUDIT_COLUMNS
        )
        warehouse.execute(
            f"create table {warehouse.relation('audit', 'model_promotions')} ({columns})"
        )
        relation = outcome.audit_table(warehouse)
        assert relation == '"main"."audit"."model_promotions"'
        assert warehouse.table_exists("audit", "model_promotions")
        assert not warehouse.table_exists("audit", "nothing_here")
        row = {name: None for name, _ in outcome.AUDIT_COLUMNS}
        row.update(
            promotion_id="p-1",
            decided_at=datetime(2026, 11, 27, 12, 0),
            model_name="it's 100% a 'model'?",
            decision="refused",
            gate_config_version="v1",
            precision=0.5,
        )
        warehouse.insert_row("audit", "model_promotions", row)
        frame = warehouse.query(
            f"select model_name, precision from {relation} "
            "where model_name = ? and decision like 'ref%'",
            ["it's 100% a 'model'?"],
        )
        assert frame.to_dict("records") == [
            {"model_name": "it's 100% a 'model'?", "precision": 0.5}
        ]
