"""Benchmark harness (``make bench`` / ``fraud-bench``): the data path, its one-query limit, the
notebook alternative, training, scoring and an incremental rebuild, measured side by side in one
run on data generated once for the run.

Usage::

    fraud-bench [--transactions N | --large] [--customers N] [--parts data,limit,...]
                [--out bench/out] [--training-rerun] [--latency-calls N]

Everything the harness creates lives below ``--out`` (default ``bench/out``): the data
(``work/data-*``), its own DuckDB warehouses (``FRAUD_WAREHOUSE_DIR``), its own MLflow store
(``FRAUD_MLFLOW_DIR``), dbt target/log folders and the results (``results.json``,
``results.md``). The main job's ``data/``, ``warehouse/``, ``.mlflow/`` and ``target/`` are
never touched; ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` are removed from the
environment of every step so a benchmark can never write to a real registry.

Parts (``--parts``, default all, run in this order):

``data``
    ``dbt parse`` (fixed cost), a full ``dbt build`` on a fresh warehouse and MLflow store
    (every model, test, training and scoring), promotion as ``make run`` does it, then the data
    path bronze -> silver -> gold -> scores (``dbt build --full-refresh`` without the two
    training models, scoring with the registered champion). Wall time, transactions/s, peak
    resident memory of the whole process tree (RSS of the process and all its children summed,
    polled every 50 ms), and per-layer times from dbt's ``run_results.json``.
``limit``
    The 16 features of ``gold.transaction_features`` computed by ONE hand-written DuckDB query
    straight over the Parquet files (same validation and feature definitions), checked equal to
    the gold table (float tolerance), timed against the data path.
``notebook``
    The seed notebook's approach in pandas (read Parquet, 16 features, median fill, scaler +
    IsolationForest(contamination=0.01, n_estimators=200, random_state=42), score) against the
    project doing the same work: ``dbt run`` up to gold on a fresh warehouse, then the
    project's IsolationForest pipeline fitted and scored on the gold features.
``training``
    Each model's fit / total training time and MLflow publish time as logged by the full build
    (``ml_models.*_training_runs``, MLflow run start/end, dbt node time), plus the plot
    functions timed directly. ``--training-rerun`` also reruns both training functions with a
    timer around every phase (fit, importance, plots, artifacts, MLflow).
``scoring``
    The model ``gold.fraud_scores`` resolves (champion, else the fallback), loaded as the
    scoring model loads it: batch rows/s of ``ml.scoring.score_customers`` (the scoring model's
    own work, reason codes included), of plain scikit-learn and of ``ml.fast_inference``
    (1 and N threads); single-row latency p50/p99/p99.9 over ``--latency-calls`` calls of the
    fast evaluator, interleaved with plain scikit-learn calls (time-boxed: ~60 ms each). The fast
    scores are checked equal to scikit-learn's on every gold row (tolerance 1e-9).
``incremental``
    After the full build: 1 % more transactions (``simulator --append``, a copy of the data
    folder) and ``dbt build`` again; timed against the full build, per layer.

Targets (issue text) are reported met / missed with the measured figure and what limits it.
Exit codes: 0 done (targets may be missed), 1 a step failed, 2 bad input (before any work).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGETS_FILE = Path(__file__).with_name("targets.yml")
LIMIT_QUERY_FILE = Path(__file__).with_name("limit_query.sql")

DEFAULT_TRANSACTIONS = 1_000_000
LARGE_TRANSACTIONS = 10_000_000
MAX_TRANSACTIONS = 200_000_000
TRANSACTIONS_PER_CUSTOMER = 25  # as the main job (20k customers, 500k transactions)
DEFAULT_DAYS = 90
DEFAULT_SEED = 42
INCREMENT_SHARE = 0.01
PARTS: tuple[str, ...] = ("data", "limit", "notebook", "training", "scoring", "incremental")
NEEDS_FULL_BUILD = frozenset({"limit", "training", "scoring", "incremental"})
POLL_SECONDS = 0.05
LATENCY_CALLS = 10_000
SKLEARN_LATENCY_BUDGET_S = 12.0
LATENCY_BLOCKS = 4
BATCH_REPEATS = 3
FEATURE_TOLERANCE = 1e-9  # relative, limit query vs gold
TRAINING_MODELS: tuple[str, ...] = (
    "isolation_forest_training_runs",
    "random_forest_training_runs",
)

# Sizing estimates (measured on the project's generator: ~24 B/row of Parquet, ~85 B/row per
# warehouse, pandas ~550 B/row for the raw frame). Deliberately generous.
DISK_BYTES_PER_TRANSACTION = 600
DISK_FIXED_BYTES = 1 << 30
NOTEBOOK_RAM_BYTES_PER_TRANSACTION = 1_200

GIB = 1 << 30
MIB = 1 << 20


class BenchInputError(ValueError):
    """Invalid options or environment: reported with exit code 2 before any work."""


class StepFailed(RuntimeError):
    """A measured step (dbt, worker) exited with an error."""


# --------------------------------------------------------------------------------------------
# Measuring processes
# --------------------------------------------------------------------------------------------


class TreeMemoryMonitor(threading.Thread):
    """Polls the resident memory of a process and all its descendants (summed) every
    ``interval`` seconds and keeps the peak."""

    def __init__(self, pid: int, interval: float = POLL_SECONDS) -> None:
        super().__init__(daemon=True, name=f"rss-monitor-{pid}")
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.samples = 0
        self._halt = threading.Event()

    def sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += int(process.memory_info().rss)
        return total

    def run(self) -> None:
        while not self._halt.is_set():
            rss = self.sample()
            self.samples += 1
            self.peak_rss = max(self.peak_rss, rss)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


@dataclass
class Run:
    """One measured subprocess."""

    name: str
    command: list[str]
    seconds: float
    peak_rss: int
    returncode: int
    log: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_measured(
    name: str, command: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path = PROJECT_ROOT
) -> Run:
    """Run ``command`` with its output in ``log``; wall time and peak tree RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        started = time.perf_counter()
        process = psutil.Popen(
            list(command), cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
        monitor = TreeMemoryMonitor(process.pid)
        monitor.start()
        try:
            returncode = process.wait()
        finally:
            monitor.stop()
        seconds = time.perf_counter() - started
    return Run(name, list(command), seconds, monitor.peak_rss, int(returncode), str(log))


def log_tail(path: str | Path, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# --------------------------------------------------------------------------------------------
# Configuration and paths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    transactions: int
    customers: int
    days: int
    seed: int
    parts: tuple[str, ...]
    out: Path
    training_rerun: bool = False
    latency_calls: int = LATENCY_CALLS
    threads: int = 2

    @property
    def increment(self) -> int:
        return max(1, round(self.transactions * INCREMENT_SHARE))


@dataclass(frozen=True)
class Paths:
    out: Path

    @property
    def work(self) -> Path:
        return self.out / "work"

    def data(self, config: BenchConfig) -> Path:
        key = f"data-{config.transactions}tx-{config.customers}c-{config.days}d-s{config.seed}"
        return self.work / key / "raw"

    @property
    def landing(self) -> Path:
        """What dbt reads (var raw_data_path): symlinks to the generated files, plus the batch
        the incremental part appends, so the generated data itself is never modified."""
        return self.work / "landing"

    @property
    def warehouse(self) -> Path:
        return self.work / "warehouse"

    @property
    def warehouse_same_work(self) -> Path:
        return self.work / "warehouse-same-work"

    @property
    def mlflow(self) -> Path:
        return self.work / "mlflow"

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    def target(self, name: str) -> Path:
        return self.work / "dbt-target" / name

    @property
    def state(self) -> Path:
        return self.work / "state.json"

    @property
    def specs(self) -> Path:
        return self.work / "specs"


def default_customers(transactions: int) -> int:
    return max(100, transactions // TRANSACTIONS_PER_CUSTOMER)


def increment_fraud_rate(increment: int, customers: int) -> float:
    """Fraud rate for the 1 % batch: the project's 1 %, capped by the generator's budget
    (fraudulent customers x 37 rows must stay within half of the batch)."""
    from simulator.config import MAX_FRAUD_ROWS_PER_CUSTOMER

    allowed = increment // 2 // MAX_FRAUD_ROWS_PER_CUSTOMER
    return min(0.01, allowed / customers) if customers else 0.0


def project_vars() -> dict[str, Any]:
    """The ``vars:`` defaults of dbt_project.yml (as_of_date, currencies, high value)."""
    text = (PROJECT_ROOT / "dbt_project.yml").read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    values = data.get("vars") or {}
    return dict(values) if isinstance(values, dict) else {}


def bench_env(warehouse: Path, mlflow_dir: Path) -> dict[str, str]:
    """Environment of every step: the bench's own warehouse and MLflow store, target local."""
    env = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "FRAUD_SCHEMA_PREFIX"):
        env.pop(key, None)
    env.update(
        {
            "DBT_PROFILES_DIR": str(PROJECT_ROOT),
            "DBT_PROJECT_DIR": str(PROJECT_ROOT),
            "DBT_TARGET": "local",
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "FRAUD_WAREHOUSE_DIR": str(warehouse),
            "FRAUD_MLFLOW_DIR": str(mlflow_dir),
            "MPLBACKEND": "Agg",
            "PYTHONUNBUFFERED": "1",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if not found:
        raise BenchInputError("dbt is not installed in this environment (run `make setup`)")
    return found


# --------------------------------------------------------------------------------------------
# Pre-flight checks (exit 2 before any work)
# --------------------------------------------------------------------------------------------


def estimate_disk_bytes(config: BenchConfig) -> int:
    return DISK_FIXED_BYTES + DISK_BYTES_PER_TRANSACTION * config.transactions


def _check_out_dir(out: Path, is_default: bool) -> None:
    protected = [PROJECT_ROOT / name for name in ("data", "warehouse", ".mlflow", "target")]
    resolved = out.resolve()
    for folder in protected:
        if resolved == folder.resolve() or folder.resolve() in resolved.parents:
            raise BenchInputError(
                f"--out {out} is inside the main job's {folder.name}/: choose another folder"
            )
    if out.exists():
        if not out.is_dir():
            raise BenchInputError(f"--out {out} exists and is not a folder")
    elif is_default:
        parent = next((p for p in resolved.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK | os.X_OK):
            raise BenchInputError(f"cannot create --out {out}: {parent} is not writable")
        return
    elif not out.parent.exists():
        raise BenchInputError(
            f"--out {out}: the folder does not exist and neither does its parent {out.parent}; "
            "create it first"
        )
    else:
        if not os.access(out.parent, os.W_OK | os.X_OK):
            raise BenchInputError(f"--out {out} does not exist and {out.parent} is not writable")
        return
    if not os.access(out, os.W_OK | os.X_OK):
        raise BenchInputError(f"--out {out} is not writable")
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".bench-write-check-"):
            pass
    except OSError as exc:
        raise BenchInputError(f"--out {out} is not writable: {exc}") from exc


def preflight(config: BenchConfig, is_default_out: bool) -> list[str]:
    """Validate sizes, output folder, free disk and memory; returns notes. Raises
    BenchInputError with a message for the user."""
    from simulator.config import ConfigError, GeneratorConfig

    notes: list[str] = []
    if config.transactions <= 0:
        raise BenchInputError(
            f"--transactions must be a positive integer (got {config.transactions})"
        )
    if config.transactions > MAX_TRANSACTIONS:
        raise BenchInputError(
            f"--transactions {config.transactions:,} is beyond what this harness supports "
            f"(max {MAX_TRANSACTIONS:,})"
        )
    if config.customers <= 0:
        raise BenchInputError(f"--customers must be a positive integer (got {config.customers})")
    if config.latency_calls < 1:
        raise BenchInputError("--latency-calls must be >= 1")
    try:
        GeneratorConfig(
            customers=config.customers,
            transactions=config.transactions,
            days=config.days,
            seed=config.seed,
        ).validate()
        if "incremental" in config.parts:
            GeneratorConfig(
                customers=config.customers,
                transactions=config.increment,
                days=config.days,
                seed=config.seed + 1,
                fraud_rate=increment_fraud_rate(config.increment, config.customers),
                batch_name="batch_0001",
            ).validate()
    except ConfigError as exc:
        raise BenchInputError(f"impossible size: {exc}") from exc

    _check_out_dir(config.out, is_default_out)
    probe = next(p for p in [config.out, *config.out.resolve().parents] if p.exists())
    free = shutil.disk_usage(probe).free
    need = estimate_disk_bytes(config)
    if free < need:
        raise BenchInputError(
            f"not enough free disk space in {probe}: {free / GIB:.1f} GiB free, the benchmark "
            f"needs about {need / GIB:.1f} GiB for {config.transactions:,} transactions "
            "(data, two warehouses, MLflow store)"
        )
    if "notebook" in config.parts:
        need_ram = NOTEBOOK_RAM_BYTES_PER_TRANSACTION * config.transactions
        total = psutil.virtual_memory().total
        if need_ram > 0.8 * total:
            raise BenchInputError(
                f"impossible size for the notebook part on this machine: pandas needs about "
                f"{need_ram / GIB:.1f} GiB for {config.transactions:,} transactions, the machine "
                f"has {total / GIB:.1f} GiB (leave out the part: --parts without notebook)"
            )
    if not (PROJECT_ROOT / "dbt_project.yml").exists():
        raise BenchInputError(f"{PROJECT_ROOT} is not the dbt project (no dbt_project.yml)")
    dbt_executable()
    notes.append(f"free disk {free / GIB:.1f} GiB (estimate needed {need / GIB:.1f} GiB)")
    return notes


# --------------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, Any]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / GIB, 1),
        "cpu_model": _cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "duckdb": _version("duckdb"),
        "dbt-core": _version("dbt-core"),
        "dbt-duckdb": _version("dbt-duckdb"),
        "scikit-learn": _version("scikit-learn"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "mlflow": _version("mlflow"),
        "load_average_at_start": [round(x, 2) for x in load],
    }


# --------------------------------------------------------------------------------------------
# dbt run_results helpers
# --------------------------------------------------------------------------------------------

LAYER_OF_PATH = (
    ("bronze", "bronze"),
    ("silver", "silver"),
    ("governed", "silver"),
    ("gold", "gold"),
    ("ml", "training"),
    ("audit", "audit"),
)


def layer_of(unique_id: str, original_path: str) -> str:
    if unique_id.startswith(("test.", "unit_test.")):
        return "tests"
    if unique_id.startswith("operation."):
        return "hooks"
    if unique_id.endswith(".fraud_scores"):
        return "scoring"
    parts = Path(original_path).parts
    folder = parts[1] if len(parts) > 1 and parts[0] == "models" else ""
    return next((layer for prefix, layer in LAYER_OF_PATH if folder == prefix), "other")


def read_run_results(target: Path) -> dict[str, Any]:
    """elapsed (dbt's own run time, parse excluded), node count, seconds per layer (sum of node
    execution times; threads overlap), the slowest nodes."""
    path = target / "run_results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    manifest_paths: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
        for uid, node in manifest.get("nodes", {}).items():
            manifest_paths[uid] = str(node.get("original_file_path", ""))
    layers: dict[str, float] = {}
    nodes: list[tuple[float, str]] = []
    failures = []
    for result in data.get("results", []):
        uid = str(result.get("unique_id"))
        seconds = float(result.get("execution_time") or 0.0)
        layer = layer_of(uid, manifest_paths.get(uid, ""))
        layers[layer] = layers.get(layer, 0.0) + seconds
        nodes.append((seconds, uid))
        if result.get("status") not in ("success", "pass", "skipped", "warn"):
            failures.append(uid)
    nodes.sort(reverse=True)
    return {
        "elapsed_seconds": float(data.get("elapsed_time") or 0.0),
        "nodes": len(nodes),
        "layer_seconds": {k: round(v, 2) for k, v in sorted(layers.items())},
        "slowest": [{"node": uid, "seconds": round(s, 2)} for s, uid in nodes[:8]],
        "failures": failures,
    }


# --------------------------------------------------------------------------------------------
# The limit: one hand-written DuckDB query over the Parquet files
# --------------------------------------------------------------------------------------------


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def accepted_currencies() -> list[str]:
    """The currency codes of the reference seed that silver validation joins."""
    with (PROJECT_ROOT / "seeds" / "accepted_currencies.csv").open(encoding="utf-8") as f:
        return [row["currency_code"] for row in csv.DictReader(f)]


def limit_query(raw: Path, variables: Mapping[str, Any]) -> str:
    """The 16 gold features in one statement straight over the landing Parquet files.

    Same rules as bronze -> silver -> gold (models/silver/transactions_validated.sql,
    transactions_cleaned.sql, models/gold/transaction_features.sql), written for speed:
    a row is kept when every field check passes (ids, timestamp and amount present, amount > 0,
    known currency, not after as_of_date, known customer and merchant); among the kept rows of a
    transaction_id the one of the latest file, earliest row, wins. That single ranking is
    equivalent to the models' three steps (exact duplicates are rejected, later conflicting
    versions in a file are rejected, the latest file wins): an exact copy of a kept row is a
    later row with the same transaction_id in the same file, and the copy of a rejected row is
    rejected by the same field checks.
    """
    as_of = str(variables.get("as_of_date", "2026-11-01"))
    currencies = ", ".join(_sql_string(c) for c in accepted_currencies())
    high_value = float(variables.get("high_value_amount", 1000))
    tx_glob = _sql_string(str(raw / "transactions" / "*.parquet"))
    customers = _sql_string(str(raw / "customers" / "*.parquet"))
    merchants = _sql_string(str(raw / "merchants" / "*.parquet"))
    return LIMIT_QUERY_FILE.read_text(encoding="utf-8").format(
        customers=customers,
        merchants=merchants,
        tx_glob=tx_glob,
        currencies=currencies,
        as_of=as_of,
        high_value=high_value,
    )


# --------------------------------------------------------------------------------------------
# Workers (run as separate processes so their memory is measured on its own)
# --------------------------------------------------------------------------------------------


def _quiet_warnings() -> None:
    warnings.filterwarnings("ignore")
    import logging

    for name in ("mlflow", "py.warnings", "skops", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _read_table(warehouse_file: str, sql: str) -> Any:
    import duckdb

    with duckdb.connect(warehouse_file, read_only=True) as con:
        return con.execute(sql).df()


def worker_limit(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run the one-query limit into a fresh DuckDB file; then compare with gold."""
    import duckdb

    from ml.features import FEATURE_COLUMNS

    raw = Path(spec["raw"])
    db = Path(spec["limit_db"])
    db.unlink(missing_ok=True)
    sql = limit_query(raw, spec["vars"])
    started = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute("create table limit_features as " + sql)
        rows = int(con.execute("select count(*) from limit_features").fetchone()[0])
    query_seconds = time.perf_counter() - started

    # Equality with gold.transaction_features (outside the timing).
    compare_started = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute(f"attach {_sql_string(spec['warehouse_file'])} as wh (read_only)")
        gold_rows = int(
            con.execute("select count(*) from wh.gold.transaction_features").fetchone()[0]
        )
        diffs = []
        for column in FEATURE_COLUMNS:
            diffs.append(
                f"max(abs(cast(l.{column} as double) - cast(g.{column} as double)) "
                f"/ greatest(1.0, abs(cast(g.{column} as double)))) as {column}"
            )
        joined = con.execute(
            "select count(*) as matched, "
            + ", ".join(diffs)
            + " from limit_features l join wh.gold.transaction_features g using (customer_id)"
        ).df()
    matched = int(joined["matched"].iloc[0])
    per_column = {c: float(joined[c].iloc[0] or 0.0) for c in FEATURE_COLUMNS}
    worst = max(per_column.values()) if per_column else math.nan
    equal = rows == gold_rows == matched and worst <= FEATURE_TOLERANCE
    return {
        "query_seconds": query_seconds,
        "rows": rows,
        "gold_rows": gold_rows,
        "matched_rows": matched,
        "max_relative_difference": worst,
        "per_column_max_relative_difference": per_column,
        "equal_to_gold": bool(equal),
        "tolerance": FEATURE_TOLERANCE,
        "compare_seconds": time.perf_counter() - compare_started,
    }


def notebook_features(tx: Any, customers: Any, as_of: str, high_value: float) -> Any:
    """The seed notebook's 16 features in pandas (no validation: every delivered row)."""
    import numpy as np
    import pandas as pd

    from ml.features import FEATURE_COLUMNS

    tx = tx.assign(
        is_weekend=tx["transaction_timestamp"].dt.dayofweek >= 5,
        is_high_value=tx["amount"] >= high_value,
    )
    grouped = tx.groupby("customer_id")
    features = grouped.agg(
        total_transactions=("transaction_id", "count"),
        total_spend=("amount", "sum"),
        avg_transaction_amount=("amount", "mean"),
        stddev_transaction_amount=("amount", "std"),
        min_transaction_amount=("amount", "min"),
        max_transaction_amount=("amount", "max"),
        unique_merchant_categories=("merchant_category", "nunique"),
        unique_merchants=("merchant_id", "nunique"),
        weekend_transactions=("is_weekend", "sum"),
        high_value_transactions=("is_high_value", "sum"),
        first_transaction=("transaction_timestamp", "min"),
        last_transaction=("transaction_timestamp", "max"),
    )
    created = pd.to_datetime(customers.set_index("customer_id")["created_date"])
    features = features.join(created.rename("created_date"), how="left")
    features["customer_tenure_days"] = (pd.Timestamp(as_of) - features["created_date"]).dt.days
    features["amount_volatility"] = (
        features["stddev_transaction_amount"] / features["avg_transaction_amount"]
    )
    features["max_to_avg_ratio"] = (
        features["max_transaction_amount"] / features["avg_transaction_amount"]
    )
    features["weekend_transaction_rate"] = (
        features["weekend_transactions"] / features["total_transactions"]
    )
    features["high_value_transaction_rate"] = (
        features["high_value_transactions"] / features["total_transactions"]
    )
    span_days = (
        features["last_transaction"].dt.normalize() - features["first_transaction"].dt.normalize()
    ).dt.days + 1
    features["avg_transactions_per_day"] = features["total_transactions"] / span_days
    out = features[list(FEATURE_COLUMNS)].astype("float64").replace([np.inf, -np.inf], np.nan)
    return out.fillna(out.median())


def worker_notebook(spec: Mapping[str, Any]) -> dict[str, Any]:
    import pandas as pd
    from sklearn.ensemble import IsolationForest
    from sklearn.preprocessing import StandardScaler

    raw = Path(spec["raw"])
    variables = spec["vars"]
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    tx = pd.read_parquet(raw / "transactions")
    customers = pd.read_parquet(raw / "customers")
    phases["read_parquet"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    features = notebook_features(
        tx,
        customers,
        str(variables.get("as_of_date", "2026-11-01")),
        float(variables.get("high_value_amount", 1000)),
    )
    phases["features"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    X = StandardScaler().fit_transform(features.to_numpy())
    model = IsolationForest(contamination=0.01, n_estimators=200, random_state=42).fit(X)
    phases["fit"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    scores = model.score_samples(X)
    flagged = int((model.predict(X) == -1).sum())
    phases["score"] = time.perf_counter() - t3
    return {
        "phases": phases,
        "seconds": time.perf_counter() - t0,
        "transactions": len(tx),
        "customers_scored": len(features),
        "flagged": flagged,
        "mean_score": float(scores.mean()),
    }


def worker_same_work_model(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The project's side of the notebook comparison after dbt: IsolationForest pipeline
    (``build_isolation_forest``, default params) fitted and scored on the gold features."""
    _quiet_warnings()
    from ml.features import feature_matrix
    from ml.scores import score_function
    from ml.training.customer_models.params import IsolationForestParams
    from ml.training.customer_models.steps import build_isolation_forest

    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    features = _read_table(spec["warehouse_file"], "select * from gold.transaction_features")
    X = feature_matrix(features)
    phases["read_gold"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    pipeline = build_isolation_forest(IsolationForestParams()).fit(X)
    phases["fit"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    scores = score_function(pipeline)(X)
    flagged = int((pipeline.predict(X) == -1).sum())
    phases["score"] = time.perf_counter() - t2
    return {
        "phases": phases,
        "seconds": time.perf_counter() - t0,
        "customers_scored": len(X),
        "flagged": flagged,
        "mean_score": float(scores.mean()),
    }


@contextlib.contextmanager
def _phase_timings(into: dict[str, float]) -> Iterator[None]:
    """Sum, per phase name, the timing events the code emits on logger ``ml.timing``
    (``ml.timing.phase``) for the duration of the block."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            name = getattr(record, "phase", None)
            if name is not None:
                into[name] = into.get(name, 0.0) + float(getattr(record, "seconds", 0.0))

    log = logging.getLogger("ml.timing")
    handler, level, propagate = Collect(), log.level, log.propagate
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        log.propagate = propagate


PLOT_FUNCTIONS: tuple[str, ...] = (
    "plot_correlations",
    "plot_score_distribution",
    "plot_feature_importance",
    "plot_group_comparison",
    "plot_confusion_matrix",
    "plot_precision_recall",
)
TRAINING_PHASES: tuple[str, ...] = (
    "feature_matrix",
    "training_data_fingerprint",
    "fit_random_forest",
    "score_function",
    "ablation_contributions",
    "permutation_importance",
    "reference_frame",
    "write_common_artifacts",
    *PLOT_FUNCTIONS,
    "publish_run",
)


def _logged_training(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What the full build's training logged: the training-run rows, MLflow run durations."""
    import mlflow

    from ml import registry

    registry.configure()
    client = mlflow.MlflowClient()
    out: dict[str, Any] = {}
    for model in TRAINING_MODELS:
        try:
            frame = _read_table(
                spec["warehouse_file"],
                f"select * from ml_models.{model} order by trained_at desc limit 1",
            )
        except Exception as exc:
            out[model] = {"error": str(exc)}
            continue
        if frame.empty:
            out[model] = {"error": "no training run row"}
            continue
        row = frame.iloc[0]
        entry: dict[str, Any] = {
            "status": str(row.get("status")),
            "fit_seconds": _float_or_none(row.get("fit_seconds")),
            "training_seconds": _float_or_none(row.get("training_seconds")),
            "n_customers": _int_or_none(row.get("n_customers")),
            "n_train": _int_or_none(row.get("n_train")),
            "model_version": _int_or_none(row.get("model_version")),
        }
        run_id = row.get("run_id")
        if isinstance(run_id, str) and run_id:
            with contextlib.suppress(Exception):
                info = client.get_run(run_id).info
                if info.end_time and info.start_time:
                    entry["mlflow_run_seconds"] = (info.end_time - info.start_time) / 1000.0
        out[model] = entry
    return out


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _int_or_none(value: Any) -> int | None:
    number = _float_or_none(value)
    return None if number is None else int(number)


def _plot_calls(
    short: str, X: Any, y: Any, scores: Any, flagged: Any, importance: Any
) -> list[tuple[str, Callable[[Path], None]]]:
    """The plots the training draws for one model, as (name, draw(path)) pairs."""
    from ml.training.customer_models import plots

    if short == "isolation_forest":
        return [
            ("plot_correlations", lambda p: plots.plot_correlations(X, p)),
            (
                "plot_score_distribution",
                lambda p: plots.plot_score_distribution(scores, y, 0.6, p, "scores"),
            ),
            (
                "plot_feature_importance",
                lambda p: plots.plot_feature_importance(importance[["a"]], p, "importance"),
            ),
            ("plot_group_comparison", lambda p: plots.plot_group_comparison(X, flagged, p)),
            (
                "plot_confusion_matrix",
                lambda p: plots.plot_confusion_matrix(y, flagged, p, "confusion"),
            ),
        ]
    return [
        (
            "plot_confusion_matrix",
            lambda p: plots.plot_confusion_matrix(y, flagged, p, "confusion"),
        ),
        (
            "plot_feature_importance",
            lambda p: plots.plot_feature_importance(importance, p, "importance"),
        ),
        (
            "plot_score_distribution",
            lambda p: plots.plot_score_distribution(scores, y, 0.5, p, "scores"),
        ),
        ("plot_precision_recall", lambda p: plots.plot_precision_recall(y, scores, p)),
    ]


def _time_plots(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The training plots timed directly on the gold features and registered models."""
    import numpy as np
    import pandas as pd

    from ml import registry
    from ml.features import FEATURE_COLUMNS, feature_matrix
    from ml.scores import score_function
    from ml.training.customer_models.steps import join_labels

    features = _read_table(spec["warehouse_file"], "select * from gold.transaction_features")
    labels = _read_table(spec["warehouse_file"], "select * from gold.customer_fraud_labels")
    X = feature_matrix(features)
    y = join_labels(features, labels).to_numpy()
    n_features = len(FEATURE_COLUMNS)
    importance = pd.DataFrame(
        {"a": np.linspace(0, 1, n_features), "b": np.linspace(1, 0, n_features)},
        index=list(FEATURE_COLUMNS),
    )
    results: dict[str, Any] = {}
    registry.configure()
    for short, name in (
        ("isolation_forest", registry.ISOLATION_FOREST_MODEL),
        ("random_forest", registry.RANDOM_FOREST_MODEL),
    ):
        latest = registry.latest_version(name)
        if latest is None:
            results[short] = {"error": "no registered version"}
            continue
        pipeline = registry.load_sklearn_model(name, latest.version)
        scores = score_function(pipeline)(X)
        flagged = scores > float(np.quantile(scores, 0.99))
        timings: dict[str, float] = {}
        with tempfile.TemporaryDirectory(prefix="bench-plots-") as tmp:
            for plot_name, draw in _plot_calls(short, X, y, scores, flagged, importance):
                started = time.perf_counter()
                try:
                    draw(Path(tmp) / f"{plot_name}.png")
                    timings[plot_name] = time.perf_counter() - started
                except Exception as exc:
                    timings[plot_name] = math.nan
                    results.setdefault("errors", []).append(f"{plot_name}: {exc}")
        results[short] = {"plots": timings, "plots_total": float(np.nansum(list(timings.values())))}
    return results


def _training_rerun(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Both training functions rerun with a timer around every phase."""
    from ml.training.customer_models.isolation_forest import train_isolation_forest
    from ml.training.customer_models.params import (
        IsolationForestParams,
        RandomForestParams,
        TrainingContext,
    )
    from ml.training.customer_models.random_forest import train_random_forest

    features = _read_table(spec["warehouse_file"], "select * from gold.transaction_features")
    labels = _read_table(spec["warehouse_file"], "select * from gold.customer_fraud_labels")
    out: dict[str, Any] = {}
    for short, function, params in (
        ("isolation_forest", train_isolation_forest, IsolationForestParams()),
        ("random_forest", train_random_forest, RandomForestParams()),
    ):
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with _phase_timings(timings):
            row = function(features, labels, params, TrainingContext(dbt_invocation_id="bench"))
        total = time.perf_counter() - started
        fit = _float_or_none(row["fit_seconds"].iloc[0])
        timings = {k: v for k, v in timings.items() if k != "score_function"}
        if fit is not None and "fit_random_forest" not in timings:
            timings["fit"] = fit
        timings["plots_total"] = sum(timings.get(name, 0.0) for name in PLOT_FUNCTIONS)
        out[short] = {
            "total_seconds": total,
            "phases": timings,
            "status": str(row["status"].iloc[0]),
        }
    return out


def worker_training(spec: Mapping[str, Any]) -> dict[str, Any]:
    _quiet_warnings()
    result: dict[str, Any] = {"logged": _logged_training(spec), "direct": _time_plots(spec)}
    if spec.get("rerun"):
        result["rerun"] = _training_rerun(spec)
    return result


def _percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    import numpy as np

    if not samples_ns:
        return {}
    values = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "calls": len(samples_ns),
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "p999_ms": float(np.percentile(values, 99.9)),
        "mean_ms": float(values.mean()),
        "max_ms": float(values.max()),
    }


def _batch_limits(model: Mapping[str, Any], threads: int) -> str:
    """What the fast evaluator's batch speed comes from and what holds it back, from the
    figures of ``_measure_model``."""
    batch = model["batch"]
    base = batch["sklearn"]["rows_per_s_best"]
    one = batch["fast_1_thread"]["rows_per_s_best"]
    many = batch["fast_threads"]["rows_per_s_best"]
    text = (
        f"numba kernel (8 rows down each tree in step, branch-free): {one / base:.1f}x "
        "scikit-learn's compiled tree walk on one core"
    )
    if threads > 1:
        cpus = int(model.get("cpus") or threads)
        ideal = min(threads, cpus)
        text += f"; {threads} threads {many / one:.2f}x the 1-thread speed (ideal {ideal}x)"
        load = model.get("load_average")
        if load is not None and many / one < 0.8 * ideal:
            text += (
                f": load average {load:.1f} on {cpus} CPUs during the measurement, the threads "
                "competed with other work"
            )
    if max(one, many) / base < 3.0:
        text += (
            "; >= 3x needs ~3x per core (the tree walk is bound by dependent loads: a node per "
            "step) or the threads on free cores"
        )
    return text


def _measure_model(
    pipeline: Any,
    resolved: Any,
    features: Any,
    spec: Mapping[str, Any],
    scoring_job: bool,
    sklearn_budget_s: float,
) -> dict[str, Any]:
    """Exactness, batch throughput, the scoring job and single-row latency of one model."""
    import numpy as np

    from ml.features import feature_matrix
    from ml.scores import score_function
    from ml.scoring.batch import fast_scoring_model, score_customers
    from ml.scoring.fast_evaluator.kernels import TOLERANCE, UnsupportedModelError
    from ml.scoring.fast_evaluator.scorer import compare, compile_pipeline

    X = feature_matrix(features)
    values = X.to_numpy()
    n = len(X)
    result: dict[str, Any] = {
        "name": resolved.name,
        "version": resolved.version,
        "selection": resolved.selection,
        "alias": resolved.alias,
        "pipeline": " + ".join(type(step).__name__ for _, step in pipeline.steps),
        "rows": n,
        "tolerance": TOLERANCE,
    }
    try:
        started = time.perf_counter()
        fast = compile_pipeline(pipeline, n_threads=int(spec.get("threads", 2)))
        fast_single = compile_pipeline(pipeline, n_threads=1)
        result["compile_seconds"] = time.perf_counter() - started
        result["fast"] = fast.describe()
    except UnsupportedModelError as exc:
        result["error"] = f"fast evaluator does not support this model: {exc}"
        return result

    # Exactness on every gold row.
    diffs = compare(fast, pipeline, values)
    result["max_abs_difference"] = diffs
    primary = "score_samples" if fast.kind == "isolation_forest" else "predict_proba"
    result["exact_within_tolerance"] = bool(diffs[primary] <= TOLERANCE)

    # Batch, as ml.scoring computes the score: interleaved repetitions, best and median.
    functions = {
        "sklearn": score_function(pipeline),
        "fast_1_thread": score_function(fast_single),
        "fast_threads": score_function(fast),
    }
    times: dict[str, list[float]] = {label: [] for label in functions}
    for _ in range(BATCH_REPEATS):
        for label, function in functions.items():
            started = time.perf_counter()
            function(X)
            times[label].append(time.perf_counter() - started)
    result["cpus"] = os.cpu_count()
    result["load_average"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result["batch"] = {
        label: {
            "best_seconds": min(t),
            "median_seconds": statistics.median(t),
            "rows_per_s_best": n / min(t) if min(t) > 0 else math.inf,
            "rows_per_s_median": n / statistics.median(t),
        }
        for label, t in times.items()
    }

    # The scoring model's whole job (gold.fraud_scores rows: scores, bands, reason codes), with
    # the pipeline as loaded, and as ml.scoring.run_scoring runs it: fast_scoring_model
    # (compile, check on the first rows, fall back to the pipeline) then the compiled evaluator.
    if scoring_job:
        job: dict[str, Any] = {}
        frames = {}
        for label in ("sklearn", "fast"):
            started = time.perf_counter()
            model = pipeline if label == "sklearn" else fast_scoring_model(pipeline, X)
            frames[label] = score_customers(features, model, resolved, "bench").scores
            seconds = time.perf_counter() - started
            job[label] = {"seconds": seconds, "rows_per_s": n / seconds}
        job["max_abs_score_difference"] = float(
            np.max(np.abs(frames["sklearn"]["anomaly_score"] - frames["fast"]["anomaly_score"]))
        )
        reasons = [f"reason_{k}" for k in (1, 2, 3)]
        job["reasons_identical"] = bool(
            frames["sklearn"][reasons].fillna("").equals(frames["fast"][reasons].fillna(""))
        )
        result["scoring_job"] = job

    # Single-row latency: the fast evaluator for `latency_calls` calls and plain scikit-learn
    # within its time budget (~40 ms a call), alternating in LATENCY_BLOCKS blocks so both see
    # the same machine conditions. Blocks, not call by call: right after a scikit-learn call the
    # next call is slowed by what scikit-learn leaves behind (allocations, joblib), which would
    # charge the evaluator with scikit-learn's after-effects at every ~40th call.
    calls = int(spec.get("latency_calls", LATENCY_CALLS))
    rows = values[np.random.default_rng(0).integers(0, n, size=calls)]
    if fast.kind == "isolation_forest":
        fast_method, sk_method = fast.score_samples, pipeline.score_samples
    else:
        fast_method, sk_method = fast.predict_proba, pipeline.predict_proba
    for i in range(min(200, calls)):  # warm-up
        fast_method(rows[i])
    started = time.perf_counter()
    sk_method(rows[0].reshape(1, -1))
    sk_estimate = max(time.perf_counter() - started, 1e-4)
    sk_target = max(20, min(calls, int(sklearn_budget_s / sk_estimate)))
    blocks = min(LATENCY_BLOCKS, calls)
    fast_ns: list[int] = []
    sk_ns: list[int] = []
    gc.collect()
    clock = time.perf_counter_ns
    for block in range(blocks):
        for i in range(block * calls // blocks, (block + 1) * calls // blocks):
            row = rows[i]
            t = clock()
            fast_method(row)
            fast_ns.append(clock() - t)
        for i in range(block * sk_target // blocks, (block + 1) * sk_target // blocks):
            row2d = rows[i % calls].reshape(1, -1)
            t = clock()
            sk_method(row2d)
            sk_ns.append(clock() - t)
    result["latency"] = {
        "fast": _percentiles(fast_ns),
        "sklearn": _percentiles(sk_ns),
        "sklearn_budget_s": sklearn_budget_s,
    }
    return result


def worker_scoring(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The model gold.fraud_scores resolves (champion, else the fallback), loaded as the scoring
    model loads it, fully measured; the other registered model with smaller budgets."""
    _quiet_warnings()
    from ml import registry
    from ml.registry import SelectedVersion
    from ml.scoring.selection import ScoringSettings, resolve_scoring_model

    registry.configure()
    resolved = resolve_scoring_model(ScoringSettings(target="local"))
    features = _read_table(spec["warehouse_file"], "select * from gold.transaction_features")
    started = time.perf_counter()
    pipeline = registry.load_sklearn_model(resolved.name, resolved.version)
    load_seconds = time.perf_counter() - started
    primary = _measure_model(pipeline, resolved, features, spec, True, SKLEARN_LATENCY_BUDGET_S)
    primary["load_seconds"] = load_seconds
    result: dict[str, Any] = {"scoring_model": primary}
    for name in (registry.RANDOM_FOREST_MODEL, registry.ISOLATION_FOREST_MODEL):
        if name == resolved.name:
            continue
        latest = registry.latest_version(name)
        if latest is None:
            continue
        other = SelectedVersion(name, int(latest.version), latest.run_id, None, "latest (not used)")
        result["other_model"] = _measure_model(
            registry.load_sklearn_model(name, latest.version),
            other,
            features,
            {**spec, "latency_calls": min(int(spec.get("latency_calls", LATENCY_CALLS)), 3000)},
            False,
            SKLEARN_LATENCY_BUDGET_S / 3,
        )
    return result


WORKERS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "limit": worker_limit,
    "notebook": worker_notebook,
    "same-work-model": worker_same_work_model,
    "training": worker_training,
    "scoring": worker_scoring,
}


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def worker_main(argv: Sequence[str]) -> int:
    """``python -m bench _worker NAME SPEC.json``: run a worker, write its result JSON."""
    if len(argv) != 2 or argv[0] not in WORKERS:
        print(f"usage: _worker {{{','.join(WORKERS)}}} SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result = WORKERS[argv[0]](spec)
    Path(spec["result"]).write_text(
        json.dumps(result, indent=2, default=_json_default), encoding="utf-8"
    )
    return 0


# --------------------------------------------------------------------------------------------
# The orchestrator
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    part: str
    measurement: str
    seconds: float | None = None
    rows: int | None = None
    rows_per_s: float | None = None
    peak_rss_mib: float | None = None
    note: str = ""


@dataclass
class Target:
    name: str
    target: str
    measured: str
    met: bool | None
    limited_by: str = ""


@dataclass(frozen=True)
class TargetSpec:
    """One entry of bench/targets.yml: a bound (``min`` or ``max``) on one measurement."""

    key: str
    name: str
    target: str
    minimum: float | None = None
    maximum: float | None = None
    at_large_only: bool = False

    def judge(self, value: float, measured: str, limited_by: str, at_large: bool) -> Target:
        """The target row for ``value``; ``met`` is None when only a --large run judges it."""
        met: bool | None = None
        if at_large or not self.at_large_only:
            met = (self.minimum is None or value >= self.minimum) and (
                self.maximum is None or value <= self.maximum
            )
        return Target(self.name, self.target, measured, met, limited_by)


def load_targets(path: Path = TARGETS_FILE) -> dict[str, TargetSpec]:
    """The benchmark's targets, by key (a bad file is an error naming the file and key)."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise BenchInputError(f"{path}: expected a mapping of targets")
    specs: dict[str, TargetSpec] = {}
    for key, entry in document.items():
        if not isinstance(entry, dict) or not {"name", "target"} <= set(entry):
            raise BenchInputError(f"{path}: target {key!r} needs 'name' and 'target'")
        if ("min" in entry) == ("max" in entry):
            raise BenchInputError(f"{path}: target {key!r} needs exactly one of 'min', 'max'")
        specs[str(key)] = TargetSpec(
            str(key),
            str(entry["name"]),
            str(entry["target"]),
            float(entry["min"]) if "min" in entry else None,
            float(entry["max"]) if "max" in entry else None,
            bool(entry.get("at_large_only", False)),
        )
    return specs


@dataclass
class Results:
    machine: dict[str, Any]
    config: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""
    total_seconds: float = 0.0
    status: str = "ok"


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


def _incremental_limits(inc: Mapping[str, Any]) -> str:
    """What the incremental rebuild still recomputes, and what a retraining would add."""
    decisions = inc.get("training_decisions") or {}
    retrained = [m for m, d in decisions.items() if d.get("status") == "trained"]
    training = inc.get("full_build_training_node_seconds")
    text = (
        "dbt start-up, the silver merges, gold (one row per customer from all of silver), "
        "scoring of every customer and the data tests run over whole tables at every build"
    )
    if retrained:
        return text + "; retrained: " + ", ".join(retrained)
    if training:
        text += (
            f"; training was skipped by the retrain policy (data moved < retrain_min_data_change"
            f"): a rebuild that retrains (retrain_mode: always, or a larger change) adds about "
            f"the full build's {training:.0f} s of training node time"
        )
    return text


def _rate(rows: int | None, seconds: float | None) -> float | None:
    if not rows or not seconds:
        return None
    return rows / seconds


class Bench:
    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.paths = Paths(config.out)
        self.results = Results(machine=machine_info(), config=self._config_dict())
        self.vars = project_vars()
        self.dbt = dbt_executable()
        self.raw_rows = 0
        self.state: dict[str, Any] = {}
        self.full_build: Run | None = None
        self.full_build_results: dict[str, Any] = {}
        self.data_path: Run | None = None
        self.data_path_results: dict[str, Any] = {}

    def _config_dict(self) -> dict[str, Any]:
        data = asdict(self.config)
        data["out"] = str(self.config.out)
        data["increment_transactions"] = self.config.increment
        return data

    # -- output -----------------------------------------------------------------------------
    def say(self, message: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)

    def add(self, row: Row) -> None:
        self.results.rows.append(row)
        shown = f"{row.seconds:.1f} s" if row.seconds is not None else ""
        memory = f", peak {row.peak_rss_mib:.0f} MiB" if row.peak_rss_mib is not None else ""
        self.say(f"  {row.part}: {row.measurement}: {shown}{memory} {row.note}".rstrip())

    # -- helpers ----------------------------------------------------------------------------
    @property
    def warehouse_file(self) -> Path:
        return self.paths.warehouse / "fraud.duckdb"

    def env(self, warehouse: Path | None = None) -> dict[str, str]:
        return bench_env(warehouse or self.paths.warehouse, self.paths.mlflow)

    def dbt_command(self, verb: str, name: str, target: Path, raw: Path, *extra: str) -> list[str]:
        return [
            self.dbt,
            verb,
            "--target",
            "local",
            "--vars",
            json.dumps({"raw_data_path": str(raw)}),
            "--target-path",
            str(target),
            "--log-path",
            str(self.paths.logs / f"dbt-{name}"),
            *extra,
        ]

    def run_dbt(
        self,
        verb: str,
        name: str,
        raw: Path,
        *extra: str,
        warehouse: Path | None = None,
        target_name: str = "main",
    ) -> tuple[Run, dict[str, Any]]:
        """One measured dbt invocation. Invocations on the same warehouse share a target folder,
        so dbt's partial parsing works as it does for the project's own runs."""
        target = self.paths.target(target_name)
        target.mkdir(parents=True, exist_ok=True)
        (target / "run_results.json").unlink(missing_ok=True)
        command = self.dbt_command(verb, name, target, raw, *extra)
        self.say(f"dbt {verb} ({name}) ...")
        run = run_measured(name, command, self.env(warehouse), self.paths.logs / f"{name}.log")
        summary = read_run_results(target)
        self.results.details.setdefault("dbt", {})[name] = {
            "wall_seconds": run.seconds,
            "peak_rss_bytes": run.peak_rss,
            "returncode": run.returncode,
            "log": run.log,
            **summary,
        }
        if not run.ok:
            raise StepFailed(f"dbt {verb} ({name}) failed; see {run.log}:\n{log_tail(run.log)}")
        return run, summary

    def run_worker(self, name: str, spec: dict[str, Any], label: str) -> tuple[Run, dict[str, Any]]:
        self.paths.specs.mkdir(parents=True, exist_ok=True)
        spec_path = self.paths.specs / f"{label}.json"
        result_path = self.paths.specs / f"{label}.result.json"
        result_path.unlink(missing_ok=True)
        spec = {**spec, "result": str(result_path)}
        spec_path.write_text(json.dumps(spec, default=_json_default), encoding="utf-8")
        command = [sys.executable, "-m", "bench", "_worker", name, str(spec_path)]
        self.say(f"worker {label} ...")
        run = run_measured(label, command, self.env(), self.paths.logs / f"{label}.log")
        if not run.ok or not result_path.exists():
            raise StepFailed(f"worker {label} failed; see {run.log}:\n{log_tail(run.log)}")
        return run, json.loads(result_path.read_text(encoding="utf-8"))

    def save_state(self) -> None:
        self.paths.state.write_text(json.dumps(self.state, indent=2), encoding="utf-8")

    def load_state(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.state = json.loads(self.paths.state.read_text(encoding="utf-8"))

    # -- steps ------------------------------------------------------------------------------
    def generate_data(self) -> Path:
        raw = self.paths.data(self.config)
        manifest = raw / "manifest.json"
        expected = {
            "customers": self.config.customers,
            "transactions": self.config.transactions,
            "days": self.config.days,
            "seed": self.config.seed,
        }
        reuse = False
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            data = json.loads(manifest.read_text(encoding="utf-8"))
            options = data["options"]
            reuse = all(options.get(k) == v for k, v in expected.items()) and (
                len(data["batches"]) == 1
            )
            self.raw_rows = int(data["row_counts"]["transactions_total"])
        if reuse:
            self.add(Row("data", "generate data (reused from an earlier run)", note=str(raw)))
            self.reset_landing(raw)
            return raw
        shutil.rmtree(raw.parent, ignore_errors=True)
        raw.mkdir(parents=True)
        command = [
            sys.executable, "-m", "simulator",
            "--customers", str(self.config.customers),
            "--transactions", str(self.config.transactions),
            "--days", str(self.config.days),
            "--seed", str(self.config.seed),
            "--out", str(raw), "--quiet",
        ]  # fmt: skip
        self.say(f"generating {self.config.transactions:,} transactions into {raw} ...")
        run = run_measured("datagen", command, self.env(), self.paths.logs / "datagen.log")
        if not run.ok:
            raise StepFailed(f"data generation failed; see {run.log}:\n{log_tail(run.log)}")
        data = json.loads(manifest.read_text(encoding="utf-8"))
        self.raw_rows = int(data["row_counts"]["transactions_total"])
        self.add(
            Row(
                "data",
                "generate data (simulator, once)",
                run.seconds,
                self.raw_rows,
                _rate(self.raw_rows, run.seconds),
                _mib(run.peak_rss),
                f"{self.config.customers:,} customers",
            )
        )
        self.reset_landing(raw)
        return raw

    def reset_landing(self, raw: Path) -> None:
        landing = self.paths.landing
        shutil.rmtree(landing, ignore_errors=True)
        landing.mkdir(parents=True)
        raw = raw.resolve()
        for sub in ("customers", "merchants"):
            (landing / sub).symlink_to(raw / sub, target_is_directory=True)
        # per-batch folders get file links, so an appended batch lands beside them, not in raw
        for sub in ("transactions", "fraud_reports"):
            (landing / sub).mkdir(parents=True)
            for source in sorted((raw / sub).glob("*.parquet")):
                (landing / sub / source.name).symlink_to(source)
        shutil.copy2(raw / "manifest.json", landing / "manifest.json")

    def fixed_cost(self, raw: Path) -> None:
        shutil.rmtree(self.paths.target("main"), ignore_errors=True)
        run, _ = self.run_dbt("parse", "parse", raw, "--no-partial-parse")
        self.add(
            Row(
                "data",
                "fixed cost: dbt parse (start-up + parse, no data)",
                run.seconds,
                peak_rss_mib=_mib(run.peak_rss),
            )
        )
        self.results.details["fixed_cost_seconds"] = run.seconds

    def do_full_build(self, raw: Path, part: str) -> None:
        shutil.rmtree(self.paths.warehouse, ignore_errors=True)
        shutil.rmtree(self.paths.mlflow, ignore_errors=True)
        self.paths.warehouse.mkdir(parents=True)
        self.state = {}
        self.save_state()
        run, summary = self.run_dbt("build", "full-build", self.paths.landing)
        self.full_build, self.full_build_results = run, summary
        self.add(
            Row(
                part,
                "full dbt build (all models, tests, training, scoring)",
                run.seconds,
                self.raw_rows,
                _rate(self.raw_rows, run.seconds),
                _mib(run.peak_rss),
                f"{summary.get('nodes', '?')} nodes; dbt run "
                f"{summary.get('elapsed_seconds', 0):.1f} s after parse",
            )
        )
        self.promote()
        self.state = {
            "dataset": str(raw),
            "full_build_seconds": run.seconds,
            "full_build_peak_rss": run.peak_rss,
            "full_build_results": summary,
            "incremented": False,
        }
        self.save_state()

    def promote(self) -> None:
        """As `make run`: supervised model first, then the unsupervised one (refusal expected)."""
        outcomes = {}
        for model in ("random_forest", "isolation_forest"):
            command = [
                sys.executable, "-m", "ml.promotion.cli",
                "--model", model, "--candidate", "latest", "--actor", "fraud-bench",
            ]  # fmt: skip
            run = run_measured(
                f"promote-{model}", command, self.env(), self.paths.logs / f"promote-{model}.log"
            )
            outcomes[model] = {0: "promoted", 1: "refused by a gate"}.get(
                run.returncode, f"error (exit {run.returncode})"
            )
        self.results.details["promotion"] = outcomes
        self.say(f"promotion (as make run): {outcomes}")

    def ensure_full_build(self, raw: Path) -> None:
        if self.full_build is not None:
            return
        self.load_state()
        if (
            self.state.get("dataset") == str(raw)
            and not self.state.get("incremented")
            and self.warehouse_file.exists()
        ):
            self.say("reusing the full build of an earlier run (state.json)")
            self.full_build_results = self.state.get("full_build_results", {})
            self.full_build = Run(
                "full-build (earlier run)",
                [],
                float(self.state.get("full_build_seconds", 0.0)),
                int(self.state.get("full_build_peak_rss", 0)),
                0,
                "",
            )
            return
        self.do_full_build(raw, "prerequisite")

    def part_data(self, raw: Path) -> None:
        self.fixed_cost(raw)
        self.do_full_build(raw, "data")
        exclude = ["--exclude", *TRAINING_MODELS]
        run, summary = self.run_dbt(
            "build", "data-path", self.paths.landing, "--full-refresh", *exclude
        )
        self.data_path, self.data_path_results = run, summary
        self.add(
            Row(
                "data",
                "data path bronze->silver->gold->scores (dbt build, training excluded)",
                run.seconds,
                self.raw_rows,
                _rate(self.raw_rows, run.seconds),
                _mib(run.peak_rss),
                f"full refresh, tests included; dbt run {summary.get('elapsed_seconds', 0):.1f} s "
                "after parse",
            )
        )
        elapsed = summary.get("elapsed_seconds") or 0.0
        if elapsed:
            self.add(
                Row(
                    "data",
                    "  same, dbt execution only (run_results elapsed, parse excluded)",
                    elapsed,
                    self.raw_rows,
                    _rate(self.raw_rows, elapsed),
                )
            )

    def part_limit(self, raw: Path) -> None:
        spec = {
            "raw": str(raw),
            "vars": self.vars,
            "limit_db": str(self.paths.work / "limit.duckdb"),
            "warehouse_file": str(self.warehouse_file),
        }
        run, result = self.run_worker("limit", spec, "limit")
        self.results.details["limit"] = {**result, "process_seconds": run.seconds}
        equal = "equal to gold" if result["equal_to_gold"] else "DIFFERENT FROM GOLD"
        self.add(
            Row(
                "limit",
                "one DuckDB query over Parquet -> 16 features",
                result["query_seconds"],
                self.raw_rows,
                _rate(self.raw_rows, result["query_seconds"]),
                _mib(run.peak_rss),
                f"{result['rows']:,} customers, {equal} (max rel. diff "
                f"{result['max_relative_difference']:.1e})",
            )
        )
        if self.data_path is not None:
            ratio = self.data_path.seconds / result["query_seconds"]
            elapsed = self.data_path_results.get("elapsed_seconds") or 0.0
            self.add(
                Row(
                    "limit",
                    "ratio data path / limit",
                    note=f"{ratio:.1f}x wall ({elapsed / result['query_seconds']:.1f}x dbt "
                    "execution only)",
                )
            )
            self.results.details["limit"]["ratio_wall"] = ratio
            self.results.details["limit"]["ratio_execution"] = elapsed / result["query_seconds"]

    def part_notebook(self, raw: Path) -> None:
        run_nb, nb = self.run_worker("notebook", {"raw": str(raw), "vars": self.vars}, "notebook")
        self.add(
            Row(
                "notebook",
                "notebook: pandas features + median fill + scaler + IsolationForest + score",
                run_nb.seconds,
                nb["transactions"],
                _rate(nb["transactions"], run_nb.seconds),
                _mib(run_nb.peak_rss),
                ", ".join(f"{k} {v:.1f}s" for k, v in nb["phases"].items()),
            )
        )
        shutil.rmtree(self.paths.warehouse_same_work, ignore_errors=True)
        self.paths.warehouse_same_work.mkdir(parents=True)
        # models and the reference seeds silver joins, without tests: the notebook runs none
        run_dbt, summary = self.run_dbt(
            "build",
            "same-work-dbt",
            self.paths.landing,
            "--select",
            "+transaction_features",
            "--resource-type",
            "model",
            "--resource-type",
            "seed",
            warehouse=self.paths.warehouse_same_work,
            target_name="same-work",
        )
        spec = {"warehouse_file": str(self.paths.warehouse_same_work / "fraud.duckdb")}
        run_ml, ml = self.run_worker("same-work-model", spec, "same-work-model")
        total = run_dbt.seconds + run_ml.seconds
        peak = max(run_dbt.peak_rss, run_ml.peak_rss)
        self.add(
            Row(
                "notebook",
                "project, same work: dbt build +transaction_features (models, seeds)",
                run_dbt.seconds,
                self.raw_rows,
                _rate(self.raw_rows, run_dbt.seconds),
                _mib(run_dbt.peak_rss),
                f"{summary.get('nodes', '?')} models, no tests",
            )
        )
        self.add(
            Row(
                "notebook",
                "project, same work: IsolationForest pipeline fit + score on gold",
                run_ml.seconds,
                ml["customers_scored"],
                None,
                _mib(run_ml.peak_rss),
                ", ".join(f"{k} {v:.1f}s" for k, v in ml["phases"].items()),
            )
        )
        self.add(
            Row(
                "notebook",
                "project, same work: total (sequential steps; peak = max)",
                total,
                self.raw_rows,
                _rate(self.raw_rows, total),
                _mib(peak),
                f"notebook/project time {run_nb.seconds / total:.2f}x, memory "
                f"{peak / max(run_nb.peak_rss, 1):.2f} of the notebook's",
            )
        )
        self.results.details["notebook"] = {
            "notebook": {**nb, "wall_seconds": run_nb.seconds, "peak_rss": run_nb.peak_rss},
            "project": {
                "dbt_seconds": run_dbt.seconds,
                "dbt_peak_rss": run_dbt.peak_rss,
                "model": ml,
                "model_wall_seconds": run_ml.seconds,
                "model_peak_rss": run_ml.peak_rss,
                "total_seconds": total,
                "peak_rss": peak,
            },
        }

    def part_training(self) -> None:
        spec = {"warehouse_file": str(self.warehouse_file), "rerun": self.config.training_rerun}
        run, result = self.run_worker("training", spec, "training")
        self.results.details["training"] = result
        nodes = {
            item["node"].rsplit(".", 1)[-1]: item["seconds"]
            for item in self.full_build_results.get("slowest", [])
        }
        for model in TRAINING_MODELS:
            logged = result["logged"].get(model, {})
            short = model.replace("_training_runs", "")
            plots = result["direct"].get(short, {}).get("plots_total")
            node = nodes.get(model)
            parts = []
            if logged.get("fit_seconds") is not None:
                parts.append(f"fit {logged['fit_seconds']:.1f}s")
            if logged.get("mlflow_run_seconds") is not None:
                parts.append(f"MLflow logging+registration {logged['mlflow_run_seconds']:.1f}s")
            if plots is not None:
                parts.append(f"plots {plots:.1f}s (timed directly)")
            if node is not None:
                parts.append(f"dbt node {node:.1f}s")
            if logged.get("status") and logged.get("status") != "trained":
                parts.append(f"status {logged['status']}")
            self.add(
                Row(
                    "training",
                    f"{short}: training total (logged by ml.training)",
                    logged.get("training_seconds"),
                    logged.get("n_train") or logged.get("n_customers"),
                    None,
                    None,
                    "; ".join(parts),
                )
            )
            rerun = (result.get("rerun") or {}).get(short)
            if rerun:
                phases = sorted(rerun["phases"].items(), key=lambda kv: -kv[1])
                self.add(
                    Row(
                        "training",
                        f"{short}: rerun with a timer per phase",
                        rerun["total_seconds"],
                        note=", ".join(f"{k} {v:.1f}s" for k, v in phases if v >= 0.05),
                    )
                )
        self.results.details["training"]["worker_seconds"] = run.seconds

    def part_scoring(self) -> None:
        spec = {
            "warehouse_file": str(self.warehouse_file),
            "latency_calls": self.config.latency_calls,
            "threads": self.config.threads,
        }
        run, result = self.run_worker("scoring", spec, "scoring")
        self.results.details["scoring"] = {**result, "peak_rss": run.peak_rss}
        self._scoring_rows(result["scoring_model"], "scoring model")
        if "other_model" in result:
            self._scoring_rows(result["other_model"], "other model")

    def _scoring_rows(self, result: dict[str, Any], role: str) -> None:
        short = result["name"].rsplit(".", 1)[-1].replace("fraud_detection_", "")
        label = f"{short} v{result['version']}, {result['selection']}"
        prefix = f"[{role}: {label}]"
        if "error" in result:
            self.add(Row("scoring", prefix, note=result["error"]))
            return
        n = result["rows"]
        job = result.get("scoring_job")
        if job:
            self.add(
                Row(
                    "scoring",
                    f"{prefix} scoring model's job (ml.scoring.score_customers incl. reason "
                    "codes), sklearn",
                    job["sklearn"]["seconds"],
                    n,
                    job["sklearn"]["rows_per_s"],
                )
            )
            self.add(
                Row(
                    "scoring",
                    f"{prefix} same job as run_scoring runs it (fast_scoring_model: compile, "
                    "check on 1,000 rows, fast evaluator)",
                    job["fast"]["seconds"],
                    n,
                    job["fast"]["rows_per_s"],
                    note=f"max |score diff| {job['max_abs_score_difference']:.1e}, reasons "
                    f"identical: {job['reasons_identical']}",
                )
            )
        batch = result["batch"]
        names = {
            "sklearn": "batch score, plain scikit-learn",
            "fast_1_thread": "batch score, fast evaluator, 1 thread",
            "fast_threads": f"batch score, fast evaluator, {self.config.threads} threads",
        }
        for key, text in names.items():
            self.add(
                Row(
                    "scoring",
                    f"{prefix} {text}",
                    batch[key]["best_seconds"],
                    n,
                    batch[key]["rows_per_s_best"],
                    note=f"best of {BATCH_REPEATS}, median {batch[key]['median_seconds']:.3f}s",
                )
            )
        diffs = result["max_abs_difference"]
        self.add(
            Row(
                "scoring",
                f"{prefix} fast evaluator == scikit-learn on every gold row",
                note=f"{'OK' if result['exact_within_tolerance'] else 'MISMATCH'}: max |diff| "
                + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
                + f" (tolerance {result['tolerance']:.0e})",
            )
        )
        for key, text in (("fast", "fast evaluator"), ("sklearn", "plain scikit-learn")):
            lat = result["latency"][key]
            if lat:
                self.add(
                    Row(
                        "scoring",
                        f"{prefix} single-row latency, {text}",
                        note=f"p50 {lat['p50_ms']:.3f} ms, p99 {lat['p99_ms']:.3f} ms, p99.9 "
                        f"{lat['p999_ms']:.3f} ms over {lat['calls']:,} calls",
                    )
                )

    def part_incremental(self) -> None:
        assert self.full_build is not None
        incr = self.paths.landing
        fraud_rate = increment_fraud_rate(self.config.increment, self.config.customers)
        command = [
            sys.executable, "-m", "simulator", "--append",
            "--transactions", str(self.config.increment),
            "--days", str(self.config.days),
            "--fraud-rate", repr(fraud_rate),
            "--seed", str(self.config.seed + 1),
            "--out", str(incr), "--quiet",
        ]  # fmt: skip
        gen = run_measured("datagen-append", command, self.env(), self.paths.logs / "append.log")
        if not gen.ok:
            raise StepFailed(f"simulator --append failed; see {gen.log}:\n{log_tail(gen.log)}")
        manifest = json.loads((incr / "manifest.json").read_text(encoding="utf-8"))
        added = int(manifest["batches"][-1]["row_counts"]["total"])
        self.add(
            Row(
                "incremental",
                "append 1 % (simulator --append)",
                gen.seconds,
                added,
                _rate(added, gen.seconds),
                _mib(gen.peak_rss),
            )
        )
        self.state["incremented"] = True
        self.save_state()
        run, summary = self.run_dbt("build", "incremental-build", incr)
        full = self.full_build.seconds
        training = self.training_decisions()
        retrained = [model for model, (status, _) in training.items() if status == "trained"]
        self.add(
            Row(
                "incremental",
                "dbt build after +1 % (incremental models append/merge)",
                run.seconds,
                added,
                _rate(added, run.seconds),
                _mib(run.peak_rss),
                f"{run.seconds / full:.1%} of the full build ({full:.1f} s); retrained: "
                + (", ".join(retrained) or "none (retrain policy kept the registered models)"),
            )
        )
        full_layers = self.full_build_results.get("layer_seconds") or {}
        self.results.details["incremental"] = {
            "added_rows": added,
            "seconds": run.seconds,
            "full_build_seconds": full,
            "share_of_full": run.seconds / full,
            "layer_seconds": summary.get("layer_seconds"),
            "full_build_layer_seconds": full_layers,
            "training_decisions": {
                model: {"status": status, "skip_reason": reason}
                for model, (status, reason) in training.items()
            },
            "full_build_training_node_seconds": full_layers.get("training"),
        }

    def training_decisions(self) -> dict[str, tuple[str, str | None]]:
        """Status and skip reason of each model's latest *_training_runs row."""
        import pandas as pd

        decisions: dict[str, tuple[str, str | None]] = {}
        for table in TRAINING_MODELS:
            model = table.removesuffix("_training_runs")
            frame = _read_table(
                str(self.warehouse_file),
                f"select status, skip_reason from ml_models.{table} "
                "order by trained_at desc limit 1",
            )
            if not frame.empty:
                reason = frame["skip_reason"].iloc[0]
                decisions[model] = (
                    str(frame["status"].iloc[0]),
                    None if pd.isna(reason) else str(reason),
                )
        return decisions

    # -- targets ----------------------------------------------------------------------------
    def evaluate_targets(self) -> None:
        d = self.results.details
        size = f"at {self.config.transactions:,} tx"
        at_large = self.config.transactions >= LARGE_TRANSACTIONS
        scope = "" if at_large else " (target is set at 10M: run with --large)"
        targets = self.results.targets
        specs = load_targets()

        def judge(key: str, value: float, measured: str, limited_by: str) -> Target:
            return specs[key].judge(value, measured, limited_by, at_large)

        def layers_note(name: str) -> str:
            layers = d.get("dbt", {}).get(name, {}).get("layer_seconds") or {}
            total = sum(layers.values()) or 1.0
            top = sorted(layers.items(), key=lambda kv: -kv[1])[:4]
            return ", ".join(f"{k} {v:.0f}s ({v / total:.0%})" for k, v in top)

        fixed = d.get("fixed_cost_seconds")
        fixed_note = f"fixed dbt start-up+parse {fixed:.0f}s; " if fixed else ""
        if self.data_path is not None:
            rate = self.raw_rows / self.data_path.seconds
            targets.append(
                judge(
                    "data_path_rate",
                    rate,
                    f"{rate:,.0f} tx/s {size}{scope}",
                    fixed_note + "node time by layer: " + layers_note("data-path"),
                )
            )
        limit = d.get("limit")
        if limit and "ratio_wall" in limit:
            targets.append(
                judge(
                    "limit_ratio",
                    limit["ratio_wall"],
                    f"{limit['ratio_wall']:.1f}x wall, {limit['ratio_execution']:.1f}x dbt "
                    f"execution only {size}{scope}",
                    "limit query equal to gold: "
                    f"{limit['equal_to_gold']}; the layers materialise bronze, validated silver, "
                    "rejects and run ~100 data tests the single query does not",
                )
            )
        nb = d.get("notebook")
        if nb:
            speed = nb["notebook"]["wall_seconds"] / nb["project"]["total_seconds"]
            memory = nb["project"]["peak_rss"] / max(nb["notebook"]["peak_rss"], 1)
            targets.append(
                judge(
                    "notebook_speed",
                    speed,
                    f"{speed:.2f}x {size}{scope}",
                    f"project: dbt {nb['project']['dbt_seconds']:.0f}s (incl. "
                    f"{fixed or 0:.0f}s fixed) + model {nb['project']['model_wall_seconds']:.0f}s;"
                    f" notebook {nb['notebook']['wall_seconds']:.0f}s",
                )
            )
            targets.append(
                judge(
                    "notebook_memory",
                    memory,
                    f"{memory:.2f}x ({_mib(nb['project']['peak_rss']):,.0f} vs "
                    f"{_mib(nb['notebook']['peak_rss']):,.0f} MiB) {size}{scope}",
                    "pandas holds every raw row with Python string objects; DuckDB streams",
                )
            )
        sc = (d.get("scoring") or {}).get("scoring_model")
        if sc and "latency" in sc:
            fast = sc["latency"]["fast"]
            skl = sc["latency"]["sklearn"]
            other = (d.get("scoring") or {}).get("other_model") or {}
            other_fast = (other.get("latency") or {}).get("fast") or {}
            other_note = f"; other model p99 {other_fast['p99_ms']:.3f} ms" if other_fast else ""
            targets.append(
                judge(
                    "latency_p99_ms",
                    fast["p99_ms"],
                    f"fast evaluator p99 {fast['p99_ms']:.3f} ms (plain sklearn p99 "
                    f"{skl.get('p99_ms', math.nan):.1f} ms){other_note}",
                    "plain scikit-learn spends a single row's time in input validation and one "
                    "joblib task per tree; the evaluator walks all trees at once",
                )
            )
            batch = sc["batch"]
            best_fast = max(
                batch["fast_threads"]["rows_per_s_best"], batch["fast_1_thread"]["rows_per_s_best"]
            )
            single = batch["fast_1_thread"]["rows_per_s_best"]
            base = batch["sklearn"]["rows_per_s_best"]
            job = sc.get("scoring_job") or {}
            job_note = ""
            if job:
                job_note = (
                    f"; whole scoring job {job['sklearn']['seconds'] / job['fast']['seconds']:.2f}x"
                )
            targets.append(
                judge(
                    "batch_speedup",
                    best_fast / base,
                    f"{best_fast / base:.2f}x with {self.config.threads} threads, "
                    f"{single / base:.2f}x on 1 thread ({best_fast:,.0f} vs {base:,.0f} rows/s)"
                    + job_note,
                    _batch_limits(sc, self.config.threads),
                )
            )
        if self.full_build is not None and self.full_build.peak_rss:
            peak = self.full_build.peak_rss
            targets.append(
                judge(
                    "build_peak_bytes",
                    peak,
                    f"{peak / 1e9:.2f} GB {size}{scope}",
                    "dbt + DuckDB + the in-process Python models (training, scoring) in one tree",
                )
            )
        inc = d.get("incremental")
        if inc:
            share = inc["share_of_full"]
            layers = inc.get("layer_seconds") or {}
            total = sum(layers.values()) or 1.0
            heavy = sorted(layers.items(), key=lambda kv: -kv[1])[:3]
            targets.append(
                judge(
                    "incremental_share",
                    share,
                    f"{share:.1%} ({inc['seconds']:.0f}s vs {inc['full_build_seconds']:.0f}s)",
                    "node time: "
                    + ", ".join(f"{k} {v:.0f}s ({v / total:.0%})" for k, v in heavy)
                    + "; "
                    + _incremental_limits(inc),
                )
            )

    # -- main flow --------------------------------------------------------------------------
    def run(self) -> int:
        started = time.perf_counter()
        self.results.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.paths.work.mkdir(parents=True, exist_ok=True)
        parts = self.config.parts
        status = 0
        try:
            raw = self.generate_data()
            if "data" in parts:
                self.part_data(raw)
            if NEEDS_FULL_BUILD & set(parts):
                self.ensure_full_build(raw)
            if "limit" in parts:
                self.part_limit(raw)
            if "notebook" in parts:
                self.part_notebook(raw)
            if "training" in parts:
                self.part_training()
            if "scoring" in parts:
                self.part_scoring()
            if "incremental" in parts:
                self.part_incremental()
        except StepFailed as exc:
            self.results.status = "failed"
            self.results.notes.append(str(exc).splitlines()[0])
            print(f"error: {exc}", file=sys.stderr)
            status = 1
        self.evaluate_targets()
        self.results.total_seconds = time.perf_counter() - started
        self.results.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
        self.results.machine["load_average_at_end"] = [round(x, 2) for x in load]
        self.write()
        return status

    def write(self) -> None:
        out = self.config.out
        data = asdict(self.results)
        (out / "results.json").write_text(
            json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8"
        )
        text = render_markdown(self.results)
        (out / "results.md").write_text(text, encoding="utf-8")
        print(text)
        print(f"results: {out / 'results.json'}, {out / 'results.md'}")


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _fmt(value: float | int | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, spec)


def render_markdown(results: Results) -> str:
    m = results.machine
    c = results.config
    lines = [
        "# fraud-bench results",
        "",
        f"Machine: {m['cores_logical']} logical cores ({m['cores_physical']} physical), "
        f"{m['ram_gib']} GiB RAM, {m['cpu_model']}; {m['os']}",
        f"Versions: python {m['python']}, duckdb {m['duckdb']}, dbt-core {m['dbt-core']}, "
        f"dbt-duckdb {m['dbt-duckdb']}, scikit-learn {m['scikit-learn']}, numpy {m['numpy']}, "
        f"pandas {m['pandas']}, mlflow {m['mlflow']}",
        f"Load average at start {m.get('load_average_at_start')}, at end "
        f"{m.get('load_average_at_end')} (shared machine: compare figures of the same run)",
        f"Run: {c['transactions']:,} transactions, {c['customers']:,} customers, {c['days']} days,"
        f" seed {c['seed']}; parts {','.join(c['parts'])}; started {results.started_at}, "
        f"{results.total_seconds / 60:.1f} min, status {results.status}",
        "",
        "| part | measurement | wall s | rows | rows/s | peak RSS MiB | notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results.rows:
        lines.append(
            f"| {r.part} | {r.measurement} | {_fmt(r.seconds, '.2f')} | {_fmt(r.rows, ',')} | "
            f"{_fmt(r.rows_per_s, ',.0f')} | {_fmt(r.peak_rss_mib, ',.0f')} | {r.note} |"
        )
    lines += [
        "",
        "| target | goal | measured | met | what limits it |",
        "|---|---|---|---|---|",
    ]
    for t in results.targets:
        met = "n/a" if t.met is None else ("met" if t.met else "MISSED")
        lines.append(f"| {t.name} | {t.target} | {t.measured} | {met} | {t.limited_by} |")
    layers = {
        name: info.get("layer_seconds")
        for name, info in results.details.get("dbt", {}).items()
        if info.get("layer_seconds")
    }
    if layers:
        names = sorted({k for v in layers.values() for k in v})
        lines += [
            "",
            "dbt node seconds by layer (sum of node times; 2 threads overlap):",
            "",
            "| dbt invocation | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for name, values in layers.items():
            lines.append(
                f"| {name} | " + " | ".join(_fmt(values.get(k), ".1f") for k in names) + " |"
            )
    if results.notes:
        lines += ["", "Notes:", *[f"- {n}" for n in results.notes]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parse_parts(text: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f"unknown part(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(PARTS)}"
        )
    return tuple(p for p in PARTS if p in parts)


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from exc
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fraud-bench",
        description="Benchmark the dbt data path, its limit, the notebook alternative, training, "
        "scoring and incremental builds on generated data (see ml/bench.py).",
    )
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--transactions",
        type=_positive_int,
        default=None,
        help=f"transactions to generate (default {DEFAULT_TRANSACTIONS:,})",
    )
    size.add_argument("--large", action="store_true", help=f"{LARGE_TRANSACTIONS:,} transactions")
    p.add_argument(
        "--customers",
        type=_positive_int,
        default=None,
        help=f"customers (default transactions / {TRANSACTIONS_PER_CUSTOMER})",
    )
    p.add_argument("--days", type=_positive_int, default=DEFAULT_DAYS)
    p.add_argument("--seed", type=_positive_int, default=DEFAULT_SEED)
    p.add_argument(
        "--parts",
        type=_parse_parts,
        default=PARTS,
        help=f"comma-separated subset of {','.join(PARTS)} (default all)",
    )
    p.add_argument("--out", default=None, help="output folder (default bench/out)")
    p.add_argument(
        "--training-rerun",
        action="store_true",
        help="also rerun both training functions with a timer per phase (minutes)",
    )
    p.add_argument(
        "--latency-calls",
        type=_positive_int,
        default=LATENCY_CALLS,
        help=f"single-row calls of the fast evaluator (default {LATENCY_CALLS:,})",
    )
    p.add_argument("--threads", type=_positive_int, default=2, help="threads of the fast evaluator")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fraud-bench``; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["_worker"]:
        return worker_main(args_list[1:])
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # argparse printed the message
        return 2 if exc.code else 0
    if args.large:
        transactions = LARGE_TRANSACTIONS
    elif args.transactions is not None:
        transactions = args.transactions
    else:
        transactions = DEFAULT_TRANSACTIONS
    is_default_out = args.out is None
    # absolute: dbt and the workers run with the project as working directory, and the landing
    # folder holds symlinks
    out = (Path(args.out).expanduser() if args.out else PROJECT_ROOT / "bench" / "out").absolute()
    config = BenchConfig(
        transactions=transactions,
        customers=(default_customers(transactions) if args.customers is None else args.customers),
        days=args.days,
        seed=args.seed,
        parts=args.parts,
        out=out,
        training_rerun=args.training_rerun,
        latency_calls=args.latency_calls,
        threads=max(1, args.threads),
    )
    try:
        notes = preflight(config, is_default_out)
    except BenchInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    bench = Bench(config)
    bench.results.notes.extend(notes)
    return bench.run()


if __name__ == "__main__":
    raise SystemExit(main())
