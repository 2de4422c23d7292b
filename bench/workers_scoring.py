"""Worker of the scoring part: batch rows/s and single-row latency of the scoring model."""

import gc
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bench.config import BATCH_REPEATS, LATENCY_BLOCKS, LATENCY_CALLS, SKLEARN_LATENCY_BUDGET_S
from bench.workers_data import _quiet_warnings, _read_table


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
