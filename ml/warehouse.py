"""Open the warehouse of a dbt target as a DB-API connection, the way dbt itself would.

The connection settings come from the dbt profile, never from a hard-coded file path:

* ``profiles.yml`` is looked up like dbt does: the ``profiles_dir`` argument, else
  ``DBT_PROFILES_DIR``, else the project directory, else ``~/.dbt``.
* The profile name is the ``profile:`` key of ``dbt_project.yml`` (project directory:
  ``DBT_PROJECT_DIR`` or this repository).
* The target is the ``target`` argument (``--target``), else ``DBT_TARGET``, else the profile's
  own default. Only that output is rendered: its ``{{ env_var('X', 'default') }}`` expressions
  (with the ``as_number`` / ``as_bool`` / ``as_text`` / ``as_native`` filters) are evaluated by a
  small sandboxed jinja2 renderer; an ``env_var`` without default whose variable is unset is an
  error, as in dbt.

Supported adapters and their drivers / parameter styles (callers always write ``?`` markers; the
statement is translated for the driver, and every value travels as a bound parameter):

==========  ===============================  =====================================
type        driver                           markers sent to the driver
==========  ===============================  =====================================
duckdb      duckdb                           ``?``
postgres    psycopg2                         ``%s`` (literal ``%`` doubled)
databricks  databricks-sql-connector         ``?`` (native server-side parameters)
snowflake   snowflake-connector-python       ``?`` (``paramstyle="qmark"``, server side)
==========  ===============================  =====================================

Relations are resolved from catalog / schema / name and quoted as identifiers:
``relation("audit", "model_predictions")`` gives ``"fraud"."audit"."model_predictions"`` on the
DuckDB file ``fraud.duckdb`` (catalog = file name, as dbt-duckdb names it), backticks on
Databricks, upper-cased quoted names on Snowflake (dbt creates unquoted, hence upper-case,
identifiers there). ``schema_prefix`` mirrors the project's ``schema_prefix`` var (sandboxes).

DuckDB allows one writer process per file (or several read-only ones). When another process
(``dbt build``, a concurrent ``fraud-promote``) holds the file, opening is retried with exponential
backoff up to ``lock_timeout`` seconds (default ``FRAUD_WAREHOUSE_LOCK_TIMEOUT`` or 120) and then
fails with a message naming the file. A relative DuckDB path is resolved against the dbt project
directory (where ``make`` runs dbt). Result column names are lower-cased on every engine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from ml.settings import PROJECT_ROOT, from_env

DEFAULT_LOCK_TIMEOUT_S = 120.0
SUPPORTED_TYPES = ("duckdb", "postgres", "databricks", "snowflake")

# Column types for the few tables this package creates itself (audit.model_promotions).
SQL_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {
        "text": "varchar",
        "timestamp": "timestamp",
        "double": "double",
        "bigint": "bigint",
        "boolean": "boolean",
    },
    "postgres": {
        "text": "text",
        "timestamp": "timestamp",
        "double": "double precision",
        "bigint": "bigint",
        "boolean": "boolean",
    },
    "snowflake": {
        "text": "varchar",
        "timestamp": "timestamp_ntz",
        "double": "double",
        "bigint": "bigint",
        "boolean": "boolean",
    },
    "databricks": {
        "text": "string",
        "timestamp": "timestamp",
        "double": "double",
        "bigint": "bigint",
        "boolean": "boolean",
    },
}


class WarehouseError(RuntimeError):
    """The profile cannot be read or the warehouse cannot be reached (a user-facing message)."""


# --------------------------------------------------------------------------------------------
# Profile reading and rendering
# --------------------------------------------------------------------------------------------

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with the C loader when libyaml is there (several times faster)."""
    return yaml.load(text, Loader=_YAML_LOADER)


@dataclass(frozen=True)
class TargetProfile:
    """One rendered output of a dbt profile."""

    profile_name: str
    target_name: str
    profiles_path: Path
    config: Mapping[str, Any]

    @property
    def type(self) -> str:
        return str(self.config.get("type", ""))


