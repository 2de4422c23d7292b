"""Monitor a fraud model in production: volume, anomaly rate and drift (``fraud-monitor``).

Usage::

    fraud-monitor [--model NAME] [--version N] [--days N] [--as-of TIMESTAMP]
                  [--output DIR] [--target TARGET] [--config FILE] [--json]
    python -m ml.monitoring ...

Data, read through the dbt target's warehouse (``ml.warehouse``, by relation name, every value a
bound parameter):

* ``audit.model_predictions`` of the monitored model version in the window: total predictions,
  anomaly rate, average confidence, volume per day; the latest batch (latest
  ``dbt_invocation_id``) gives the current score distribution.
* ``gold.transaction_features``: the current feature distributions.

The monitored model is ``--model`` (full or short name) and ``--version``; by default the
``champion`` of the random forest if it has one, else the isolation forest's champion, else its
latest version. A model without a version in the registry uses the latest ``model_version`` of
its predictions. The window ends at the latest ``prediction_timestamp`` of that version (or at
``--as-of``; a bare date means the end of that day, UTC) and covers ``--days`` days before it.

Drift is measured against the training reference, the run artifact
``reference/training_features.parquet`` of the model version (the 16 features and
``anomaly_score`` of the training rows):

* PSI per feature, reference vs current gold features: the reference's deciles (``bins`` in
  ``config/monitoring.yml``) define right-closed bins (-inf, q1], (q1, q2], ... (q9, +inf); tied
  quantiles are merged. PSI = sum((a - e) * ln(a / e)) over bins, e and a the reference and
  current shares, each share below ``epsilon`` (1e-4) replaced by ``epsilon`` so empty bins stay
  finite. Identical distributions give 0; > 0.2 is the usual "significant shift".
* The score: PSI of ``anomaly_score`` (reference) vs ``score`` of the latest batch, plus the
  two-sample Kolmogorov-Smirnov statistic (largest gap between the two empirical CDFs).

Outputs in ``--output`` (default ``reports/monitoring/latest``, overwritten): ``report.html``
(one self-contained file: tables inline, charts embedded as base64 PNG), the charts as PNG files
(``volume_per_day.png``, ``anomaly_rate.png``, ``feature_psi.png``, ``score_distribution.png``)
and ``summary.json``. The report path is printed.

Exit codes:
  0  every check within its threshold (config/monitoring.yml)
  1  a threshold breached, each named: anomaly rate outside [low, high]; a feature PSI above
     the threshold (the drifted features are listed); score PSI (or KS) above its threshold; the
     last day's volume dropped by more than max_drop_fraction of the previous days' median; the
     drift reference is missing (unless ``missing_reference: warn``)
  2  usage or infrastructure error (bad arguments, unknown target, warehouse or registry
     unreachable, a relation missing)
  3  no predictions in the window: a clear message, and the report is still written saying so
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ml import promotion, registry
from ml import warehouse as wh_mod
from ml.features import FEATURE_COLUMNS

DEFAULT_CONFIG = registry.PROJECT_ROOT / "config" / "monitoring.yml"
DEFAULT_OUTPUT = registry.PROJECT_ROOT / "reports" / "monitoring" / "latest"
REFERENCE_ARTIFACT = registry.REFERENCE_ARTIFACT_PATH  # reference/training_features.parquet
REFERENCE_SCORE_COLUMN = "anomaly_score"
FEATURES: tuple[str, ...] = FEATURE_COLUMNS
CHARTS = ("volume_per_day", "anomaly_rate", "feature_psi", "score_distribution")

EXIT_OK = 0
EXIT_BREACH = 1
EXIT_ERROR = 2
EXIT_NO_DATA = 3


class MonitoringError(Exception):
    """A usage or infrastructure problem: exit code 2."""


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def _clean(values: Any) -> np.ndarray:
    array: np.ndarray = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    finite: np.ndarray = array[np.isfinite(array)]
    return finite


def quantile_edges(reference: Any, bins: int = 10) -> np.ndarray:
    """Inner bin edges: the reference's quantiles 1/bins .. (bins-1)/bins, duplicates merged."""
    ref = _clean(reference)
    if ref.size == 0:
        raise ValueError("empty reference")
    edges: np.ndarray = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    return edges


