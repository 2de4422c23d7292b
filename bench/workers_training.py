"""Worker of the training part: logged training times, plot timings, optional rerun."""

import contextlib
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.config import TRAINING_MODELS
from bench.workers_data import _quiet_warnings, _read_table


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
