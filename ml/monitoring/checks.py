"""Monitoring thresholds and the checks on volume, anomaly rate and
feature drift (README "Promotion and monitoring").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ml import warehouse as wh_mod
from ml.monitoring.inputs import Observed, Target
from ml.monitoring.statistics import (
    EXIT_BREACH,
    EXIT_NO_DATA,
    EXIT_OK,
    FEATURES,
    REFERENCE_SCORE_COLUMN,
    MonitoringError,
    ks_statistic,
    monitored_features,
    psi,
)


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
    reference: pd.DataFrame,
    current: pd.DataFrame,
    limits: Thresholds,
    features: tuple[str, ...] | None = None,
) -> pd.DataFrame:
    """PSI per feature present in both frames; status ok / breach / skipped.

    With fewer than ``min_rows`` current rows the PSI is still computed and shown but not judged:
    its sampling noise alone (about (bins - 1) / rows) would approach the threshold.
    """
    rows = []
    too_few = len(current) < limits.min_rows
    for feature in features if features is not None else FEATURES:
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
    # the transaction classifier's realised performance (ml.monitoring.realised.summary)
    realised: dict[str, Any] | None = None
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
            names = monitored_features(result.target.model_name)[2]
            result.drift = feature_drift(reference, observed.features, limits, names)
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
