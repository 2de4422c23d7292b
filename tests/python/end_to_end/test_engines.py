"""The SQL models run for real on Apache Spark and on a Snowflake emulator, with DuckDB's answers.

- Spark: dbt-spark ``method: session`` (target ``spark_local``), a local pyspark 4.0 in the dbt
  process, Java 17 (installed from Debian's openjdk-17-jre-headless when ``java`` is missing and
  we are root). The landing folders are Parquet views in the metastore (macro
  spark_landing_views), tables are parquet files in a temporary folder.
- Snowflake: dbt-snowflake against ``fakesnow -s`` on 127.0.0.1 and a free port (target
  ``snowflake_emulated``), stopped at the end, also on failure. The fixture is loaded into
  FRAUD.RAW.* first with the warehouse lineage columns (the ingestion tool's job).
- Reference: DuckDB (target ``test``) built from the same committed fixture in its own folder.

Every SQL model (bronze, silver, governed views, gold, audit), every seed and every data test is
built on both from tests/fixtures/small; then every relation is compared with DuckDB's, row for
row (the columns that differ by design, engines.RUN_DEPENDENT_COLUMNS, aside: load instant, file
identity only DuckDB reads; floats to FLOAT_SIGNIFICANT_DIGITS significant digits), and the
equality table is printed. On Spark the fixture's transactions are also split into two batches:
built incrementally (batch 1, then batch 2) they must equal one full build of both.

What does not run, by name and why (also in the README, "Other engines"):
- every Python model (NOT_ON_ENGINES, found by file: models/**/*.py, excluded with the selector
  engines.PYTHON_MODELS_SELECTOR, so a new one needs no edit): Python models need Databricks
  or Snowpark; open-source Spark has none (dbt-adapters #510, dbt-spark PR #1063), fakesnow
  has no Snowpark.
- dbt unit tests on fakesnow: dbt-snowflake builds their inputs in a qualified temporary table,
  which fakesnow rejects (TEMPORARY table names can only use the "temp" catalog). They run on
  Spark and DuckDB.
- a second (merge) incremental run on fakesnow: the same temporary-table limit.
- merge on Spark: local parquet cannot merge (needs Delta, jars not downloadable), so the merge
  models append there (macro incremental_merge_strategy); Databricks and Snowflake still merge.
- null timestamps read back from fakesnow: its server sends them as 1970-01-01 (an Arrow
  encoding bug of the emulator, engines.read_fakesnow_relation); the read-back restores them
  from the emulator's own `is null`, so every column is still compared.
- load_log's file size and content hash on Spark and fakesnow: a warehouse lands only the file
  name (the ingestion tool owns file identity); those columns are left out of the comparison.

CI=true makes the suite mandatory: an engine that cannot start fails it instead of skipping.

    make test-engines        # or: .venv/bin/pytest tests/python/end_to_end/test_engines.py
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import engines
import pandas as pd
import pytest
from conftest import SMALL_FIXTURE_DIR, DbtProject
from engines import Comparison, EngineProject
from warehouse_io import say

pytestmark = [pytest.mark.engines, pytest.mark.e2e]

IN_CI = os.environ.get("CI", "").lower() == "true"
# Python models: excluded on both engines, found by file (see the module docstring).
NOT_ON_ENGINES = dict.fromkeys(engines.python_models(), engines.PYTHON_MODEL_REASON)
# Tables the fixture leaves empty on purpose (equal when empty, and only then).
EMPTY_BY_DESIGN = {
    "audit.model_promotions": "dbt creates it empty; fraud-promote appends the decisions",
    "audit.online_predictions": "empty without var decision_log_path: no online decisions here",
}
MASK_TEST = "test.fraud_detection.assert_mask_email_edge_cases"
BATCH_CUT = "2026-10-01"  # the fixture spans 2026-09-02 .. 2026-11-01 (plus dirty rows)
SPARK_INCREMENTAL_PREFIX = "inc_"
SPARK_FULL_PREFIX = "full_"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"engine unavailable in CI (mandatory there): {reason}")
    pytest.skip(reason)


@dataclass
class EngineBuild:
    engine: str
    project: EngineProject
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # "<prefix><schema>.<name>"
    seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    """DuckDB built from the committed fixture: every SQL model and test."""
    project = DbtProject(tmp_path_factory.mktemp("engines_duckdb"))
    project.run("build", "--exclude", engines.PYTHON_MODELS_SELECTOR)
    return project


def reference_frame(reference: DbtProject, schema: str, name: str) -> pd.DataFrame:
    return reference.query(f'select * from "{schema}"."{name}"')


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineBuild]:
    reason = engines.ensure_java()
    if reason:
        unavailable(reason)
    work = tmp_path_factory.mktemp("engines_spark")
    project = EngineProject(
        work,
        target="spark_local",
        extra_env={
            "FRAUD_SPARK_DIR": str(work / "spark"),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
        },
    )
    build = EngineBuild("spark", project)
    incremental, full = work / "landing_incremental", work / "landing_full"
    second = work / "landing_second"
    engines.split_transactions(SMALL_FIXTURE_DIR, incremental, second, BATCH_CUT)
    shutil.copytree(incremental, full)
    shutil.copy(second / "transactions" / "batch_0001.parquet", full / "transactions")
    tables = engines.landing_tables(SMALL_FIXTURE_DIR)
    landings = {
        "raw": str(SMALL_FIXTURE_DIR.resolve()),
        "raw_inc": str(incremental),
        "raw_full": str(full),
    }

    def timed(label: str, *args: str, vars: dict | None = None, raw: str = "raw") -> None:
        start = time.monotonic()
        project.extra_env["FRAUD_RAW_SCHEMA"] = raw
        project.run(*args, vars=vars)
        build.seconds[label] = time.monotonic() - start

    timed("landing views", "run-operation", "spark_landing_views",
          "--args", f"{{landings: {landings}, tables: {tables}}}")  # fmt: skip
    timed("build (all SQL models + tests)", "build", "--exclude", engines.PYTHON_MODELS_SELECTOR)
    build.frames["run_results:main"] = pd.DataFrame(
        list(project.run_results().items()), columns=["unique_id", "status"]
    )
    # the seeds and the SQL models, no tests (they ran in the main build): the seeds are the
    # reference data silver joins, so each schema prefix needs its own copy
    sql_run = ("build", "--exclude", engines.PYTHON_MODELS_SELECTOR,
               "resource_type:test", "resource_type:unit_test")  # fmt: skip
    timed("incremental batch 1", *sql_run,
          vars={"schema_prefix": SPARK_INCREMENTAL_PREFIX}, raw="raw_inc")  # fmt: skip
    shutil.copy(second / "transactions" / "batch_0001.parquet", incremental / "transactions")
    timed("incremental batch 2", *sql_run,
          vars={"schema_prefix": SPARK_INCREMENTAL_PREFIX}, raw="raw_inc")  # fmt: skip
    timed("full build of both batches", *sql_run,
          vars={"schema_prefix": SPARK_FULL_PREFIX}, raw="raw_full")  # fmt: skip
    export = work / "export"
    prefixes = ["", SPARK_INCREMENTAL_PREFIX, SPARK_FULL_PREFIX]
    timed("export relations", "run-operation", "spark_export_relations",
          "--args", f"{{directory: '{export}', schema_prefixes: {prefixes}}}")  # fmt: skip
    for folder in sorted(p for p in export.iterdir() if p.is_dir()):
        build.frames[folder.name] = engines.read_parquet_folder(folder)
    # dbt-spark's session lives and ends in each dbt process: no JVM is left running.
    yield build


@pytest.fixture(scope="module")
def snowflake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineBuild]:
    work = tmp_path_factory.mktemp("engines_fakesnow")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(engines.fakesnow_server(work))
        except (OSError, RuntimeError) as error:
            unavailable(f"fakesnow server did not start: {error}")
        project = EngineProject(
            work,
            target="snowflake_emulated",
            extra_env={"FRAUD_FAKESNOW_PORT": str(server.port)},
        )
        build = EngineBuild("fakesnow", project)
        start = time.monotonic()
        with contextlib.closing(server.connect()) as conn:
            engines.load_raw_snowflake(conn.cursor(), SMALL_FIXTURE_DIR)
        build.seconds["load fixture into FRAUD.RAW"] = time.monotonic() - start
        start = time.monotonic()
        project.run(
            "build", "--exclude", f"{engines.PYTHON_MODELS_SELECTOR} resource_type:unit_test"
        )
        build.seconds["build (all SQL models + data tests)"] = time.monotonic() - start
        build.frames["run_results:main"] = pd.DataFrame(
            list(project.run_results().items()), columns=["unique_id", "status"]
        )
        with contextlib.closing(server.connect()) as conn:
            cursor = conn.cursor()
            for model in project.sql_models():
                build.frames[f"{model['schema']}.{model['name']}"] = engines.read_fakesnow_relation(
                    cursor, f"{engines.FAKESNOW_DATABASE}.{model['schema']}.{model['name']}"
                )
        yield build


def statuses(build: EngineBuild) -> dict[str, str]:
    frame = build.frames["run_results:main"]
    return dict(zip(frame["unique_id"], frame["status"], strict=True))


@pytest.mark.parametrize("engine", ["spark", "snowflake"])
def test_every_sql_model_builds(engine: str, request: pytest.FixtureRequest) -> None:
    """Every SQL model built, every data test passed; only the named Python models left out."""
    build: EngineBuild = request.getfixturevalue(engine)
    results = statuses(build)
    # exposures are not executed (dbt reports them no-op)
    failed = {
        k: v
        for k, v in results.items()
        if v not in {"success", "pass"} and not k.startswith("exposure.")
    }
    assert not failed, f"{build.engine}: {failed}"
    built = {k.split(".")[-1] for k in results if k.startswith("model.")}
    sql_models = {m["name"] for m in build.project.sql_models()}
    assert built == sql_models, f"{build.engine}: not built {sorted(sql_models - built)}"
    # Python models are disabled on dbt-spark (their config) and excluded by file on fakesnow.
    left_out = {k.split(".")[-1] for k in build.project.model_ids()} - built
    assert left_out <= set(NOT_ON_ENGINES), (
        f"{build.engine}: left out {sorted(left_out)}, not a Python model {sorted(NOT_ON_ENGINES)}"
    )
    assert any(k.startswith("test.") for k in results), "no data test ran"
    say(request, f"\n{build.engine} timings: " + ", ".join(
        f"{label} {seconds:.0f} s" for label, seconds in build.seconds.items()))  # fmt: skip


def test_same_answers_as_duckdb(
    spark: EngineBuild, snowflake: EngineBuild, reference: DbtProject,
    request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """engine x table -> rows, equal to DuckDB's (yes/no); fails on any difference."""
    results: list[Comparison] = []
    for build in (spark, snowflake):
        for model in build.project.sql_models():
            key = f"{model['schema']}.{model['name']}"
            assert key in build.frames, f"{build.engine}: {key} was not read back"
            results.append(
                engines.compare(
                    build.engine,
                    key,
                    build.frames[key],
                    reference_frame(reference, model["schema"], model["name"]),
                )
            )
    say(
        request,
        "\nSQL models on other engines vs DuckDB (fixture tests/fixtures/small; floats to "
        f"{engines.FLOAT_SIGNIFICANT_DIGITS} significant digits; columns aside by design: "
        + "; ".join(f"{c} ({why})" for c, why in engines.RUN_DEPENDENT_COLUMNS.items())
        + ")\n"
        + engines.format_table(results)
        + f"\nnot run there: {', '.join(NOT_ON_ENGINES)} ({engines.PYTHON_MODEL_REASON})",
    )
    empty = [r.table for r in results if r.rows == 0 and r.table not in EMPTY_BY_DESIGN]
    assert not empty, f"empty on the fixture (an equality that proves nothing): {empty}"
    different = [f"{r.engine} {r.table}: {r.detail}" for r in results if not r.equal]
    assert not different, "\n".join(different)


