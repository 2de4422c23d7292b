"""Helpers shared by the end-to-end suites that load the committed fixture into a real
warehouse (test_governance.py: PostgreSQL; test_engines.py via engines.py: fakesnow) and print
their tables past pytest's capture."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

# The landing column type of each Parquet type family, per warehouse (decimals keep their
# precision and scale on every warehouse: numeric(p, s)).
SQL_TYPES: dict[str, dict[str, str]] = {
    "postgres": {
        "string": "text",
        "boolean": "boolean",
        "integer": "bigint",
        "floating": "double precision",
        "date": "date",
        "timestamp": "timestamp",
        "timestamp_tz": "timestamptz",
    },
    "snowflake": {
        "string": "varchar",
        "boolean": "boolean",
        "integer": "bigint",
        "floating": "float",
        "date": "date",
        "timestamp": "timestamp_ntz",
        "timestamp_tz": "timestamp_tz",
    },
}


def sql_type(arrow_type: pa.DataType, warehouse: str) -> str:
    """The SQL type a landing column of ``arrow_type`` gets on ``warehouse`` (a SQL_TYPES key)."""
    types = SQL_TYPES[warehouse]
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision}, {arrow_type.scale})"
    if pa.types.is_timestamp(arrow_type):
        return types["timestamp_tz" if arrow_type.tz else "timestamp"]
    for family, check in (
        ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
        ("boolean", pa.types.is_boolean),
        ("integer", pa.types.is_integer),
        ("floating", pa.types.is_floating),
        ("date", pa.types.is_date),
    ):
        if check(arrow_type):
            return types[family]
    raise AssertionError(f"no {warehouse} type for Parquet type {arrow_type}")


def say(request: Any, text: str) -> None:
    """Print past pytest's capture (equality tables and access matrices belong in `make test`
    output)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(text, flush=True)
        return
    with capture.global_and_fixture_disabled():
        print(text, flush=True)
