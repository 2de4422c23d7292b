"""The monitoring report: charts, HTML page and JSON summary."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.monitoring.checks import Result
from ml.monitoring.statistics import (
    CHARTS,
    EXIT_BREACH,
    EXIT_NO_DATA,
    EXIT_OK,
    REFERENCE_ARTIFACT,
    REFERENCE_SCORE_COLUMN,
    finite_values,
)


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

    ref = finite_values(reference[REFERENCE_SCORE_COLUMN])
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
        "realised": result.realised,
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