class _Conversion:
    """Records which conversion filter (as_number, as_bool, as_native) a template asked for."""

    def __init__(self) -> None:
        self.kind: str | None = None


def _make_environment(conversion: _Conversion) -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)

    def env_var(name: str, default: Any = None) -> str:
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return str(default)
        raise WarehouseError(f"Env var required but not provided: '{name}' (used in profiles.yml)")

    def _mark(kind: str) -> Any:
        def _filter(value: Any) -> Any:
            conversion.kind = kind
            return value

        return _filter

    env.globals["env_var"] = env_var
    env.filters["as_number"] = _mark("number")
    env.filters["as_bool"] = _mark("bool")
    env.filters["as_native"] = _mark("native")
    env.filters["as_text"] = _mark("text")
    return env


def _convert(text: str, kind: str | None) -> Any:
    if kind == "number":
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError as exc:
                raise WarehouseError(f"as_number: {text!r} is not a number") from exc
    if kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off", ""):
            return False
        raise WarehouseError(f"as_bool: {text!r} is not a boolean")
    if kind == "native":
        return load_yaml(text)
    return text


def render_value(value: Any) -> Any:
    """Render every jinja expression in a profile value (recursively for lists and mappings)."""
    if isinstance(value, Mapping):
        return {key: render_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item) for item in value]
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        conversion = _Conversion()
        try:
            text = _make_environment(conversion).from_string(value).render()
        except WarehouseError:
            raise
        except Exception as exc:  # jinja2 syntax / undefined errors
            raise WarehouseError(f"cannot render profile value {value!r}: {exc}") from exc
        return _convert(text, conversion.kind)
    return value


def project_dir() -> Path:
    """The dbt project directory: ``DBT_PROJECT_DIR`` or this repository."""
    return Path(os.environ.get("DBT_PROJECT_DIR") or PROJECT_ROOT).resolve()


def find_profiles_path(profiles_dir: str | os.PathLike[str] | None = None) -> Path:
    """``profiles.yml`` with dbt's precedence: argument, DBT_PROFILES_DIR, project dir, ~/.dbt."""
    candidates: list[Path] = []
    if profiles_dir:
        candidates.append(Path(profiles_dir))
    elif os.environ.get("DBT_PROFILES_DIR"):
        candidates.append(Path(os.environ["DBT_PROFILES_DIR"]))
    else:
        candidates += [project_dir(), Path.home() / ".dbt"]
    for folder in candidates:
        path = folder.expanduser() / "profiles.yml"
        if path.is_file():
            return path.resolve()
    looked = ", ".join(str(folder) for folder in candidates)
    raise WarehouseError(f"profiles.yml not found (looked in: {looked})")


def project_profile_name() -> str:
    """The ``profile:`` key of dbt_project.yml (fallback: fraud_detection)."""
    path = project_dir() / "dbt_project.yml"
    if path.is_file():
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
        name = data.get("profile")
        if isinstance(name, str) and name:
            return name
    return "fraud_detection"


def load_target(
    target: str | None = None,
    profiles_dir: str | os.PathLike[str] | None = None,
    profile: str | None = None,
) -> TargetProfile:
    """Read profiles.yml and render the requested output (see the module docstring)."""
    path = find_profiles_path(profiles_dir)
    try:
        document = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise WarehouseError(f"{path}: invalid YAML: {exc}") from exc
    profile_name = profile or project_profile_name()
    section = document.get(profile_name)
    if not isinstance(section, Mapping):
        raise WarehouseError(f"{path}: no profile named {profile_name!r}")
    outputs = section.get("outputs")
    if not isinstance(outputs, Mapping) or not outputs:
        raise WarehouseError(f"{path}: profile {profile_name!r} has no outputs")
    target_name = target or os.environ.get("DBT_TARGET") or render_value(section.get("target"))
    if not target_name:
        raise WarehouseError(f"{path}: profile {profile_name!r} has no default target")
    target_name = str(target_name)
    if target_name not in outputs:
        known = ", ".join(sorted(str(key) for key in outputs))
        raise WarehouseError(
            f"{path}: profile {profile_name!r} has no target {target_name!r} (known: {known})"
        )
    config = render_value(outputs[target_name])
    if not isinstance(config, Mapping):
        raise WarehouseError(f"{path}: target {target_name!r} is not a mapping")
    kind = str(config.get("type", ""))
    if kind not in SUPPORTED_TYPES:
        raise WarehouseError(
            f"target {target_name!r} has type {kind!r}; supported: {', '.join(SUPPORTED_TYPES)}"
        )
    return TargetProfile(profile_name, target_name, path, dict(config))


