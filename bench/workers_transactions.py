"""Workers of the transaction-level parts: ``tx_limit`` (gold.transaction_risk_features by ONE
hand-written DuckDB query over the Parquet landing files, checked equal to the table dbt built)
and ``tx_scoring`` (the transaction classifier's probability, the contributions of the scoring
rule of ``ml.scoring.explanations`` and the top-3 reason texts, in transactions per second,
beside the same rule by LightGBM's and numpy's own code)."""

from __future__ import annotations

import gc
import math
import string
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.config import FEATURE_TOLERANCE, TX_REFERENCE_QUERY_FILE
from bench.workers_data import _quiet_warnings, _read_table, _sql_string

TX_FEATURES_TABLE = "gold.transaction_risk_features"
# written by dbt at load time, not a feature: the one column the query does not produce
TX_NOT_COMPARED = frozenset({"loaded_at"})
TX_SCORING_MAX_ROWS = 5_000  # rows scored in tx_scoring (a uniform sample of the table)
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE", "DEC")


def tx_reference_query(raw: Path, variables: Mapping[str, Any]) -> str:
    """tests/reference/transaction_risk_features_reference.sql with its placeholders filled:
    the landing folder and the var as_of_date (validated as a date, never spliced as text)."""
    from datetime import date

    as_of = str(variables.get("as_of_date", "2026-11-01"))
    try:
        date.fromisoformat(as_of)
    except ValueError as exc:
        raise ValueError(f"dbt var as_of_date {as_of!r} is not a date (YYYY-MM-DD)") from exc
    template = string.Template(TX_REFERENCE_QUERY_FILE.read_text(encoding="utf-8"))
    return template.substitute(raw=str(raw).replace("'", "''"), as_of=as_of)


def _is_numeric(duckdb_type: str) -> bool:
    return duckdb_type.upper().lstrip("U").startswith(NUMERIC_TYPES)


def compare_with_table(con: Any, limit_table: str, table: str) -> dict[str, Any]:
    """Row counts, rows matched on transaction_id, per numeric column the max relative
    difference, per other column the count of rows that differ (null-safe)."""
    types = {
        str(name): str(kind) for name, kind, *_ in con.execute(f"describe {limit_table}").fetchall()
    }
    columns = [c for c in types if c not in TX_NOT_COMPARED and c != "transaction_id"]
    parts = ["count(*) as matched"]
    for column in columns:
        if _is_numeric(types[column]):
            parts.append(
                f"coalesce(max(abs(cast(l.{column} as double) - cast(g.{column} as double))"
                f" / greatest(1.0, abs(cast(g.{column} as double)))), 0.0) as {column}"
            )
        else:
            differs = f"l.{column} is distinct from g.{column}"
            parts.append(f"count(*) filter (where {differs}) as {column}")
    row = con.execute(
        f"select {', '.join(parts)} from {limit_table} as l "
        f"inner join {table} as g using (transaction_id)"
    ).fetchall()[0]
    rows = int(con.execute(f"select count(*) from {limit_table}").fetchall()[0][0])
    table_rows = int(con.execute(f"select count(*) from {table}").fetchall()[0][0])
    missing = sorted(
        str(name)
        for (name,) in con.execute(
            f"select column_name from (describe {table}) where column_name not in "
            f"(select column_name from (describe {limit_table}))"
        ).fetchall()
        if str(name) not in TX_NOT_COMPARED
    )
    matched = int(row[0])
    numeric = {c: float(v) for c, v in zip(columns, row[1:], strict=True) if _is_numeric(types[c])}
    other = {c: int(v) for c, v in zip(columns, row[1:], strict=True) if not _is_numeric(types[c])}
    worst = max(numeric.values(), default=math.nan)
    equal = (
        rows == table_rows == matched
        and not missing
        and all(v <= FEATURE_TOLERANCE for v in numeric.values())
        and not any(other.values())
    )
    return {
        "rows": rows,
        "table_rows": table_rows,
        "matched_rows": matched,
        "columns_compared": len(columns),
        "columns_missing_from_query": missing,
        "max_relative_difference": worst,
        "per_column_max_relative_difference": numeric,
        "per_column_rows_different": other,
        "equal_to_table": bool(equal),
        "tolerance": FEATURE_TOLERANCE,
    }


