"""Shared pytest fixtures and helpers (anyone may use them; keep them general).

``DbtProject``
    One isolated dbt environment: its own warehouse folder (``FRAUD_WAREHOUSE_DIR``), MLflow
    folder (``FRAUD_MLFLOW_DIR``; tracking/registry env vars removed so nothing leaks to a real
    server), dbt target and log folders (so concurrent dbt runs in the repository never share
    ``target/``) and vars. ``run(...)`` runs the dbt CLI in a subprocess; ``query(sql)`` reads
    the DuckDB warehouse (opened read-only and closed again, so dbt can write next);
    ``mlflow_client()`` points MLflow at its registry.

``small_raw_data`` (session)
    Folder of the small raw dataset: the committed ``tests/fixtures/small`` when present, else
    generated once with ``python -m simulator`` (``SMALL_DATAGEN_ARGS``).

``small_build`` (session)
    A ``DbtProject`` on which ``dbt build --target test`` has run once on the small dataset
    (with ``SMALL_BUILD_VARS``: ``rf_min_fraud_customers: 5`` so the random forest trains):
    bronze → gold, both models trained and registered, ``gold.fraud_scores`` (first-run
    fallback: no alias yet) and ``audit.model_predictions``. Shared by every test of the
    session: treat it as read-mostly. A test that changes it (aliases, extra dbt runs) must say
    so and put aliases back; tests/python/end_to_end/test_e2e_ml.py sets and then removes
    ``champion`` and appends one more scoring batch to the audit log.

``dbt_project_factory`` (function)
    ``factory(name, vars=...)`` → a fresh, not yet built ``DbtProject`` in tmp (for tests that
    need their own warehouse/registry).

``fresh_mlflow_dir`` (function)
    Sets ``FRAUD_MLFLOW_DIR`` to a new folder holding a copy of an empty, already migrated
    sqlite registry (migrating one takes seconds; the template is made once per session under
    the session's base temp dir, ``mlflow-template/``).

``audit_warehouse`` (session)
    A DuckDB warehouse file in which dbt built only ``audit.model_promotions`` (empty, its
    contract enforced): what a CLI test copies to start from a fresh warehouse that dbt owns.

``cli_env(tmp_path, monkeypatch, mlflow_template, warehouse=None)``
    An isolated environment for a CLI under test (fraud-promote, fraud-monitor): a copy of the
    registry template, a warehouse folder (optionally starting from a copy of ``warehouse``)
    and a ``profiles.yml`` with ``DUCKDB_PROFILE``; MLflow/dbt env vars of the caller removed.

``lost_transaction_rows(project)``
    Raw transaction rows neither rejected, nor kept in silver, nor superseded (must be 0).

``dbt_executable()``, ``DUCKDB_PROFILE``
    The dbt CLI of this interpreter's environment; the minimal dbt profile the CLI tests use.

``synthetic_customers`` (function)
    ``make(n_customers, n_fraud, seed)`` → (features, labels) frames shaped like
    gold.transaction_features / gold.customer_fraud_labels, fraudulent customers shifted so
    models can find them. No warehouse, no dbt.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
SMALL_FIXTURE_DIR = PROJECT_ROOT / "tests" / "fixtures" / "small"
SMALL_DATAGEN_ARGS: tuple[str, ...] = (
    "--customers", "400",
    "--transactions", "8000",
    "--days", "60",
    "--fraud-rate", "0.05",
    "--seed", "7",
)  # fmt: skip
SMALL_BUILD_VARS: dict[str, Any] = {"rf_min_fraud_customers": 5}
WAREHOUSE_FILE = "fraud.duckdb"
DBT_TIMEOUT_S = 900


DUCKDB_PROFILE = """
fraud_detection:
  target: "{{ env_var('DBT_TARGET', 'local') }}"
  outputs:
    local:
      type: duckdb
      path: "{{ env_var('FRAUD_WAREHOUSE_DIR', 'nowhere') }}/fraud.duckdb"
"""


def dbt_executable() -> str:
    """The dbt CLI of the running interpreter's environment (falls back to PATH)."""
    candidate = BIN_DIR / "dbt"
    return str(candidate) if candidate.exists() else shutil.which("dbt") or "dbt"


@dataclass(frozen=True)
class CliDirs:
    mlflow_dir: Path
    warehouse_dir: Path
    profiles_dir: Path

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse_dir / WAREHOUSE_FILE


def cli_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_template: Path,
    warehouse: Path | None = None,
) -> CliDirs:
    """Folders and env vars for one CLI test (see the module docstring)."""
    dirs = CliDirs(tmp_path / "mlflow", tmp_path / "warehouse", tmp_path / "profiles")
    for folder in (dirs.mlflow_dir, dirs.warehouse_dir, dirs.profiles_dir):
        folder.mkdir()
    shutil.copy(mlflow_template, dirs.mlflow_dir / "mlflow.db")
    if warehouse is not None:
        shutil.copy(warehouse, dirs.warehouse_path)
    (dirs.profiles_dir / "profiles.yml").write_text(DUCKDB_PROFILE)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DBT_TARGET", "FRAUD_SCHEMA_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FRAUD_MLFLOW_DIR", str(dirs.mlflow_dir))
    monkeypatch.setenv("FRAUD_WAREHOUSE_DIR", str(dirs.warehouse_dir))
    monkeypatch.setenv("DBT_PROFILES_DIR", str(dirs.profiles_dir))
    return dirs


