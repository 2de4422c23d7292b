"""Helpers for tests/python/end_to_end/test_engines.py: local Spark and the fakesnow server,
started and stopped by the test, the landing data loaded into them, and a comparison of every
SQL model's relation with DuckDB's.

Nothing here is a mock: Spark is the real engine (dbt-spark ``method: session``, in the dbt
process), fakesnow a real HTTP server answering dbt-snowflake.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import math
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import PROJECT_ROOT, DbtProject
from system_packages import ensure_debian_package
from warehouse_io import sql_type


def landing_tables(fixture: Path) -> list[str]:
    """Every landing table of a fixture: each sub-folder holding Parquet files."""
    return sorted(p.name for p in fixture.iterdir() if p.is_dir() and any(p.glob("*.parquet")))


# Floats are equal when they agree to this many significant digits (sums and standard deviations
# are computed in a different order on each engine).
FLOAT_SIGNIFICANT_DIGITS = 9
# Columns left out of every comparison, by name, because they differ by design (not by dialect):
# "<column>" anywhere, "<table>.<column>" in that table only.
RUN_DEPENDENT_COLUMNS = {
    "loaded_at": "the load instant of the dbt run",
    "transactions_rejected.rejection_id": "a hash of the row's file, position and loaded_at",
    # DuckDB reads the landing files themselves (macro duckdb__landing_files: path, size, md5);
    # on a warehouse the ingestion tool owns file identity and only the file name is landed.
    "file_path": "DuckDB: the file's absolute path; a warehouse (Spark, fakesnow): its name",
    "file_size_bytes": "file metadata DuckDB reads from the file; null on a warehouse",
    "content_hash": "md5 of the file's bytes, DuckDB only; null on a warehouse",
    "source_file_hash": "md5 of the file's bytes, DuckDB only; null on a warehouse",
}
# Python models cannot run on these engines (no Python models on open-source Spark, no Snowpark
# in fakesnow): every models/**/*.py is excluded (selector PYTHON_MODELS_SELECTOR), by file, so
# a new Python model needs no edit here.
PYTHON_MODEL_REASON = "Python model: none on open-source Spark or fakesnow (no Snowpark)"
PYTHON_MODELS_SELECTOR = "file:*.py"


def python_models() -> list[str]:
    """The project's Python models, by file (models/**/*.py)."""
    return sorted(path.stem for path in (PROJECT_ROOT / "models").rglob("*.py"))


def excluded_columns(table: str) -> set[str]:
    """The RUN_DEPENDENT_COLUMNS of ``table`` (``<schema>.<name>`` or ``<name>``)."""
    name = table.rsplit(".", 1)[-1]
    columns = set()
    for key in RUN_DEPENDENT_COLUMNS:
        owner, _, column = key.rpartition(".")
        if not owner or owner == name:
            columns.add(column)
    return columns


FAKESNOW_DATABASE = "FRAUD"
INSERT_CHUNK_ROWS = 2000
FAKESNOW_STARTUP_S = 60
# fakesnow can wedge a dbt run; the server is killed after this, so dbt fails instead of hanging.
FAKESNOW_WATCHDOG_S = 600


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_java() -> str | None:
    """``java`` on PATH (Debian's openjdk-17-jre-headless, installed when missing and possible);
    why not, or None."""
    return ensure_debian_package("java", "openjdk-17-jre-headless")


@dataclass
class EngineProject(DbtProject):
    """A conftest ``DbtProject`` (its ``extra_env``: engine folders, ports, raw schema) that
    reads its own manifest and run results."""

    def run_results(self) -> dict[str, str]:
        """unique_id -> status of the last dbt command."""
        results = json.loads((self.root / "dbt_target" / "run_results.json").read_text())
        return {r["unique_id"]: r["status"] for r in results["results"]}

    def sql_models(self) -> list[dict[str, str]]:
        """Every enabled SQL model of the manifest: name, schema (without prefix), kind."""
        manifest = json.loads((self.root / "dbt_target" / "manifest.json").read_text())
        models = [
            {
                "name": node["alias"],
                "schema": node["config"]["schema"],
                "materialized": node["config"]["materialized"],
            }
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model" and node["language"] == "sql"
        ]
        return sorted(models, key=lambda m: (m["schema"], m["name"]))

    def model_ids(self) -> list[str]:
        """unique_id of every model of the manifest, SQL or Python."""
        manifest = json.loads((self.root / "dbt_target" / "manifest.json").read_text())
        return [k for k, node in manifest["nodes"].items() if node["resource_type"] == "model"]


# --------------------------------------------------------------------------------------------
# landing data