def worker_tx_limit(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run the hand-written transaction-features query into a fresh DuckDB file (timed), then
    compare it with gold.transaction_risk_features of ``warehouse_file`` (not timed)."""
    import duckdb

    db = Path(spec["limit_db"])
    db.unlink(missing_ok=True)
    sql = tx_reference_query(Path(spec["raw"]), spec["vars"])
    started = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute("create table tx_limit as " + sql)
        con.execute("checkpoint")
    query_seconds = time.perf_counter() - started
    compare_started = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute(f"attach {_sql_string(spec['warehouse_file'])} as wh (read_only)")
        result = compare_with_table(con, "tx_limit", f"wh.{TX_FEATURES_TABLE}")
    return {
        **result,
        "query_seconds": query_seconds,
        "compare_seconds": time.perf_counter() - compare_started,
    }


def _best_of(repeats: int, work: Any) -> tuple[float, Any]:
    best, value = math.inf, None
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        value = work()
        best = min(best, time.perf_counter() - started)
    return best, value


def worker_tx_scoring(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The transaction classifier (its @champion, else its latest version) on every row of
    gold.transaction_risk_features, measured by ``measure_tx_scoring``."""
    _quiet_warnings()
    from ml import registry

    registry.configure()
    name = registry.TRANSACTION_CLASSIFIER_MODEL
    version = registry.version_by_alias(name, registry.CHAMPION_ALIAS)
    how = "champion"
    if version is None:
        version, how = registry.latest_version(name), "latest (no champion)"
    if version is None:
        return {"model": None, "note": f"no registered version of {name}"}
    pipeline = registry.load_sklearn_model(name, version.version)
    # a uniform sample: the per-row cost is what is measured (exact TreeSHAP of every row ran
    # at ~100 rows/s on the shared machine; all 300,000 rows would have taken hours)
    count = _read_table(spec["warehouse_file"], f"select count(*) as n from {TX_FEATURES_TABLE}")
    total = int(count["n"].iloc[0])
    cap = int(spec.get("max_rows", TX_SCORING_MAX_ROWS))
    frame = _read_table(
        spec["warehouse_file"],
        f"select * from {TX_FEATURES_TABLE} using sample {min(cap, total)} rows (reservoir, 42)",
    )
    label = f"{name} v{version.version} ({how})"
    from ml.scoring.selection import run_decision_threshold

    threshold = run_decision_threshold(version.run_id) or 0.5  # unlogged: the classifier default
    repeats = max(1, int(spec.get("repeats", 1)))
    result = measure_tx_scoring(pipeline, frame, repeats, label, threshold)
    return {**result, "table_rows": total}


def measure_tx_scoring(
    pipeline: Any, frame: Any, repeats: int, label: str, threshold: float = 0.5
) -> dict[str, Any]:
    """Scoring with reason codes of every row of ``frame``, each step timed (best of
    ``repeats``), two ways side by side on the same rows and flags:

    - the scoring path (``ml.scoring.explanations.explained_scores``, what
      gold.transaction_fraud_scores and the service run): probability and contributions in
      one (LightGBM: the compiled kernel's margin and path attribution, exact TreeSHAP for the
      rows flagged at ``threshold``), then the top-3 reason texts (``reason_columns``); its
      parts timed alone too: the preprocessing step, the kernel, TreeSHAP of the flagged rows;
    - the reference (LightGBM's and numpy's own code for the same rule, as before the
      compiled path): ``predict_proba``, then ``explained_contributions(compiled=False)``,
      then the same reasons.

    Not in either rate: the encoding (``feature_matrix``) and the once-per-model compilation
    (``compile_seconds``: the booster's node arrays, numba's cached kernels, the reference's
    leaf tables). The differences between the two paths are reported (<= 1e-9 expected)."""
    import numpy as np

    from ml.scores import CLASSIFIER_KIND, flag
    from ml.scoring.explanations import booster_of, explained_contributions, explained_scores
    from ml.scoring.transaction_reasons import reason_columns
    from ml.transaction_model import feature_matrix, fraud_probability, transformed

    rows = len(frame)
    encode_s, X = _best_of(repeats, lambda: feature_matrix(frame))
    booster = booster_of(pipeline)
    started = time.perf_counter()
    if booster is not None:
        from ml.scoring.fast_evaluator.boosted import flat_booster, warm_up
        from ml.transaction_model import path_contributions

        warm_up()
        flat = flat_booster(booster)
        path_contributions(booster, transformed(pipeline, X.iloc[:1]).to_numpy())
    compile_s = time.perf_counter() - started
    scores_s, (probability, flagged, contrib) = _best_of(
        repeats, lambda: explained_scores(pipeline, X, threshold)
    )
    reasons_s, reasons = _best_of(repeats, lambda: reason_columns(X, contrib))
    ref_predict_s, ref_probability = _best_of(repeats, lambda: fraud_probability(pipeline, X))
    ref_flagged = flag(ref_probability, threshold, CLASSIFIER_KIND)
    ref_contrib_s, ref_contrib = _best_of(
        repeats, lambda: explained_contributions(pipeline, X, ref_flagged, compiled=False)
    )
    parts: dict[str, float | None] = {"transform": None, "kernel": None, "shap_flagged": None}
    if booster is not None:
        parts["transform"], matrix = _best_of(repeats, lambda: transformed(pipeline, X))
        values = matrix.to_numpy()
        parts["kernel"], _ = _best_of(repeats, lambda: flat.margin_and_path(values))
        parts["shap_flagged"], _ = _best_of(
            repeats, lambda: booster.predict(values[flagged], pred_contrib=True, num_threads=1)
        )
    classifier = pipeline.named_steps["classifier"]
    seconds = scores_s + reasons_s
    ref_seconds = ref_predict_s + ref_contrib_s + reasons_s
    return {
        "model": label,
        "classifier": type(classifier).__name__,
        "threads": getattr(classifier, "n_jobs", None),
        "rows": rows,
        "flagged_rows": int(flagged.sum()),
        "encode_seconds": encode_s,
        "compile_seconds": compile_s,
        "scores_seconds": scores_s,
        "transform_seconds": parts["transform"],
        "kernel_seconds": parts["kernel"],
        "shap_flagged_seconds": parts["shap_flagged"],
        "reasons": "ml.scoring.transaction_reasons.reason_columns",
        "reasons_seconds": reasons_s,
        "reasons_non_null": bool(reasons.notna().all().all()),
        "reason_rows": len(reasons),
        "seconds": seconds,
        "rows_per_s": rows / seconds if rows and seconds else None,
        "reference_predict_seconds": ref_predict_s,
        "reference_contributions_seconds": ref_contrib_s,
        "reference_seconds": ref_seconds,
        "reference_rows_per_s": rows / ref_seconds if rows and ref_seconds else None,
        "same_flags": bool(np.array_equal(flagged, ref_flagged)),
        "max_probability_difference": float(np.max(np.abs(probability - ref_probability))),
        "max_contribution_difference": float(np.max(np.abs(contrib - ref_contrib).to_numpy())),
    }