@dataclass
class DbtProject:
    """An isolated dbt environment rooted at ``root`` (see the module docstring)."""

    root: Path
    vars: dict[str, Any] = field(default_factory=dict)
    target: str = "test"
    # Environment on top of the caller's (engine ports, warehouse credentials, ...), and the
    # prefixes of the caller's variables to leave out first (e.g. its own warehouse settings).
    extra_env: dict[str, str] = field(default_factory=dict)
    drop_env_prefixes: tuple[str, ...] = ()

    @property
    def warehouse_dir(self) -> Path:
        return self.root / "warehouse"

    @property
    def warehouse_path(self) -> Path:
        return self.warehouse_dir / WAREHOUSE_FILE

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "DBT_TARGET"}
            and not (self.drop_env_prefixes and k.startswith(self.drop_env_prefixes))
        }
        env.update(
            FRAUD_WAREHOUSE_DIR=str(self.warehouse_dir),
            FRAUD_MLFLOW_DIR=str(self.mlflow_dir),
            DBT_TARGET_PATH=str(self.root / "dbt_target"),
            DBT_LOG_PATH=str(self.root / "dbt_logs"),
            DBT_SEND_ANONYMOUS_USAGE_STATS="false",
            MPLBACKEND="Agg",
        )
        env.update(self.extra_env)
        return env

    @property
    def target_dir(self) -> Path:
        """dbt's target folder of this project (manifest.json, run_results.json, compiled/)."""
        return Path(self.env()["DBT_TARGET_PATH"])

    @property
    def log_dir(self) -> Path:
        return Path(self.env()["DBT_LOG_PATH"])

    def command(
        self, *args: str, vars: Mapping[str, Any] | None = None, target: str | None = None
    ) -> list[str]:
        """The dbt command line ``run`` executes (for tests that start dbt themselves; run it
        with ``env()`` and ``cwd=PROJECT_ROOT``). Creates the warehouse folder."""
        self.warehouse_dir.mkdir(parents=True, exist_ok=True)
        merged = {**self.vars, **(vars or {})}
        command = [
            dbt_executable(),
            *args,
            "--target",
            target or self.target,
            "--profiles-dir",
            str(PROJECT_ROOT),
            "--project-dir",
            str(PROJECT_ROOT),
        ]
        if merged:
            command += ["--vars", json.dumps(merged)]
        return command

    def run(
        self,
        *args: str,
        vars: Mapping[str, Any] | None = None,
        target: str | None = None,
        check: bool = True,
        timeout: float = DBT_TIMEOUT_S,
    ) -> subprocess.CompletedProcess[str]:
        """``dbt <args> --target <target> --profiles-dir <repo> --vars <self.vars + vars>``.

        With ``check`` a non-zero exit fails the test with the end of dbt's output; a run
        longer than ``timeout`` seconds fails it too (with the output so far)."""
        command = self.command(*args, vars=vars, target=target)
        try:
            result = subprocess.run(
                command,
                cwd=PROJECT_ROOT,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as error:
            output = error.stdout.decode() if isinstance(error.stdout, bytes) else error.stdout
            pytest.fail(f"{' '.join(command)} did not finish in {timeout} s:\n{output or ''}")
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr)[-12000:]
            pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{output}")
        return result

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run a query on the warehouse (read-only connection, closed afterwards)."""
        import duckdb

        with contextlib.closing(duckdb.connect(str(self.warehouse_path), read_only=True)) as con:
            return con.execute(sql, params or []).df()

    def mlflow_client(self) -> Any:
        """An ``MlflowClient`` on this project's registry (also sets the global URIs)."""
        import mlflow

        from ml import registry

        registry.configure(self.tracking_uri, self.tracking_uri)
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)


def lost_transaction_rows(project: Any) -> int:
    """Raw rows of bronze.transactions_raw that are neither rejected, nor the kept version in
    silver.transactions_cleaned, nor superseded by a later delivery (0: nothing silently
    dropped). ``project``: anything with ``query(sql)`` on the warehouse."""
    return int(
        project.query(
            """
            select count(*) as n
            from bronze.transactions_raw as raw_rows
            left join silver.transactions_rejected as rejected
                using (source_file_name, source_row_number, loaded_at)
            left join silver.transactions_cleaned as kept
                on raw_rows.transaction_id = kept.transaction_id
            where rejected.rejection_id is null
                and (
                    kept.transaction_id is null
                    or kept.loaded_at < raw_rows.loaded_at
                    or (kept.loaded_at = raw_rows.loaded_at
                        and kept.source_file_name < raw_rows.source_file_name)
                )
            """
        ).n[0]
    )