def test_mask_email_edge_cases_on_every_engine(
    spark: EngineBuild, snowflake: EngineBuild, reference: DbtProject
) -> None:
    """assert_mask_email_edge_cases (every edge case's expected mask) passed on each engine: on
    Spark through its SQL function, on fakesnow through the Snowflake function's body inlined
    (no UDFs there); DuckDB ran it in the reference build."""
    for build in (spark, snowflake):
        assert statuses(build).get(MASK_TEST) == "pass", f"{build.engine}: {statuses(build)}"
    duck = json.loads((reference.root / "dbt_target" / "run_results.json").read_text())
    assert {r["unique_id"]: r["status"] for r in duck["results"]}.get(MASK_TEST) == "pass"


def test_spark_two_batches_incrementally_equal_one_full_build(
    spark: EngineBuild, request: pytest.FixtureRequest
) -> None:
    """Batch 1 then batch 2 (incremental runs) equal one full build of both, on Spark."""
    models = spark.project.sql_models()
    results = []
    for model in models:
        incremental = spark.frames[f"{SPARK_INCREMENTAL_PREFIX}{model['schema']}.{model['name']}"]
        full = spark.frames[f"{SPARK_FULL_PREFIX}{model['schema']}.{model['name']}"]
        results.append(engines.compare("spark incremental", model["name"], incremental, full))
    say(request, "\n" + engines.format_table(results, reference="spark full"))
    raw = spark.frames[f"{SPARK_INCREMENTAL_PREFIX}bronze.transactions_raw"]
    assert raw["loaded_at"].nunique() == 2, "the second run was not incremental"
    assert raw["source_file_name"].nunique() == 2
    different = [f"{r.table}: {r.detail}" for r in results if not r.equal]
    assert not different, "\n".join(different)
