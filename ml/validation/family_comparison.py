"""``fraud-metrics compare-families``: every model family of the transaction classifier fitted
and measured on the same time split of the built warehouse (README "The transaction
classifier"). Nothing is logged or registered; it reads gold.transaction_risk_features,
silver.fraud_labels and silver.transactions_cleaned through the dbt profile.

    fraud-metrics compare-families                     # all families, text table
    fraud-metrics compare-families --families lightgbm hist_gradient_boosting --format markdown
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from ml.training.transaction_model.params import (
    FAMILIES,
    TransactionClassifierParams,
    card_precision_k,
)
from ml.training.transaction_model.train import compare_families, prepare


def main(argv: Sequence[str] | None = None) -> int:
    from ml import warehouse as wh_mod

    parser = argparse.ArgumentParser(prog="fraud-metrics compare-families")
    parser.add_argument("--target", default=None, help="dbt target (default: the profile's)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--k", default=None, help="cards per day (default 100)")
    parser.add_argument("--format", choices=("text", "markdown"), default="text")
    args = parser.parse_args(argv)
    params = TransactionClassifierParams()
    k = card_precision_k({"card_precision_k": args.k})
    with wh_mod.connected(args.target, read_only=True) as warehouse:
        features = warehouse.query(
            f"select * from {warehouse.relation('gold', 'transaction_risk_features')}"
        )
        labels = warehouse.query(f"select * from {warehouse.relation('silver', 'fraud_labels')}")
        truth = warehouse.query(
            "select transaction_id, is_fraud from "
            f"{warehouse.relation('silver', 'transactions_cleaned')}"
        )
    prepared = prepare(features, labels, truth, params)
    table = compare_families(prepared, params, k, tuple(args.families))
    counts = prepared.frame.groupby("window").agg(
        transactions=("label", "size"), known_labels=("label", "sum"), frauds=("is_fraud", "sum")
    )
    print(f"split: {prepared.split}\n{counts.to_string()}\n")
    cells = table.map(lambda v: f"{v:.4f}" if isinstance(v, float) else str(v))
    if args.format == "markdown":
        lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
        print("\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells.to_numpy()]))
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(cells.to_string(index=False))
    return 0
