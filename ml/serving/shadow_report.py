"""``fraud-shadow-report``: champion against shadow challenger over a period, from
audit.online_predictions (the landed decision log) and silver.fraud_labels: decisions paired by
transaction, agreement of the flags, each role's flag rate and mean score, and, for the
transactions whose label is known by now, each role's precision (flagged and reported) and
recall. Card precision@k per day and latency are not computed yet (README)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd

PAIRS_SQL = """
    select
        champion.transaction_id,
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


def compare(pairs: pd.DataFrame) -> dict[str, Any]:
    """The comparison of paired decisions (columns of ``PAIRS_SQL``)."""
    n = len(pairs)
    out: dict[str, Any] = {"pairs": n}
    if n == 0:
        return out
    champion = pairs["champion_flagged"].astype(bool)
    challenger = pairs["challenger_flagged"].astype(bool)
    fraud = pairs["is_reported_fraud"].astype(bool)
    out["agreement"] = float((champion == challenger).mean())
    out["max_score_difference"] = float(
        (pairs["champion_score"] - pairs["challenger_score"]).abs().max()
    )
    for role, flagged in (("champion", champion), ("challenger", challenger)):
        out[f"{role}_versions"] = sorted({int(v) for v in pairs[f"{role}_version"]})
        out[f"{role}_flag_rate"] = float(flagged.mean())
        out[f"{role}_mean_score"] = float(pairs[f"{role}_score"].mean())
        hits = int((flagged & fraud).sum())
        out[f"{role}_precision"] = hits / int(flagged.sum()) if flagged.any() else None
        out[f"{role}_recall"] = hits / int(fraud.sum()) if fraud.any() else None
    out["reported_frauds"] = int(fraud.sum())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fraud-shadow-report", description=__doc__)
    parser.add_argument("--since", required=True, help="start of the period (ISO, UTC)")
    parser.add_argument("--until", required=True, help="end of the period (ISO, UTC), exclusive")
    parser.add_argument("--target", help="dbt target (default DBT_TARGET or local)")
    args = parser.parse_args(argv)
    from ml.warehouse import WarehouseError, connect

    try:
        since, until = pd.Timestamp(args.since), pd.Timestamp(args.until)
    except ValueError as exc:
        print(f"fraud-shadow-report: --since/--until: {exc}", file=sys.stderr)
        return 2
    try:
        with connect(args.target, read_only=True) as warehouse:
            sql = PAIRS_SQL.format(
                predictions=warehouse.relation("audit", "online_predictions"),
                labels=warehouse.relation("silver", "fraud_labels"),
            )
            pairs = warehouse.query(sql, [since.to_pydatetime(), until.to_pydatetime()])
    except WarehouseError as exc:
        print(f"fraud-shadow-report: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(compare(pairs), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