def split_transactions(fixture: Path, out_first: Path, out_second: Path, cut: str) -> None:
    """The fixture's transactions as two landing batches: rows before ``cut`` (a date) in
    batch_0000, the rest (and rows with no timestamp) in batch_0001, each in the original row
    order. Every copy of a transaction shares its timestamp, so no id spans both batches.
    The other landing tables are copied to both folders."""
    data = pa.concat_tables(
        pq.read_table(path) for path in sorted((fixture / "transactions").glob("*.parquet"))
    )
    frame = data.to_pandas()
    early = frame["transaction_timestamp"] < pd.Timestamp(cut)
    for folder in (out_first, out_second):
        for table in landing_tables(fixture):
            if table != "transactions":
                shutil.copytree(fixture / table, folder / table, dirs_exist_ok=True)
        (folder / "transactions").mkdir(parents=True, exist_ok=True)
    first = pa.Table.from_pandas(frame[early], schema=data.schema, preserve_index=False)
    second = pa.Table.from_pandas(frame[~early], schema=data.schema, preserve_index=False)
    assert first.num_rows and second.num_rows, f"cut {cut} leaves a batch empty"
    pq.write_table(first, out_first / "transactions" / "batch_0000.parquet")
    pq.write_table(second, out_second / "transactions" / "batch_0001.parquet")


def load_raw_snowflake(cursor: Any, fixture: Path, schema: str = "RAW") -> dict[str, int]:
    """Plays the ingestion tool (COPY INTO with METADATA$FILENAME): each table's Parquet files
    into <schema>.<table> with the lineage columns bronze reads on a warehouse."""
    counts = {}
    cursor.execute(f"create schema if not exists {FAKESNOW_DATABASE}.{schema}")
    for table in landing_tables(fixture):
        files = sorted((fixture / table).glob("*.parquet"))
        assert files, f"no Parquet file in {fixture / table}"
        tables = [(path.name, pq.read_table(path)) for path in files]
        arrow_schema = pa.unify_schemas([data.schema for _, data in tables])
        names = [column.name for column in arrow_schema]
        columns = ", ".join(f"{c.name} {sql_type(c.type, 'snowflake')}" for c in arrow_schema)
        target = f"{FAKESNOW_DATABASE}.{schema}.{table}"
        cursor.execute(
            f"create or replace table {target} ({columns},"
            " _source_file_name varchar, _source_file_row_number bigint)"
        )
        counts[table] = 0
        for file_name, data in tables:
            rows = [
                (*(row.get(name) for name in names), file_name, number)
                for number, row in enumerate(data.to_pylist())
            ]
            # One multi-row insert per chunk: fakesnow translates each statement, so row-by-row
            # executemany takes minutes for the fixture.
            for start in range(0, len(rows), INSERT_CHUNK_ROWS):
                values = ",\n".join(
                    "(" + ", ".join(map(sql_literal, row)) + ")"
                    for row in rows[start : start + INSERT_CHUNK_ROWS]
                )
                cursor.execute(f"insert into {target} values {values}")
            counts[table] += len(rows)
    return counts


