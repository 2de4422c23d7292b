"""Workers of the data parts: the one-query limit (limit_query.sql) and the notebook
alternative with the project doing the same work."""

import csv
import logging
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.config import FEATURE_TOLERANCE, LIMIT_QUERY_FILE, PROJECT_ROOT

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