def bin_shares(values: Any, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each right-closed bin (-inf, e0], (e0, e1], ..., (e_last, +inf)."""
    data = _clean(values)
    if data.size == 0:
        raise ValueError("no values")
    counts = np.bincount(np.searchsorted(edges, data, side="left"), minlength=edges.size + 1)
    shares: np.ndarray = counts / counts.sum()
    return shares


def psi(reference: Any, current: Any, bins: int = 10, epsilon: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference`` (see module docstring)."""
    edges = quantile_edges(reference, bins)
    expected = np.maximum(bin_shares(reference, edges), epsilon)
    actual = np.maximum(bin_shares(current, edges), epsilon)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks_statistic(first: Any, second: Any) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: max |F1(x) - F2(x)|."""
    a, b = np.sort(_clean(first)), np.sort(_clean(second))
    if a.size == 0 or b.size == 0:
        raise ValueError("empty sample")
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, side="right") / a.size
    cdf_b = np.searchsorted(b, points, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    version: str
    window_days: int
    rate_scope: str
    rate_low: float
    rate_high: float
    bins: int
    epsilon: float
    feature_psi: float
    score_psi: float
    ks: float | None
    min_rows: int
    missing_reference: str
    max_drop_fraction: float
    min_previous_days: int


def load_thresholds(path: str | os.PathLike[str]) -> Thresholds:
    try:
        document = wh_mod.load_yaml(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MonitoringError(f"cannot read monitoring config {path}: {exc}") from exc
    rate = document.get("anomaly_rate") or {}
    drift = document.get("drift") or {}
    volume = document.get("volume") or {}
    try:
        thresholds = Thresholds(
            version=str(document.get("version", "unversioned")),
            window_days=int(document.get("window_days", 30)),
            rate_scope=str(rate.get("scope", "latest_day")),
            rate_low=float(rate.get("low", 0.0)),
            rate_high=float(rate.get("high", 1.0)),
            bins=int(drift.get("bins", 10)),
            epsilon=float(drift.get("epsilon", 1e-4)),
            feature_psi=float(drift.get("feature_psi_threshold", 0.2)),
            score_psi=float(drift.get("score_psi_threshold", 0.2)),
            ks=None if drift.get("ks_threshold") is None else float(drift["ks_threshold"]),
            min_rows=int(drift.get("min_rows", 200)),
            missing_reference=str(drift.get("missing_reference", "fail")),
            max_drop_fraction=float(volume.get("max_drop_fraction", 0.5)),
            min_previous_days=int(volume.get("min_previous_days", 3)),
        )
    except (TypeError, ValueError) as exc:
        raise MonitoringError(f"monitoring config {path}: {exc}") from exc
    if thresholds.rate_scope not in ("latest_day", "window"):
        raise MonitoringError("anomaly_rate.scope must be latest_day or window")
    if thresholds.missing_reference not in ("fail", "warn"):
        raise MonitoringError("drift.missing_reference must be fail or warn")
    if thresholds.bins < 2:
        raise MonitoringError("drift.bins must be at least 2")
    return thresholds


# --------------------------------------------------------------------------------------------
# Model and reference (MLflow)
# --------------------------------------------------------------------------------------------


@dataclass
class Target:
    model_name: str
    version: str | None
    resolved_by: str
    run_id: str | None = None


def _aliases(client: Any, name: str) -> dict[str, int] | None:
    """Aliases of a registered model, or None when the registry does not know it."""
    try:
        return promotion.registered_aliases(client, name)
    except promotion.PromotionError:
        return None


def _latest_version(client: Any, name: str) -> int | None:
    try:
        return promotion.latest_version(client, name)
    except promotion.PromotionError:  # a name the registry's search filter cannot express
        return None


def resolve_target(client: Any, model: str | None, version: int | None) -> Target:
    """Which model version to monitor (see the module docstring)."""
    if model:
        name = registry.resolve_model_name(model)
        if version is not None:
            return Target(name, str(version), "--version")
        aliases = _aliases(client, name)
        if aliases is None:
            return Target(name, None, "not in the registry")
        if registry.CHAMPION_ALIAS in aliases:
            return Target(name, str(aliases[registry.CHAMPION_ALIAS]), "champion")
        latest = _latest_version(client, name)
        return Target(name, None if latest is None else str(latest), "latest version")
    for name in (registry.RANDOM_FOREST_MODEL, registry.ISOLATION_FOREST_MODEL):
        aliases = _aliases(client, name) or {}
        if registry.CHAMPION_ALIAS in aliases:
            chosen = str(version if version is not None else aliases[registry.CHAMPION_ALIAS])
            how = "--version" if version is not None else "champion"
            return Target(name, chosen, how)
    name = registry.ISOLATION_FOREST_MODEL
    latest = _latest_version(client, name) if _aliases(client, name) is not None else None
    if latest is None and version is None:
        raise MonitoringError(
            "no champion for the random forest or the isolation forest, and no isolation forest "
            "version: pass --model (and --version)"
        )
    chosen = str(version if version is not None else latest)
    return Target(name, chosen, "--version" if version is not None else "latest version")


def load_reference(client: Any, target: Target) -> tuple[pd.DataFrame | None, str]:
    """The training reference of the version's run, or None and the reason."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if target.version is None:
        return None, "no model version to read a reference from"
    try:
        model_version = client.get_model_version(target.model_name, target.version)
    except MlflowException as exc:
        return None, f"{target.model_name} v{target.version} not in the registry ({exc.message})"
    target.run_id = model_version.run_id or None
    if not target.run_id:
        return None, f"{target.model_name} v{target.version} has no source run"
    try:
        with tempfile.TemporaryDirectory() as folder:
            local = mlflow.artifacts.download_artifacts(
                run_id=target.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=folder
            )
            frame = pd.read_parquet(local)
    except (MlflowException, OSError, ValueError) as exc:
        return None, f"cannot read {REFERENCE_ARTIFACT} of run {target.run_id}: {exc}"
    return frame, ""


# --------------------------------------------------------------------------------------------
# Warehouse reads
# --------------------------------------------------------------------------------------------


@dataclass
class Observed:
    """What the warehouse says about the monitored version."""

    predictions_relation: str
    features_relation: str
    version: str | None
    window_start: datetime | None = None
    window_end: datetime | None = None
    daily: pd.DataFrame = field(default_factory=pd.DataFrame)
    batch_id: str | None = None
    batch_time: datetime | None = None
    batch_scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    features: pd.DataFrame = field(default_factory=pd.DataFrame)


def _to_datetime(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    moment: datetime = pd.Timestamp(value).to_pydatetime()
    return moment


def parse_as_of(text: str) -> datetime:
    """ISO timestamp; a bare date means the end of that day."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1), time()) - timedelta(microseconds=1)
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise MonitoringError(f"--as-of {text!r} is not an ISO date or timestamp") from exc


def _align(moment: datetime, like: datetime | None) -> datetime:
    """Give ``moment`` the time-zone awareness of the column values (naive values are UTC)."""
    aware_column = like is not None and like.tzinfo is not None
    if aware_column and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    if not aware_column and moment.tzinfo is not None:
        return moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def read_warehouse(
    warehouse: wh_mod.Warehouse,
    target: Target,
    days: int,
    as_of: datetime | None,
) -> Observed:
    predictions = warehouse.relation("audit", "model_predictions")
    features = warehouse.relation("gold", "transaction_features")
    for schema, name, relation in (
        ("audit", "model_predictions", predictions),
        ("gold", "transaction_features", features),
    ):
        if not warehouse.table_exists(schema, name):
            raise MonitoringError(
                f"{relation} does not exist on {warehouse.description}: build and score first"
            )
    text = warehouse.sql_type("text")
    where = "model_name = ?"
    params: list[Any] = [target.model_name]
    version = target.version
    if version is None:
        latest = warehouse.query(
            f"select cast(model_version as {text}) as v, max(prediction_timestamp) as ts "
            f"from {predictions} where model_name = ? group by cast(model_version as {text}) "
            "order by ts desc limit 1",
            [target.model_name],
        )
        version = None if latest.empty else str(latest.iloc[0]["v"])
    if version is not None:
        where += f" and cast(model_version as {text}) = ?"
        params.append(version)
    observed = Observed(predictions, features, version)

    stats = warehouse.query(
        f"select max(prediction_timestamp) as max_ts from {predictions} where {where}", params
    )
    latest_ts = _to_datetime(stats.iloc[0]["max_ts"]) if not stats.empty else None
    end = _align(as_of, latest_ts) if as_of is not None else latest_ts
    feature_columns = _feature_columns(warehouse, features)
    if feature_columns:
        columns = ", ".join(warehouse.quote(column) for column in feature_columns)
        observed.features = warehouse.query(f"select {columns} from {features}")
    if end is None:
        return observed
    start = end - timedelta(days=days)
    observed.window_start, observed.window_end = start, end
    window = f"{where} and prediction_timestamp > ? and prediction_timestamp <= ?"
    window_params = [*params, start, end]
    observed.daily = warehouse.query(
        "select cast(prediction_timestamp as date) as day, count(*) as predictions, "
        "sum(cast(is_anomaly as integer)) as anomalies, avg(confidence) as avg_confidence "
        f"from {predictions} where {window} "
        "group by cast(prediction_timestamp as date) order by day",
        window_params,
    )
    batch = warehouse.query(
        f"select cast(dbt_invocation_id as {text}) as batch_id, "
        "max(prediction_timestamp) as batch_time "
        f"from {predictions} where {window} "
        f"group by cast(dbt_invocation_id as {text}) order by batch_time desc limit 1",
        window_params,
    )
    if not batch.empty:
        batch_id = batch.iloc[0]["batch_id"]
        observed.batch_time = _to_datetime(batch.iloc[0]["batch_time"])
        if batch_id is None or pd.isna(batch_id):
            scores = warehouse.query(
                f"select score from {predictions} where {where} and prediction_timestamp = ?",
                [*params, observed.batch_time],
            )
        else:
            observed.batch_id = str(batch_id)
            scores = warehouse.query(
                f"select score from {predictions} where {window} "
                f"and cast(dbt_invocation_id as {text}) = ?",
                [*window_params, observed.batch_id],
            )
        observed.batch_scores = _clean(scores["score"])
    return observed


def _feature_columns(warehouse: wh_mod.Warehouse, relation: str) -> list[str]:
    present = set(warehouse.query(f"select * from {relation} where 1 = 0").columns)
    return [column for column in FEATURES if column in present]


# --------------------------------------------------------------------------------------------
# Metrics and checks
# --------------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    status: str  # ok | breach | warn | skipped
    value: float | None
    threshold: str
    message: str


def daily_calendar(daily: pd.DataFrame) -> pd.DataFrame:
    """Per-day rows from the first day with predictions to the last, missing days as zero."""
    if daily.empty:
        return pd.DataFrame(columns=["day", "predictions", "anomalies", "avg_confidence", "rate"])
    frame = daily.copy()
    frame["day"] = pd.to_datetime(frame["day"]).dt.date
    frame = frame.set_index("day").sort_index()
    days = pd.date_range(min(frame.index), max(frame.index), freq="D").date
    frame = frame.reindex(days)
    frame.index.name = "day"
    frame["predictions"] = frame["predictions"].fillna(0).astype(int)
    frame["anomalies"] = frame["anomalies"].fillna(0).astype(int)
    frame["avg_confidence"] = frame["avg_confidence"].astype(float)
    frame["rate"] = np.where(
        frame["predictions"] > 0, frame["anomalies"] / frame["predictions"].clip(lower=1), np.nan
    )
    return frame.reset_index()


def volume_check(calendar: pd.DataFrame, limits: Thresholds) -> Check:
    threshold = f"drop <= {limits.max_drop_fraction:.0%} of previous days' median"
    previous = calendar["predictions"].iloc[:-1]
    if len(previous) < limits.min_previous_days:
        return Check(
            "volume_drop",
            "skipped",
            None,
            threshold,
            f"{len(previous)} previous day(s) in the window; needs {limits.min_previous_days}",
        )
    median = float(previous.median())
    last = int(calendar["predictions"].iloc[-1])
    drop = 0.0 if median <= 0 else max(0.0, 1.0 - last / median)
    breach = drop > limits.max_drop_fraction
    return Check(
        "volume_drop",
        "breach" if breach else "ok",
        drop,
        threshold,
        f"last day {calendar['day'].iloc[-1]}: {last} predictions vs median {median:g} "
        f"of the previous {len(previous)} day(s) ({drop:.0%} drop)",
    )


def rate_check(calendar: pd.DataFrame, limits: Thresholds) -> Check:
    if limits.rate_scope == "latest_day":
        predictions = int(calendar["predictions"].iloc[-1])
        anomalies = int(calendar["anomalies"].iloc[-1])
        scope = f"last day {calendar['day'].iloc[-1]}"
    else:
        predictions = int(calendar["predictions"].sum())
        anomalies = int(calendar["anomalies"].sum())
        scope = "window"
    threshold = f"[{limits.rate_low:g}, {limits.rate_high:g}]"
    if predictions == 0:
        return Check("anomaly_rate", "skipped", None, threshold, f"no predictions ({scope})")
    rate = anomalies / predictions
    inside = limits.rate_low <= rate <= limits.rate_high
    return Check(
        "anomaly_rate",
        "ok" if inside else "breach",
        rate,
        threshold,
        f"{scope}: {anomalies}/{predictions} flagged = {rate:.2%}"
        + ("" if inside else f", outside {threshold}"),
    )


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, limits: Thresholds
) -> pd.DataFrame:
    """PSI per feature present in both frames; status ok / breach / skipped.

    With fewer than ``min_rows`` current rows the PSI is still computed and shown but not judged:
    its sampling noise alone (about (bins - 1) / rows) would approach the threshold.
    """
    rows = []
    too_few = len(current) < limits.min_rows
    for feature in FEATURES:
        if feature not in reference.columns or feature not in current.columns:
            rows.append((feature, math.nan, "skipped", "missing in reference or current data"))
            continue
        try:
            value = psi(reference[feature], current[feature], limits.bins, limits.epsilon)
        except ValueError as exc:
            rows.append((feature, math.nan, "skipped", str(exc)))
            continue
        if too_few:
            rows.append((feature, value, "skipped", f"{len(current)} rows < {limits.min_rows}"))
            continue
        status = "breach" if value > limits.feature_psi else "ok"
        rows.append((feature, value, status, ""))
    return pd.DataFrame(rows, columns=["feature", "psi", "status", "note"])


@dataclass
class Result:
    """Everything the report shows; ``summary.json`` is its dictionary."""

    target: Target
    limits: Thresholds
    warehouse: str
    days: int
    generated_at: datetime
    observed: Observed | None = None
    calendar: pd.DataFrame = field(default_factory=pd.DataFrame)
    drift: pd.DataFrame = field(default_factory=pd.DataFrame)
    score_psi: float | None = None
    score_ks: float | None = None
    reference_rows: int = 0
    reference_problem: str = ""
    checks: list[Check] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    exit_code: int = EXIT_OK

    @property
    def breaches(self) -> list[Check]:
        return [check for check in self.checks if check.status == "breach"]

    @property
    def total(self) -> int:
        return int(self.calendar["predictions"].sum()) if not self.calendar.empty else 0


def evaluate(result: Result, reference: pd.DataFrame | None) -> None:
    limits, observed = result.limits, result.observed
    assert observed is not None
    result.calendar = daily_calendar(observed.daily)
    if reference is None:
        result.checks.append(
            Check(
                "drift_reference",
                "breach" if limits.missing_reference == "fail" else "warn",
                None,
                "required" if limits.missing_reference == "fail" else "optional",
                f"drift not measured: {result.reference_problem}",
            )
        )
    else:
        result.reference_rows = len(reference)
        if not observed.features.empty:
            result.drift = feature_drift(reference, observed.features, limits)
            drifted = result.drift[result.drift["status"] == "breach"]
            judged = result.drift[result.drift["status"] != "skipped"]
            worst = result.drift["psi"].max()
            names = ", ".join(
                f"{row.feature} ({row.psi:.3f})" for row in drifted.itertuples(index=False)
            )
            if len(drifted):
                status, message = "breach", f"drifted features: {names}"
            elif len(judged):
                status, message = "ok", f"max PSI {worst:.3f} over {len(judged)} features"
            else:
                status = "skipped"
                message = (
                    f"{len(observed.features)} current rows (< min_rows {limits.min_rows}) "
                    "or no comparable feature: PSI shown, not judged"
                )
            result.checks.append(
                Check(
                    "feature_psi",
                    status,
                    None if pd.isna(worst) else float(worst),
                    f"each <= {limits.feature_psi:g}",
                    message,
                )
            )
        else:
            result.checks.append(
                Check("feature_psi", "skipped", None, "", "no current features in gold")
            )
        if REFERENCE_SCORE_COLUMN in reference.columns and observed.batch_scores.size:
            ref_scores = reference[REFERENCE_SCORE_COLUMN]
            result.score_psi = psi(ref_scores, observed.batch_scores, limits.bins, limits.epsilon)
            result.score_ks = ks_statistic(ref_scores, observed.batch_scores)
            enough = observed.batch_scores.size >= limits.min_rows
            breach = result.score_psi > limits.score_psi
            result.checks.append(
                Check(
                    "score_psi",
                    ("breach" if breach else "ok") if enough else "skipped",
                    result.score_psi,
                    f"<= {limits.score_psi:g}",
                    f"anomaly score, reference ({len(ref_scores)}) vs latest batch "
                    f"{observed.batch_id or observed.batch_time} ({observed.batch_scores.size})"
                    + ("" if enough else f": fewer than min_rows {limits.min_rows}, not judged"),
                )
            )
            if limits.ks is not None:
                ks_breach = result.score_ks > limits.ks
                result.checks.append(
                    Check(
                        "score_ks",
                        ("breach" if ks_breach else "ok") if enough else "skipped",
                        result.score_ks,
                        f"<= {limits.ks:g}",
                        "Kolmogorov-Smirnov statistic of the score",
                    )
                )
        else:
            reason = (
                f"the reference has no '{REFERENCE_SCORE_COLUMN}' column"
                if REFERENCE_SCORE_COLUMN not in reference.columns
                else "no scored batch in the window"
            )
            result.checks.append(
                Check("score_psi", "skipped", None, f"<= {limits.score_psi:g}", reason)
            )
    if result.calendar.empty:
        result.exit_code = EXIT_NO_DATA
        window = (
            f"{observed.window_start} .. {observed.window_end}"
            if observed.window_end is not None
            else "any time"
        )
        version = f" v{observed.version}" if observed.version else ""
        result.messages.insert(
            0,
            f"no predictions for {result.target.model_name}{version} in "
            f"{observed.predictions_relation} ({window})",
        )
        return
    result.checks.insert(0, volume_check(result.calendar, result.limits))
    result.checks.insert(0, rate_check(result.calendar, result.limits))
    result.exit_code = EXIT_BREACH if result.breaches else EXIT_OK


# --------------------------------------------------------------------------------------------
# Charts and report
# --------------------------------------------------------------------------------------------


def _figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def render_charts(result: Result) -> dict[str, bytes]:
    """PNG bytes per chart name (only the charts there is data for)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    charts: dict[str, bytes] = {}
    calendar = result.calendar
    if not calendar.empty:
        labels = [str(day) for day in calendar["day"]]
        figure, axis = plt.subplots(figsize=(8, 3.2))
        axis.bar(labels, calendar["predictions"], color="#4c72b0")
        axis.set_title("Predictions per day")
        axis.set_ylabel("predictions")
        axis.tick_params(axis="x", labelrotation=45)
        charts["volume_per_day"] = _figure_png(figure)
        plt.close(figure)

        figure, axis = plt.subplots(figsize=(8, 3.2))
        axis.plot(labels, calendar["rate"], marker="o", color="#c44e52", label="anomaly rate")
        axis.axhline(result.limits.rate_low, color="grey", linestyle="--", label="band")
        axis.axhline(result.limits.rate_high, color="grey", linestyle="--")
        axis.set_title("Anomaly rate per day")
        axis.set_ylabel("share flagged")
        axis.tick_params(axis="x", labelrotation=45)
        axis.legend(loc="upper left")
        charts["anomaly_rate"] = _figure_png(figure)
        plt.close(figure)
    drift = result.drift.dropna(subset=["psi"]) if not result.drift.empty else result.drift
    if not drift.empty:
        figure, axis = plt.subplots(figsize=(8, 5))
        colours = ["#c44e52" if s == "breach" else "#55a868" for s in drift["status"]]
        axis.barh(drift["feature"], drift["psi"], color=colours)
        axis.axvline(
            result.limits.feature_psi,
            color="black",
            linestyle="--",
            label=f"threshold {result.limits.feature_psi:g}",
        )
        axis.invert_yaxis()
        axis.set_title("PSI per feature: training reference vs current gold features")
        axis.set_xlabel("PSI")
        axis.legend(loc="lower right")
        charts["feature_psi"] = _figure_png(figure)
        plt.close(figure)
    return charts


def render_score_chart(reference: pd.DataFrame | None, scores: np.ndarray) -> bytes | None:
    if reference is None or REFERENCE_SCORE_COLUMN not in reference.columns or not scores.size:
        return None
    from matplotlib import pyplot as plt

    ref = _clean(reference[REFERENCE_SCORE_COLUMN])
    figure, axis = plt.subplots(figsize=(8, 3.2))
    edges = np.histogram_bin_edges(np.concatenate([ref, scores]), bins=30)
    for sample, label in ((ref, "training reference"), (scores, "latest batch")):
        density, _ = np.histogram(sample, bins=edges, density=True)
        axis.stairs(density, edges, fill=True, alpha=0.5, label=label)
    axis.set_title("Anomaly score distribution")
    axis.legend()
    png = _figure_png(figure)
    plt.close(figure)
    return png


def _table(frame: pd.DataFrame, floats: str = "{:.4f}") -> str:
    if frame.empty:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(str(column))}</th>" for column in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                text = "" if math.isnan(value) else floats.format(value)
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 70rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f2f2f2; }
.status { padding: 0.8rem 1rem; border-radius: 4px; font-weight: 600; }
.ok { background: #e3f4e6; } .breach { background: #fbe3e4; } .nodata { background: #fff4d6; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0 1.5rem; }
"""


def render_html(result: Result, charts: Mapping[str, bytes]) -> str:
    e = html.escape
    target, observed = result.target, result.observed
    version = (observed.version if observed else None) or target.version or "unknown"
    if result.exit_code == EXIT_NO_DATA:
        banner = ("nodata", "NO PREDICTIONS IN THE WINDOW")
    elif result.breaches:
        banner = ("breach", f"THRESHOLD BREACHED ({len(result.breaches)})")
    else:
        banner = ("ok", "ALL CHECKS WITHIN THRESHOLDS")
    facts = pd.DataFrame(
        [
            ("model", target.model_name),
            ("version", f"{version} ({target.resolved_by})"),
            ("run", target.run_id or "-"),
            ("warehouse", result.warehouse),
            ("predictions", observed.predictions_relation if observed else "-"),
            ("features", observed.features_relation if observed else "-"),
            (
                "window",
                f"{observed.window_start} .. {observed.window_end} ({result.days} days)"
                if observed and observed.window_end
                else "-",
            ),
            ("generated at", result.generated_at.isoformat()),
            ("thresholds", f"config/monitoring.yml version {result.limits.version}"),
        ],
        columns=["", ""],
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Fraud model monitoring: {e(target.model_name)} v{e(str(version))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Fraud model monitoring: {e(target.model_name)} v{e(str(version))}</h1>",
        f"<p class='status {banner[0]}'>{e(banner[1])}</p>",
    ]
    parts += [f"<p><strong>{e(message)}</strong></p>" for message in result.messages]
    parts += [_table(facts)]
    if result.checks:
        checks = pd.DataFrame(
            [
                (c.name, c.status, math.nan if c.value is None else c.value, c.threshold, c.message)
                for c in result.checks
            ],
            columns=["check", "status", "value", "threshold", "detail"],
        )
        parts += ["<h2>Checks</h2>", _table(checks)]
    if not result.calendar.empty:
        cal = result.calendar
        summary = pd.DataFrame(
            [
                ("total predictions", f"{result.total}"),
                ("anomalies", f"{int(cal['anomalies'].sum())}"),
                ("anomaly rate", f"{cal['anomalies'].sum() / max(result.total, 1):.2%}"),
                (
                    "average confidence",
                    f"{np.average(cal['avg_confidence'].fillna(0), weights=cal['predictions']):.4f}"
                    if result.total
                    else "-",
                ),
                ("days with predictions", f"{int((cal['predictions'] > 0).sum())}"),
            ],
            columns=["metric", "value"],
        )
        parts += ["<h2>Predictions</h2>", _table(summary), _table(cal)]
    parts += _images(charts, ("volume_per_day", "anomaly_rate"))
    parts.append("<h2>Drift</h2>")
    if result.reference_problem:
        parts.append(f"<p>{e(result.reference_problem)}</p>")
    else:
        parts.append(
            f"<p>Reference: {REFERENCE_ARTIFACT} of run {e(target.run_id or '-')} "
            f"({result.reference_rows} rows); {result.limits.bins} quantile bins, "
            f"epsilon {result.limits.epsilon:g}.</p>"
        )
    if result.score_psi is not None:
        score = pd.DataFrame(
            [
                ("score PSI", f"{result.score_psi:.4f}"),
                ("score KS statistic", f"{result.score_ks or 0.0:.4f}"),
                (
                    "latest batch",
                    str(observed.batch_id or observed.batch_time) if observed else "-",
                ),
                ("latest batch scores", str(observed.batch_scores.size if observed else 0)),
            ],
            columns=["measure", "value"],
        )
        parts.append(_table(score))
    if not result.drift.empty:
        parts.append(_table(result.drift))
    parts += _images(charts, ("feature_psi", "score_distribution"))
    parts.append("</body></html>")
    return "\n".join(parts)


def _images(charts: Mapping[str, bytes], names: Sequence[str]) -> list[str]:
    return [
        f"<img alt='{name}' src='data:image/png;base64,{base64.b64encode(charts[name]).decode()}'>"
        for name in names
        if name in charts
    ]


def summary_dict(result: Result, report: Path, charts: Mapping[str, bytes]) -> dict[str, Any]:
    observed = result.observed
    cal = result.calendar
    return {
        "exit_code": result.exit_code,
        "status": {EXIT_OK: "ok", EXIT_BREACH: "breach", EXIT_NO_DATA: "no_predictions"}.get(
            result.exit_code, "error"
        ),
        "messages": result.messages,
        "model_name": result.target.model_name,
        "model_version": (observed.version if observed else None) or result.target.version,
        "resolved_by": result.target.resolved_by,
        "run_id": result.target.run_id,
        "warehouse": result.warehouse,
        "window": {
            "days": result.days,
            "start": observed.window_start.isoformat()
            if observed and observed.window_start
            else None,
            "end": observed.window_end.isoformat() if observed and observed.window_end else None,
        },
        "generated_at": result.generated_at.isoformat(),
        "thresholds_version": result.limits.version,
        "metrics": {
            "total_predictions": result.total,
            "anomalies": int(cal["anomalies"].sum()) if not cal.empty else 0,
            "anomaly_rate": (float(cal["anomalies"].sum()) / result.total)
            if result.total
            else None,
            "average_confidence": float(
                np.average(cal["avg_confidence"].fillna(0), weights=cal["predictions"])
            )
            if result.total
            else None,
            "volume_per_day": {
                str(row.day): int(row.predictions) for row in cal.itertuples(index=False)
            },
        },
        "drift": {
            "reference": None if result.reference_problem else REFERENCE_ARTIFACT,
            "reference_problem": result.reference_problem or None,
            "feature_psi": {
                row.feature: None if pd.isna(row.psi) else float(row.psi)
                for row in result.drift.itertuples(index=False)
            },
            "drifted_features": [
                row.feature
                for row in result.drift.itertuples(index=False)
                if row.status == "breach"
            ],
            "score_psi": result.score_psi,
            "score_ks": result.score_ks,
            "latest_batch": observed.batch_id if observed else None,
        },
        "checks": [
            {
                "name": c.name,
                "status": c.status,
                "value": c.value,
                "threshold": c.threshold,
                "message": c.message,
            }
            for c in result.checks
        ],
        "breaches": [c.name for c in result.breaches],
        "report": str(report),
        "charts": sorted(f"{name}.png" for name in charts),
    }


def write_outputs(
    result: Result, reference: pd.DataFrame | None, output: Path
) -> tuple[Path, dict[str, Any]]:
    output.mkdir(parents=True, exist_ok=True)
    for name in (*CHARTS, "report", "summary"):
        for suffix in (".png", ".html", ".json"):
            (output / f"{name}{suffix}").unlink(missing_ok=True)
    charts = render_charts(result)
    observed_scores = result.observed.batch_scores if result.observed else np.empty(0)
    score_png = render_score_chart(reference, observed_scores)
    if score_png is not None:
        charts["score_distribution"] = score_png
    for name, png in charts.items():
        (output / f"{name}.png").write_bytes(png)
    report = output / "report.html"
    report.write_text(render_html(result, charts), encoding="utf-8")
    summary = summary_dict(result, report, charts)
    (output / "summary.json").write_text(
        json.dumps(summary, indent=2, sort_keys=True, default=str), encoding="utf-8"
    )
    return report, summary


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

EPILOG = """exit codes:
  0  all checks within thresholds
  1  a threshold breached (anomaly rate outside its band, feature or score PSI above the
     threshold (drifted features named), volume drop, drift reference missing)
  2  usage or infrastructure error (target, warehouse, registry, missing relation)
  3  no predictions in the window (the report is still written)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraud-monitor",
        description="Monitor a registered fraud model: prediction volume, anomaly rate, feature "
        "and score drift against its training reference. Writes report.html (self-contained), "
        "PNG charts and summary.json.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        help="registered model name or random_forest / isolation_forest (default: the random "
        "forest's champion, else the isolation forest's champion, else its latest version)",
    )
    parser.add_argument("--version", type=int, help="model version (default: as --model says)")
    parser.add_argument(
        "--days", type=int, help="window length in days (default: window_days of the config)"
    )
    parser.add_argument(
        "--as-of",
        help="window end, ISO date or timestamp (default: latest prediction_timestamp)",
    )
    parser.add_argument(
        "--output",
        default=str(DEFAULT_OUTPUT),
        help="report folder, overwritten (default: reports/monitoring/latest)",
    )
    parser.add_argument("--target", help="dbt target (default: DBT_TARGET or the profile's)")
    parser.add_argument("--profiles-dir", help="folder of profiles.yml (default: dbt's lookup)")
    parser.add_argument(
        "--config", default=str(DEFAULT_CONFIG), help="thresholds (default: config/monitoring.yml)"
    )
    parser.add_argument("--json", action="store_true", help="print summary.json to stdout")
    return parser


def _print_text(result: Result, report: Path) -> None:
    target = result.target
    version = (result.observed.version if result.observed else None) or target.version
    print(f"model {target.model_name} v{version} ({target.resolved_by}); {result.warehouse}")
    for message in result.messages:
        print(message)
    if result.total:
        cal = result.calendar
        print(
            f"{result.total} predictions over {len(cal)} day(s), "
            f"anomaly rate {cal['anomalies'].sum() / result.total:.2%}"
        )
    for check in result.checks:
        value = "" if check.value is None else f" {check.value:.4f}"
        print(f"  {check.status.upper():7} {check.name}{value}: {check.message}")
    if result.exit_code == EXIT_BREACH:
        names = ", ".join(check.name for check in result.breaches)
        print(f"THRESHOLD BREACHED: {names}")
    print(f"report: {report}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``fraud-monitor``; returns the exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        limits = load_thresholds(args.config)
        days = args.days if args.days is not None else limits.window_days
        if days <= 0:
            raise MonitoringError("--days must be positive")
        as_of = parse_as_of(args.as_of) if args.as_of else None
        registry.configure()
        import mlflow

        client = mlflow.MlflowClient()
        target = resolve_target(client, args.model, args.version)
        with wh_mod.connect(args.target, profiles_dir=args.profiles_dir, read_only=True) as wh:
            described = wh.description
            observed = read_warehouse(wh, target, days, as_of)
        if target.version is None:
            target.version = observed.version
        reference, problem = load_reference(client, target)
        result = Result(
            target=target,
            limits=limits,
            warehouse=described,
            days=days,
            generated_at=datetime.now(UTC),
            observed=observed,
            reference_problem=problem,
        )
        evaluate(result, reference)
        report, summary = write_outputs(result, reference, Path(args.output).resolve())
    except (MonitoringError, wh_mod.WarehouseError) as exc:
        print(f"fraud-monitor: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # registry unreachable, driver errors
        if os.environ.get("FRAUD_DEBUG"):
            traceback.print_exc()
        print(f"fraud-monitor: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    else:
        _print_text(result, report)
    if result.exit_code == EXIT_NO_DATA and args.json:
        print(f"fraud-monitor: {result.messages[0]}", file=sys.stderr)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