def duckdb_catalog_name(path: str) -> str:
    """The catalog DuckDB (and dbt-duckdb) gives a database file: its first dot-separated name."""
    if path == ":memory:":
        return "memory"
    return os.path.basename(path).lstrip(".").split(".")[0]


def duckdb_path(profile: TargetProfile) -> Path:
    """The DuckDB file of a profile output; relative paths resolve against the project dir."""
    raw = str(profile.config.get("path") or "")
    if not raw or raw == ":memory:" or "://" in raw or raw.startswith("md:"):
        raise WarehouseError(f"target {profile.target_name!r}: unsupported DuckDB path {raw!r}")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else (project_dir() / path)


# --------------------------------------------------------------------------------------------
# Parameter markers and quoting
# --------------------------------------------------------------------------------------------


def qmark_to_format(sql: str) -> str:
    """Turn ``?`` markers outside quotes into ``%s`` and double every literal ``%`` (psycopg2)."""
    out: list[str] = []
    quote: str | None = None
    for char in sql:
        if char == "%":
            out.append("%%")
            continue
        if quote is not None:
            if char == quote:
                quote = None
            out.append(char)
            continue
        if char in ("'", '"', "`"):
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


def quote_identifier(kind: str, name: str) -> str:
    """Quote one identifier for an engine (embedded quote characters are doubled)."""
    if not name:
        raise ValueError("empty identifier")
    if kind == "databricks":
        return "`" + name.replace("`", "``") + "`"
    if kind == "snowflake":
        name = name.upper()
    return '"' + name.replace('"', '""') + '"'


# --------------------------------------------------------------------------------------------
# The connection
# --------------------------------------------------------------------------------------------


