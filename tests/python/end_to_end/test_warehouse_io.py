"""warehouse_io.sql_type: one Parquet -> SQL landing type map for PostgreSQL and Snowflake."""

from __future__ import annotations

import pyarrow as pa
import pytest
from warehouse_io import SQL_TYPES, sql_type

CASES = [
    (pa.string(), "text", "varchar"),
    (pa.large_string(), "text", "varchar"),
    (pa.bool_(), "boolean", "boolean"),
    (pa.int32(), "bigint", "bigint"),
    (pa.float64(), "double precision", "float"),
    (pa.decimal128(18, 2), "numeric(18, 2)", "numeric(18, 2)"),
    (pa.date32(), "date", "date"),
    (pa.timestamp("us"), "timestamp", "timestamp_ntz"),
    (pa.timestamp("us", tz="UTC"), "timestamptz", "timestamp_tz"),
]


@pytest.mark.parametrize(("arrow_type", "postgres", "snowflake"), CASES)
def test_sql_type(arrow_type: pa.DataType, postgres: str, snowflake: str) -> None:
    assert sql_type(arrow_type, "postgres") == postgres
    assert sql_type(arrow_type, "snowflake") == snowflake


def test_the_fixtures_landing_types_are_all_mapped() -> None:
    import pyarrow.parquet as pq
    from conftest import SMALL_FIXTURE_DIR

    for path in sorted(SMALL_FIXTURE_DIR.glob("*/*.parquet")):
        for field in pq.read_schema(path):
            for warehouse in SQL_TYPES:
                assert sql_type(field.type, warehouse), f"{path}: {field}"


def test_an_unknown_type_names_the_warehouse() -> None:
    with pytest.raises(AssertionError, match="no snowflake type for Parquet type binary"):
        sql_type(pa.binary(), "snowflake")
