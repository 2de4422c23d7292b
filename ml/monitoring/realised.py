"""Realised performance of the transaction classifier as labels arrive: per day of transaction,
the precision of its flags and card precision@k against the fraud labels known by the window
end (silver.fraud_labels.label_known_at), next to the figures of the version's training run.

Labels arrive days to weeks after a transaction, so the latest days always look better than
they will (fewer frauds known yet, precision a lower bound) or are simply empty: days younger
than ``maturity_days`` are shown but not judged. The checks warn (never breach): a drop of more
than ``max_drop`` below the training figure on the matured days is for a person to look at,
not a reason to fail the job while labels are still coming in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from ml import transaction_model
from ml import warehouse as wh_mod
from ml.monitoring.checks import Check
from ml.training.transaction_model.evaluation import card_precision_at_k

DEFAULT_MATURITY_DAYS = 14
DEFAULT_MAX_DROP = 0.2
DEFAULT_K = 100


@dataclass
class Realised:
    """Per-day realised figures and the training run's."""

    per_day: pd.DataFrame = field(default_factory=pd.DataFrame)
    matured_precision: float | None = None
    matured_card_precision: float | None = None
    training_precision: float | None = None
    training_card_precision: float | None = None
    k: int = DEFAULT_K
    maturity_days: int = DEFAULT_MATURITY_DAYS
    labels_known_by: datetime | None = None
    note: str = ""


def applies(model_name: str) -> bool:
    """Realised performance is measured for the transaction classifier (per-transaction
    labels); the customer models are judged by the seed's checks only."""
    return model_name == transaction_model.MODEL_NAME


def daily_realised(
    scores: pd.DataFrame, fraud_ids: set[str], k: int, as_of: datetime, maturity_days: int
) -> pd.DataFrame:
    """Per day of ``transaction_timestamp``: transactions, flagged, flagged with a known fraud
    label, realised precision (null when nothing was flagged), known frauds, card
    precision@k and whether the day has matured (``as_of - maturity_days`` or older)."""
    columns = [
        "day",
        "transactions",
        "flagged",
        "flagged_fraud",
        "precision",
        "known_frauds",
        "card_precision",
        "is_matured",
    ]
    if scores.empty:
        return pd.DataFrame(columns=columns)
    frame = scores.assign(
        day=pd.to_datetime(scores["transaction_timestamp"]).dt.floor("D"),
        is_fraud=scores["transaction_id"].astype(str).isin(fraud_ids),
    )
    frame["flagged_fraud"] = frame["is_flagged"].astype(bool) & frame["is_fraud"]
    daily = (
        frame.groupby("day", sort=True)
        .agg(
            transactions=("transaction_id", "size"),
            flagged=("is_flagged", "sum"),
            flagged_fraud=("flagged_fraud", "sum"),
            known_frauds=("is_fraud", "sum"),
        )
        .reset_index()
    )
    daily["precision"] = (daily["flagged_fraud"] / daily["flagged"]).where(daily["flagged"] > 0)
    cards = card_precision_at_k(
        frame["day"], frame["customer_id"], frame["fraud_probability"], frame["is_fraud"], k
    ).per_day[["day", "card_precision"]]
    daily = daily.merge(cards, on="day", how="left")
    cutoff = pd.Timestamp(as_of) - timedelta(days=maturity_days)
    daily["is_matured"] = daily["day"] + timedelta(days=1) <= cutoff
    return daily[columns]


def labels_as_of(window_end: datetime, newest_label: datetime) -> datetime:
    """How far the labels reach: the newest label known by ``window_end``, not the clock. A
    label feed is an extract (the generator's is taken at its end date, a bank's arrives each
    night); a day is only as mature as the time since the feed's newest label, so judging
    maturity from the wall clock would count the frauds of the feed's last weeks, not reported
    yet, as false flags."""
    return min(window_end, newest_label)