def sql_literal(value: Any) -> str:
    """A value of the fixture as a Snowflake literal (strings quoted, quotes doubled)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if math.isfinite(value) else "null"
    if isinstance(value, dt.datetime | dt.date):
        return (
            "'" + value.isoformat(sep=" ") + "'"
            if isinstance(value, dt.datetime)
            else ("'" + value.isoformat() + "'")
        )
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


# --------------------------------------------------------------------------------------------
# fakesnow server


@dataclass
class FakesnowServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def connect(self) -> Any:
        import snowflake.connector

        return snowflake.connector.connect(
            account="fakesnow",
            user="fake",
            password="snow",
            host="127.0.0.1",
            port=self.port,
            protocol="http",
            database=FAKESNOW_DATABASE,
            schema="PUBLIC",
            warehouse="FAKESNOW",
            login_timeout=10,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@contextlib.contextmanager
def fakesnow_server(work: Path) -> Iterator[FakesnowServer]:
    """``fakesnow -s`` on 127.0.0.1 and a free port, in-memory databases; stopped on exit, also
    on failure, and by a watchdog after FAKESNOW_WATCHDOG_S so a wedged dbt run fails."""
    port = free_port()
    log = work / "fakesnow.log"
    fakesnow = Path(sys.executable).parent / "fakesnow"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(fakesnow), "-s", "--host", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=work,
        )
    server = FakesnowServer(port, process, log)
    watchdog = threading.Timer(FAKESNOW_WATCHDOG_S, server.stop)
    watchdog.daemon = True
    try:
        deadline = time.monotonic() + FAKESNOW_STARTUP_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"fakesnow exited {process.returncode}: {log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"fakesnow did not listen on {port}: {log.read_text()}")
            time.sleep(0.3)
        watchdog.start()
        with contextlib.closing(server.connect()) as conn:
            conn.cursor().execute(f"create database if not exists {FAKESNOW_DATABASE}")
        yield server
    finally:
        watchdog.cancel()
        server.stop()


# fakesnow's server sends a null TIMESTAMP_* value as 1970-01-01 00:00:00: its Arrow encoding
# (fakesnow/arrow.py timestamp_to_sf_struct, fakesnow 0.12.1) builds the (epoch, fraction) struct
# without the column's validity bitmap. The value is null inside the emulator (`is null` is true,
# to_varchar gives null); only the result set loses it. Minimal case: `create table t (r
# timestamp_ntz); insert into t values (null); select r from t` answers 1970-01-01 over the
# server (fakesnow.patch(), in-process, answers None). No upstream issue found. Not Snowflake
# behaviour, so the read-back restores those nulls from the emulator's own `is null`.
FAKESNOW_TIMESTAMP_TYPES = frozenset(
    {"TIMESTAMP", "TIMESTAMP_LTZ", "TIMESTAMP_TZ", "TIMESTAMP_NTZ"}
)
FAKESNOW_NULL_FLAG = "__is_null__"


def read_fakesnow_relation(cursor: Any, relation: str) -> pd.DataFrame:
    """Every row of ``relation`` on fakesnow, with the null timestamps its server sends as
    1970-01-01 null again (FAKESNOW_TIMESTAMP_TYPES above): each timestamp column is read with
    ``<column> is null`` beside it."""
    from snowflake.connector.constants import FIELD_ID_TO_NAME

    cursor.execute(f"select * from {relation} limit 0")
    columns = [d.name for d in cursor.description]
    stamps = [
        d.name
        for d in cursor.description
        if FIELD_ID_TO_NAME[d.type_code] in FAKESNOW_TIMESTAMP_TYPES
    ]
    flags = "".join(f', "{c}" is null as "{FAKESNOW_NULL_FLAG}{c}"' for c in stamps)
    cursor.execute(f"select *{flags} from {relation}")
    frame = pd.DataFrame(
        cursor.fetchall(), columns=columns + [FAKESNOW_NULL_FLAG + c for c in stamps]
    ).astype({c: object for c in stamps})
    for column in stamps:
        flag = frame.pop(FAKESNOW_NULL_FLAG + column).astype(bool)
        frame.loc[flag, column] = None
    return frame


# --------------------------------------------------------------------------------------------
# comparison


def normalise(value: Any) -> Any:
    """One representation per value across engines and drivers: numbers as floats rounded to
    FLOAT_SIGNIFICANT_DIGITS, timestamps naive UTC, missing values None."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
        number = float(value)
        if math.isnan(number):
            return None
        return float(f"{number:.{FLOAT_SIGNIFICANT_DIGITS}g}") if math.isfinite(number) else number
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return normalise(value.item())
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    return value


def comparable_rows(frame: pd.DataFrame, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    frame = frame.rename(columns=str.lower)
    excluded = excluded_columns(table)
    columns = sorted(c for c in frame.columns if c not in excluded)
    rows = [
        tuple(normalise(v) for v in row)
        for row in frame[columns].astype(object).itertuples(index=False)
    ]
    return columns, sorted(rows, key=repr)


@dataclass
class Comparison:
    engine: str
    table: str
    rows: int
    reference_rows: int
    equal: bool
    detail: str = ""


def compare(engine: str, table: str, actual: pd.DataFrame, expected: pd.DataFrame) -> Comparison:
    columns, rows = comparable_rows(actual, table)
    ref_columns, ref_rows = comparable_rows(expected, table)
    detail = ""
    if columns != ref_columns:
        detail = f"columns differ: {sorted(set(columns) ^ set(ref_columns))}"
    elif rows != ref_rows:
        only = sorted(set(rows) - set(ref_rows), key=repr)[:2]
        ref_only = sorted(set(ref_rows) - set(rows), key=repr)[:2]
        detail = f"{engine} only e.g. {only}; reference only e.g. {ref_only}"
    return Comparison(engine, table, len(rows), len(ref_rows), not detail, detail)


def format_table(results: list[Comparison], reference: str = "duckdb") -> str:
    header = ("engine", "table", "rows", f"{reference} rows", "equal")
    body = [
        (r.engine, r.table, str(r.rows), str(r.reference_rows), "yes" if r.equal else "NO")
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *body]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def read_parquet_folder(folder: Path) -> pd.DataFrame:
    """A folder Spark wrote (part-*.parquet), as one frame."""
    files = sorted(folder.glob("*.parquet"))
    assert files, f"Spark wrote no Parquet file in {folder}"
    return pa.concat_tables(pq.read_table(path) for path in files).to_pandas()