@dataclass
class Warehouse:
    """A DB-API connection to a dbt target, with relation naming and parameter translation."""

    kind: str
    target_name: str
    catalog: str | None
    connection: Any
    schema_prefix: str = ""
    description: str = ""
    _closed: bool = field(default=False, repr=False)

    # -- naming --------------------------------------------------------------------------
    def quote(self, name: str) -> str:
        return quote_identifier(self.kind, name)

    def schema_name(self, schema: str) -> str:
        """The physical schema of a layer (``audit`` → ``<schema_prefix>audit``)."""
        name = f"{self.schema_prefix}{schema}"
        return name.upper() if self.kind == "snowflake" else name

    def schema_ref(self, schema: str) -> str:
        """Quoted ``catalog.schema`` (just ``schema`` on PostgreSQL, which has no cross-db DDL)."""
        quoted = self.quote(self.schema_name(schema))
        if self.catalog and self.kind != "postgres":
            return f"{self.quote(self.catalog)}.{quoted}"
        return quoted

    def relation(self, schema: str, name: str) -> str:
        """Quoted ``catalog.schema.name``, e.g. ``"fraud"."audit"."model_predictions"``."""
        parts = [self.catalog] if self.catalog else []
        parts += [self.schema_name(schema), name]
        return ".".join(self.quote(part) for part in parts)

    def sql_type(self, generic: str) -> str:
        """Engine type name for ``text``, ``timestamp``, ``double``, ``bigint``, ``boolean``."""
        return SQL_TYPES[self.kind][generic]

    # -- statements ------------------------------------------------------------------------
    def _prepare(self, sql: str) -> str:
        return qmark_to_format(sql) if self.kind == "postgres" else sql

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """Run a SELECT with ``?`` markers and bound ``params``; columns are lower-cased."""
        if self.kind == "duckdb":
            frame = self.connection.execute(sql, list(params)).df()
        else:
            cursor = self.connection.cursor()
            try:
                cursor.execute(self._prepare(sql), tuple(params))
                columns = [column[0] for column in cursor.description or []]
                frame = pd.DataFrame.from_records(list(cursor.fetchall()), columns=columns)
            finally:
                cursor.close()
        frame.columns = [str(column).lower() for column in frame.columns]
        return frame

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run a statement with ``?`` markers and bound ``params`` (autocommit)."""
        if self.kind == "duckdb":
            self.connection.execute(sql, list(params))
            return
        cursor = self.connection.cursor()
        try:
            cursor.execute(self._prepare(sql), tuple(params))
        finally:
            cursor.close()

    def insert_row(self, schema: str, name: str, row: Mapping[str, Any]) -> None:
        """Insert one row; column names are quoted, every value is a bound parameter."""
        columns = ", ".join(self.quote(column) for column in row)
        markers = ", ".join("?" for _ in row)
        self.execute(
            f"insert into {self.relation(schema, name)} ({columns}) values ({markers})",
            list(row.values()),
        )

    def create_schema(self, schema: str) -> None:
        self.execute(f"create schema if not exists {self.schema_ref(schema)}")

    def table_exists(self, schema: str, name: str) -> bool:
        """Whether a table or view exists, by information_schema with bound names."""
        schema_name = self.schema_name(schema)
        table_name = name.upper() if self.kind == "snowflake" else name
        if self.kind in ("duckdb", "postgres"):
            sql = (
                "select count(*) as n from information_schema.tables "
                "where table_catalog = current_database() and table_schema = ? and table_name = ?"
            )
        else:
            info = "information_schema"
            if self.catalog:
                info = f"{self.quote(self.catalog)}.information_schema"
            sql = (
                f"select count(*) as n from {info}.tables where table_schema = ? and table_name = ?"
            )
        frame = self.query(sql, [schema_name, table_name])
        return bool(int(frame.iloc[0, 0]) > 0)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.connection.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _lock_timeout(value: float | None) -> float:
    if value is not None:
        return value
    raw = from_env("warehouse_lock_timeout")
    try:
        return float(raw) if raw else DEFAULT_LOCK_TIMEOUT_S
    except ValueError as exc:
        raise WarehouseError(f"FRAUD_WAREHOUSE_LOCK_TIMEOUT={raw!r} is not a number") from exc


def _is_lock_conflict(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _connect_duckdb(path: Path, read_only: bool, timeout: float) -> Any:
    import duckdb

    if not path.exists():
        raise WarehouseError(
            f"DuckDB warehouse {path} does not exist: build it first (dbt build), or point the "
            "target at it (FRAUD_WAREHOUSE_DIR / --target)"
        )
    deadline = time.monotonic() + timeout
    delay = 0.05
    announced = False
    while True:
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:
            if not _is_lock_conflict(exc):
                raise WarehouseError(f"cannot open DuckDB warehouse {path}: {exc}") from exc
            if time.monotonic() + delay > deadline:
                raise WarehouseError(
                    f"DuckDB warehouse {path} is locked by another process (a running dbt build, "
                    f"scoring job or fraud-promote?); gave up after {timeout:g} s "
                    f"(FRAUD_WAREHOUSE_LOCK_TIMEOUT). DuckDB said: {exc}"
                ) from exc
            if not announced:
                print(
                    f"warehouse {path} is locked by another process; retrying for up to "
                    f"{timeout:g} s",
                    file=sys.stderr,
                )
                announced = True
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    # Day boundaries of TIMESTAMPTZ columns in UTC (builds without ICU have no time zones).
    with contextlib.suppress(duckdb.Error):
        connection.execute("SET TimeZone = 'UTC'")
    return connection


def _connect_postgres(config: Mapping[str, Any]) -> Any:
    import psycopg2

    try:
        connection = psycopg2.connect(
            host=config.get("host"),
            port=int(config.get("port") or 5432),
            user=config.get("user"),
            password=config.get("password") or None,
            dbname=config.get("dbname") or config.get("database"),
            connect_timeout=int(config.get("connect_timeout") or 10),
        )
    except psycopg2.Error as exc:
        raise WarehouseError(f"cannot connect to PostgreSQL: {exc}") from exc
    connection.autocommit = True
    return connection


def _connect_databricks(config: Mapping[str, Any]) -> Any:
    from databricks import sql as databricks_sql

    host = str(config.get("host") or "").removeprefix("https://")
    try:
        return databricks_sql.connect(
            server_hostname=host,
            http_path=config.get("http_path"),
            access_token=config.get("token"),
            catalog=config.get("catalog"),
            schema=config.get("schema"),
            _socket_timeout=int(config.get("connect_timeout") or 60),
        )
    except Exception as exc:
        raise WarehouseError(f"cannot connect to Databricks {host}: {exc}") from exc


def _connect_snowflake(config: Mapping[str, Any]) -> Any:
    import snowflake.connector

    kwargs: dict[str, Any] = {
        "account": config.get("account"),
        "user": config.get("user"),
        "role": config.get("role") or None,
        "database": config.get("database"),
        "warehouse": config.get("warehouse"),
        "schema": config.get("schema"),
        "paramstyle": "qmark",
        "login_timeout": int(config.get("connect_timeout") or 30),
    }
    if config.get("private_key_path"):
        kwargs["private_key_file"] = config["private_key_path"]
        if config.get("private_key_passphrase"):
            kwargs["private_key_file_pwd"] = config["private_key_passphrase"]
    else:
        kwargs["password"] = config.get("password")
    try:
        return snowflake.connector.connect(**kwargs)
    except Exception as exc:
        raise WarehouseError(f"cannot connect to Snowflake {config.get('account')}: {exc}") from exc


def connect(
    target: str | None = None,
    *,
    profiles_dir: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    read_only: bool = False,
    lock_timeout: float | None = None,
    schema_prefix: str | None = None,
) -> Warehouse:
    """Open the warehouse of a dbt target (see the module docstring for the lookup rules).

    ``read_only`` applies to DuckDB (several readers may share the file); ``schema_prefix``
    defaults to ``FRAUD_SCHEMA_PREFIX`` (the dbt var ``schema_prefix`` of a sandbox build).
    """
    profile_ = load_target(target, profiles_dir, profile)
    config = profile_.config
    prefix = schema_prefix if schema_prefix is not None else from_env("schema_prefix", "")
    kind = profile_.type
    if kind == "duckdb":
        path = duckdb_path(profile_)
        catalog = str(config.get("database") or duckdb_catalog_name(str(path)))
        connection = _connect_duckdb(path, read_only, _lock_timeout(lock_timeout))
        where = str(path)
    elif kind == "postgres":
        connection = _connect_postgres(config)
        catalog = str(config.get("dbname") or config.get("database") or "")
        where = f"{config.get('host')}:{config.get('port')}/{catalog}"
    elif kind == "databricks":
        connection = _connect_databricks(config)
        catalog = str(config.get("catalog") or "hive_metastore")
        where = f"{config.get('host')} catalog {catalog}"
    else:
        connection = _connect_snowflake(config)
        catalog = str(config.get("database") or "")
        where = f"{config.get('account')} database {catalog}"
    return Warehouse(
        kind=kind,
        target_name=profile_.target_name,
        catalog=catalog or None,
        connection=connection,
        schema_prefix=prefix,
        description=f"{kind} target {profile_.target_name!r} ({where})",
    )


@contextlib.contextmanager
def connected(target: str | None = None, **kwargs: Any) -> Iterator[Warehouse]:
    """``with connected("local") as wh: ...`` — connect and always close."""
    warehouse = connect(target, **kwargs)
    try:
        yield warehouse
    finally:
        warehouse.close()
