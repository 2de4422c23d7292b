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
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import psutil

# The harness's pieces, importable from here as before the split (tests, other tools).
from bench.config import (
    DEFAULT_DAYS,
    DEFAULT_SEED,
    DEFAULT_TRANSACTIONS,
    LARGE_TRANSACTIONS,
    LATENCY_CALLS,
    PARTS,
    PROJECT_ROOT,
    TRANSACTIONS_PER_CUSTOMER,
    BenchConfig,
    BenchInputError,
    Paths,
    default_customers,
    project_vars,
)
from bench.measure import machine_info, read_run_results, run_measured
from bench.preflight import preflight
from bench.report import render_markdown
from bench.runner import Bench
from bench.targets import Results, Row, Target
from bench.workers import worker_main
from bench.workers_data import worker_limit
from bench.workers_scoring import _batch_limits, _measure_model

__all__ = [
    "Bench",
    "BenchConfig",
    "Paths",
    "Results",
    "Row",
    "Target",
    "_batch_limits",
    "_measure_model",
    "machine_info",
    "main",
    "os",
    "project_vars",
    "psutil",
    "read_run_results",
    "render_markdown",
    "run_measured",
    "shutil",
    "worker_limit",
]  # fmt: skip

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
