"""``fraud-shadow-report``: champion against shadow challenger over a period, from
audit.online_predictions (the landed decision log) and silver.fraud_labels: decisions paired by
transaction, agreement of the flags, each role's flag rate and mean score, and, for the
transactions whose label is known by now, each role's precision (flagged and reported), recall
and card precision@k per day of transaction (``card_precision_at_k`` of the transaction
classifier's evaluation, the one implementation; ``--k`` as var ``card_precision_k``, default
100; an unlabelled transaction counts as not fraud). Latency: per role, p50 and p99 (nearest
rank) of the service's own recorded time to decide (``decision_us``) over every decision of the
period that records it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np
import pandas as pd

from ml.training.transaction_model.evaluation import card_precision_at_k
from ml.training.transaction_model.params import DEFAULT_CARD_PRECISION_K, card_precision_k

ROLES = ("champion", "challenger")

PAIRS_SQL = """
    select
        champion.transaction_id,
        champion.customer_id,
        champion.transaction_at,
        champion.model_version as champion_version,
        challenger.model_version as challenger_version,
        champion.score as champion_score,
        challenger.score as challenger_score,
        champion.is_flagged as champion_flagged,
        challenger.is_flagged as challenger_flagged,
        labels.transaction_id is not null as is_reported_fraud
    from {predictions} as champion
    inner join {predictions} as challenger
        on champion.transaction_id = challenger.transaction_id
        and challenger.model_role = 'challenger'
    left join {labels} as labels
        on champion.transaction_id = labels.transaction_id
    where champion.model_role = 'champion'
        and champion.prediction_timestamp >= ? and champion.prediction_timestamp < ?
"""

LATENCY_SQL = """
    select model_role, decision_us
    from {predictions}
    where decision_us is not null
        and prediction_timestamp >= ? and prediction_timestamp < ?
"""


def compare(pairs: pd.DataFrame, k: int = DEFAULT_CARD_PRECISION_K) -> dict[str, Any]:
    """The comparison of paired decisions (columns of ``PAIRS_SQL``), card precision@``k``
    per day of ``transaction_at`` with the customer as the card."""
    n = len(pairs)
    out: dict[str, Any] = {"pairs": n}
    if n == 0:
        return out
    champion = pairs["champion_flagged"].astype(bool)
    challenger = pairs["challenger_flagged"].astype(bool)
    fraud = pairs["is_reported_fraud"].astype(bool)
    day = pd.to_datetime(pairs["transaction_at"]).dt.floor("D")
    out["agreement"] = float((champion == challenger).mean())
    out["max_score_difference"] = float(
        (pairs["champion_score"] - pairs["challenger_score"]).abs().max()
    )
    out["card_precision_k"] = k
    per_day: dict[str, dict[str, float]] = {}
    for role, flagged in (("champion", champion), ("challenger", challenger)):
        out[f"{role}_versions"] = sorted({int(v) for v in pairs[f"{role}_version"]})
        out[f"{role}_flag_rate"] = float(flagged.mean())
        out[f"{role}_mean_score"] = float(pairs[f"{role}_score"].mean())
        hits = int((flagged & fraud).sum())
        out[f"{role}_precision"] = hits / int(flagged.sum()) if flagged.any() else None
        out[f"{role}_recall"] = hits / int(fraud.sum()) if fraud.any() else None
        cards = card_precision_at_k(day, pairs["customer_id"], pairs[f"{role}_score"], fraud, k)
        out[f"{role}_card_precision_at_k"] = cards.mean
        for row in cards.per_day.itertuples(index=False):
            per_day.setdefault(str(pd.Timestamp(row.day).date()), {})[role] = float(
                row.card_precision
            )
    out["reported_frauds"] = int(fraud.sum())
    out["card_precision_per_day"] = [{"day": d, **per_day[d]} for d in sorted(per_day)]
    return out


def latency(decisions: pd.DataFrame) -> dict[str, Any]:
    """Per role (columns ``model_role``, ``decision_us``): decisions, p50 and p99 of
    ``decision_us`` by nearest rank (the smallest value at least p% of the decisions do not
    exceed); a role without decisions is left out."""
    out: dict[str, Any] = {}
    for role in ROLES:
        values = decisions.loc[decisions["model_role"] == role, "decision_us"].dropna()
        if values.empty:
            continue
        array = values.to_numpy(dtype="int64")
        out[role] = {
            "decisions": len(array),
            "p50_us": int(np.percentile(array, 50, method="inverted_cdf")),
            "p99_us": int(np.percentile(array, 99, method="inverted_cdf")),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fraud-shadow-report", description=__doc__)
    parser.add_argument("--since", required=True, help="start of the period (ISO, UTC)")
    parser.add_argument("--until", required=True, help="end of the period (ISO, UTC), exclusive")
    parser.add_argument("--target", help="dbt target (default DBT_TARGET or local)")
    parser.add_argument(
        "--k", default=None, help="cards reviewed per day for card precision@k (default 100)"
    )
    args = parser.parse_args(argv)
    from ml.warehouse import WarehouseError, connect

    try:
        since, until = pd.Timestamp(args.since), pd.Timestamp(args.until)
    except ValueError as exc:
        print(f"fraud-shadow-report: --since/--until: {exc}", file=sys.stderr)
        return 2
    try:
        k = card_precision_k({"card_precision_k": args.k})
    except ValueError as exc:
        print(f"fraud-shadow-report: --k: {exc}", file=sys.stderr)
        return 2
    period = [since.to_pydatetime(), until.to_pydatetime()]
    try:
        with connect(args.target, read_only=True) as warehouse:
            predictions = warehouse.relation("audit", "online_predictions")
            sql = PAIRS_SQL.format(
                predictions=predictions, labels=warehouse.relation("silver", "fraud_labels")
            )
            pairs = warehouse.query(sql, period)
            decisions = warehouse.query(LATENCY_SQL.format(predictions=predictions), period)
    except WarehouseError as exc:
        print(f"fraud-shadow-report: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({**compare(pairs, k), "latency": latency(decisions)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
