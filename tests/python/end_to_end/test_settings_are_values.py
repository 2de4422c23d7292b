"""Settings are values, not SQL (issue 11): every var that reaches SQL is validated at compile
time, and an injection attempt fails `dbt compile` with an error naming the var.

Each case compiles the model that uses the var (DuckDB `test` target, or Snowflake offline for
the warehouse-only lineage column vars) in its own target folder, two at a time.

    .venv/bin/pytest tests/python/test_settings_are_values.py
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import DbtProject

OFFLINE = ("--no-populate-cache", "--no-introspect")

# name: (target, model to compile, vars, text the error must contain)
BAD_SETTINGS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "as_of_date injection": (
        "test",
        "transactions_validated",
        {"as_of_date": "2026-11-01' as timestamp) or (1 = 1"},
        "Invalid var as_of_date",
    ),
    "as_of_date not a calendar date": (
        "test",
        "transaction_features",
        {"as_of_date": "2026-02-30"},
        "Invalid var as_of_date",
    ),
    "min_transaction_date injection": (
        "test",
        "transactions_validated",
        {"min_transaction_date": "2000-01-01'); drop table bronze.transactions_raw; --"},
        "Invalid var min_transaction_date",
    ),
    "min_transaction_date after as_of_date": (
        "test",
        "transactions_validated",
        {"min_transaction_date": "2027-01-01"},
        "Invalid var min_transaction_date",
    ),
    "high_value_amount not a number": (
        "test",
        "transaction_features",
        {"high_value_amount": "0 or true"},
        "Invalid var high_value_amount",
    ),
    "raw_data_path with a quote": (
        "test",
        "transactions_raw",
        {"raw_data_path": "data/raw/x.parquet'); select * from read_csv('/etc/passwd"},
        "Invalid var raw_data_path",
    ),
    "decision_log_path with a quote": (
        "test",
        "decision_log_raw",
        {"decision_log_path": "warehouse/decisions'); select * from read_csv('/etc/passwd"},
        "Invalid var decision_log_path",
    ),
    "raw_data_path with a quote (customers)": (
        "test",
        "customers_raw",
        {"raw_data_path": "data'raw"},
        "Invalid var raw_data_path",
    ),
    "schema_prefix injection": (
        "test",
        "customers",
        {"schema_prefix": 'x"; drop schema silver; --'},
        "Invalid var schema_prefix",
    ),
    "accepted_currencies injection (var removed)": (
        "test",
        "transactions_validated",
        {"accepted_currencies": ["USD", "CAD') and ('a'='b"]},
        "var accepted_currencies is deprecated",
    ),
    "raw_file_name_column injection": (
        "snowflake",
        "transactions_raw",
        {"offline_compile": True, "raw_file_name_column": "_file; drop table raw.transactions"},
        "Invalid var raw_file_name_column",
    ),
    "raw_file_row_column injection": (
        "snowflake",
        "customers_raw",
        {"offline_compile": True, "raw_file_row_column": "1) as x, (select 1"},
        "Invalid var raw_file_row_column",
    ),
}


def _compile(
    root: Path, target: str, model: str, dbt_vars: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    project = DbtProject(root, dict(dbt_vars), target=target)
    extra = OFFLINE if target != "test" else ()
    return project.run("compile", "--select", model, *extra, check=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("settings")
    cases = list(BAD_SETTINGS.items())
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            name: pool.submit(_compile, root / f"case{i}", target, model, dbt_vars)
            for i, (name, (target, model, dbt_vars, _)) in enumerate(cases)
        }
        futures["valid defaults"] = pool.submit(
            _compile, root / "valid", "test", "transactions_validated", {}
        )
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_setting_fails_compile_naming_the_var(
    results: dict[str, subprocess.CompletedProcess], case: str
) -> None:
    expected = BAD_SETTINGS[case][3]
    result = results[case]
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{case}: compiled although the var is bad:\n{output[-2000:]}"
    assert expected in output, f"{case}: error does not name the var:\n{output[-3000:]}"


def test_valid_settings_compile_to_literals(
    results: dict[str, subprocess.CompletedProcess],
) -> None:
    result = results["valid defaults"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "cast('2026-11-01' as timestamp)" in result.stdout
    assert "cast('2000-01-01' as timestamp)" in result.stdout