def read_realised(
    warehouse: wh_mod.Warehouse,
    model_name: str,
    version: str | None,
    window_start: datetime | None,
    window_end: datetime | None,
    training: dict[str, Any],
    maturity_days: int = DEFAULT_MATURITY_DAYS,
) -> Realised:
    """The scores of the version in gold.transaction_fraud_scores whose transaction falls in
    the last ``window`` days before ``window_end`` plus the maturity period (so matured days
    exist), against the labels known by ``window_end``, with the window first moved back so
    it ends at the newest of those labels (``labels_as_of``). ``training``: the run's metrics
    (``precision``, ``card_precision_at_k``, ``card_precision_k``)."""
    k = int(training.get("card_precision_k") or DEFAULT_K)
    out = Realised(
        training_precision=_number(training.get("precision")),
        training_card_precision=_number(training.get("card_precision_at_k")),
        k=k,
        maturity_days=maturity_days,
        labels_known_by=window_end,
    )
    for schema, name in (("gold", "transaction_fraud_scores"), ("silver", "fraud_labels")):
        if not warehouse.table_exists(schema, name):
            out.note = f"{warehouse.relation(schema, name)} does not exist: not measured"
            return out
    if window_end is None or version is None:
        out.note = "no scored transactions of this version: not measured"
        return out
    scores_relation = warehouse.relation("gold", "transaction_fraud_scores")
    labels_relation = warehouse.relation("silver", "fraud_labels")
    newest = warehouse.query(
        f"select max(label_known_at) as newest from {labels_relation} where label_known_at <= ?",
        [window_end],
    )["newest"][0]
    if newest is None or pd.isna(newest):
        out.note = f"no label known by {window_end}: not measured"
        return out
    span = window_end - (window_start or window_end)  # the monitoring window's length
    window_end = labels_as_of(window_end, pd.Timestamp(newest).to_pydatetime())
    out.labels_known_by = window_end
    text = warehouse.sql_type("text")
    start = window_end - span - timedelta(days=maturity_days)
    scores = warehouse.query(
        "select transaction_id, customer_id, transaction_timestamp, fraud_probability, "
        f"is_flagged from {scores_relation} where model_name = ? "
        f"and cast(model_version as {text}) = ? "
        "and transaction_timestamp > ? and transaction_timestamp <= ?",
        [model_name, version, start, window_end],
    )
    labels = warehouse.query(
        f"select transaction_id from {labels_relation} where label_known_at <= ?", [window_end]
    )
    fraud_ids = set(labels["transaction_id"].astype(str))
    out.per_day = daily_realised(scores, fraud_ids, k, window_end, maturity_days)
    matured = out.per_day[out.per_day["is_matured"]]
    if len(matured):
        flagged = matured["flagged"].sum()
        out.matured_precision = float(matured["flagged_fraud"].sum() / flagged) if flagged else None
        out.matured_card_precision = _number(matured["card_precision"].mean())
    else:
        out.note = f"no day older than {maturity_days} days: labels still arriving, not judged"
    return out


def _number(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return float(value)


def judge(realised: Realised, max_drop: float = DEFAULT_MAX_DROP) -> list[Check]:
    """Checks (ok | warn | skipped, never breach) of the realised precision and card
    precision@k of the matured days against ``(1 - max_drop)`` x the training figure."""
    checks: list[Check] = []
    for name, value, reference in (
        ("realised_precision", realised.matured_precision, realised.training_precision),
        (
            f"realised_card_precision_at_{realised.k}",
            realised.matured_card_precision,
            realised.training_card_precision,
        ),
    ):
        if value is None or reference is None:
            message = realised.note or "no training figure, or nothing flagged on matured days"
            checks.append(Check(name, "skipped", None, "", message))
            continue
        floor = reference * (1.0 - max_drop)
        checks.append(
            Check(
                name,
                "ok" if value >= floor else "warn",
                value,
                f">= {floor:.3f} (training {reference:.3f} - {max_drop:.0%})",
                f"days older than {realised.maturity_days} d, labels known by "
                f"{realised.labels_known_by}: {value:.3f} vs training {reference:.3f}",
            )
        )
    return checks


def summary(realised: Realised) -> dict[str, Any]:
    """The ``realised`` section of summary.json."""
    return {
        "k": realised.k,
        "maturity_days": realised.maturity_days,
        "labels_known_by": str(realised.labels_known_by) if realised.labels_known_by else None,
        "matured_precision": realised.matured_precision,
        "training_precision": realised.training_precision,
        "matured_card_precision_at_k": realised.matured_card_precision,
        "training_card_precision_at_k": realised.training_card_precision,
        "note": realised.note or None,
        "per_day": [
            {
                "day": str(pd.Timestamp(row.day).date()),
                "transactions": int(row.transactions),
                "flagged": int(row.flagged),
                "flagged_fraud": int(row.flagged_fraud),
                "precision": _number(row.precision),
                "known_frauds": int(row.known_frauds),
                "card_precision": _number(row.card_precision),
                "is_matured": bool(row.is_matured),
            }
            for row in realised.per_day.itertuples(index=False)
        ],
    }