def _has_raw_data(folder: Path) -> bool:
    return any(folder.glob("transactions/*.parquet")) and any(folder.glob("customers/*.parquet"))


@pytest.fixture(scope="session")
def small_raw_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _has_raw_data(SMALL_FIXTURE_DIR):
        return SMALL_FIXTURE_DIR
    if not (PROJECT_ROOT / "simulator" / "generate.py").exists():
        pytest.skip("no tests/fixtures/small and no simulator/ to generate it")
    out = tmp_path_factory.mktemp("small_raw")
    subprocess.run(
        [sys.executable, "-m", "simulator", *SMALL_DATAGEN_ARGS, "--out", str(out), "--quiet"],
        cwd=PROJECT_ROOT,
        check=True,
        timeout=300,
    )
    return out


def _project_vars(raw_data: Path, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    values: dict[str, Any] = dict(SMALL_BUILD_VARS)
    if raw_data.resolve() != SMALL_FIXTURE_DIR.resolve():
        values["raw_data_path"] = str(raw_data)
    values.update(extra or {})
    return values


@pytest.fixture
def dbt_project_factory(
    tmp_path_factory: pytest.TempPathFactory, small_raw_data: Path
) -> Callable[..., DbtProject]:
    def make(name: str = "dbt", vars: Mapping[str, Any] | None = None) -> DbtProject:
        return DbtProject(tmp_path_factory.mktemp(name), _project_vars(small_raw_data, vars))

    return make


@pytest.fixture(scope="session")
def small_build(tmp_path_factory: pytest.TempPathFactory, small_raw_data: Path) -> DbtProject:
    project = DbtProject(tmp_path_factory.mktemp("small_build"), _project_vars(small_raw_data))
    project.run("build")
    return project


@pytest.fixture(scope="session")
def audit_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warehouse where dbt built only audit.model_promotions (see the module docstring)."""
    project = DbtProject(tmp_path_factory.mktemp("audit_warehouse"), dict(SMALL_BUILD_VARS))
    project.run("build", "--select", "model_promotions")
    return project.warehouse_path


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated sqlite registry, made once per session (migrations take seconds);
    tests copy it instead of migrating their own."""
    folder = tmp_path_factory.getbasetemp() / "mlflow-template"
    database = folder / "mlflow.db"
    if not database.exists():
        import mlflow

        staging = tmp_path_factory.mktemp("mlflow-template-staging")
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{staging / 'mlflow.db'}").search_experiments()
        with contextlib.suppress(FileExistsError, OSError):
            staging.rename(folder)
    return database


@pytest.fixture
def fresh_mlflow_dir(
    tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    folder = tmp_path / "mlflow"
    folder.mkdir()
    shutil.copy(mlflow_template, folder / "mlflow.db")
    monkeypatch.setenv("FRAUD_MLFLOW_DIR", str(folder))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield folder


def make_synthetic_customers(
    n_customers: int = 600, n_fraud: int = 40, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features, labels) like gold.transaction_features / gold.customer_fraud_labels."""
    from ml.features import FEATURE_COLUMNS

    rng = np.random.default_rng(seed)
    n = n_customers
    fraud = np.zeros(n, dtype=bool)
    fraud[rng.choice(n, size=n_fraud, replace=False)] = True
    total = rng.integers(5, 60, n).astype(float)
    avg = rng.lognormal(4.0, 0.5, n) * np.where(fraud, 6.0, 1.0)
    std = avg * rng.uniform(0.2, 0.8, n)
    high = np.floor(total * np.where(fraud, 0.5, 0.01))
    weekend = np.floor(total * rng.uniform(0.2, 0.35, n))
    frame = pd.DataFrame(
        {
            "total_transactions": total,
            "total_spend": avg * total,
            "avg_transaction_amount": avg,
            "stddev_transaction_amount": std,
            "min_transaction_amount": avg * 0.2,
            "max_transaction_amount": avg * np.where(fraud, 5.0, 2.0),
            "unique_merchant_categories": rng.integers(1, 8, n).astype(float),
            "unique_merchants": rng.integers(1, 20, n).astype(float),
            "weekend_transactions": weekend,
            "high_value_transactions": high,
            "customer_tenure_days": rng.integers(30, 2000, n).astype(float),
            "amount_volatility": std / avg,
            "max_to_avg_ratio": np.where(fraud, 5.0, 2.0),
            "weekend_transaction_rate": weekend / total,
            "high_value_transaction_rate": high / total,
            "avg_transactions_per_day": total / 60.0,
        }
    )[list(FEATURE_COLUMNS)]
    ids = [f"C{i:06d}" for i in range(n)]
    frame.insert(0, "customer_id", ids)
    labels = pd.DataFrame(
        {
            "customer_id": ids,
            "is_fraudulent": fraud,
            "fraud_transactions": np.where(fraud, 3, 0),
        }
    )
    return frame, labels


@pytest.fixture
def synthetic_customers() -> Callable[..., tuple[pd.DataFrame, pd.DataFrame]]:
    return make_synthetic_customers
