"""Benchmark settings, sizes, paths and the environment of every measured step."""

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGETS_FILE = Path(__file__).with_name("targets.yml")
LIMIT_QUERY_FILE = Path(__file__).with_name("limit_query.sql")
# The one hand-written query of gold.transaction_risk_features (also the e2e test's reference).
TX_REFERENCE_QUERY_FILE = (
    PROJECT_ROOT / "tests" / "reference" / "transaction_risk_features_reference.sql"
)

DEFAULT_TRANSACTIONS = 1_000_000
LARGE_TRANSACTIONS = 10_000_000
MAX_TRANSACTIONS = 200_000_000
TRANSACTIONS_PER_CUSTOMER = 25  # as the main job (20k customers, 500k transactions)
DEFAULT_DAYS = 90
DEFAULT_SEED = 42
INCREMENT_SHARE = 0.01
PARTS: tuple[str, ...] = (
    "data", "limit", "tx_limit", "notebook", "training", "scoring", "tx_scoring", "incremental",
)  # fmt: skip
NEEDS_FULL_BUILD = frozenset(
    {"limit", "tx_limit", "training", "scoring", "tx_scoring", "incremental"}
)
TX_FEATURES_MODEL = "transaction_risk_features"
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
