"""``fraud-metrics side-by-side``: the transaction classifier and the seed's customer-level
random forest on the same test transactions, with the same metrics (README "The transaction
classifier").

The test window is the transaction classifier's own (run params ``split_cutoff`` ..
``split_end`` of the selected version). Each test transaction gets (a) the transaction
classifier's fraud probability and (b) its customer's random-forest fraud probability from
gold.transaction_features (one score per customer, as gold.fraud_scores gives it). Both are
measured against the ground truth ``is_fraud`` at their own run's ``decision_threshold``:
precision, recall, F1, AUC-ROC, average precision, card precision@k per day.

    fraud-metrics side-by-side                    # text table
    fraud-metrics side-by-side --format markdown  # for the README

A model with no registered version (its training was skipped, e.g. too few fraudulent
customers at a small data size) is named under the table instead of a row. Exit codes: 0 the
table, 1 an error (registry, warehouse), 3 nothing to compare (the transaction classifier,
whose test window the table uses, has no registered version).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ml import registry
from ml import transaction_model as tm
from ml.training.transaction_model.evaluation import transaction_metrics

COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "model"),
    ("version", "version"),
    ("decision_threshold", "threshold"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("roc_auc", "AUC-ROC"),
    ("average_precision", "avg precision"),
    ("card_precision_at_k", "card precision@k"),
    ("n_test", "test transactions"),
    ("n_fraud_test", "fraudulent"),
)


def compare(
    test: pd.DataFrame,
    scores: Mapping[str, tuple[int, np.ndarray, float]],
    k: int,
) -> pd.DataFrame:
    """One row per model: ``scores`` maps a model label to (version, score per row of
    ``test``, threshold); ``test`` has customer_id, transaction_at, is_fraud."""
    rows = []
    for label, (version, score, threshold) in scores.items():
        metrics, _ = transaction_metrics(test, score, threshold, k)
        rows.append(
            {
                "model": label,
                "version": version,
                **metrics,
                "n_test": len(test),
                "n_fraud_test": int(test["is_fraud"].sum()),
            }
        )
    return pd.DataFrame(rows)


def customer_scores_per_transaction(test: pd.DataFrame, customer_scores: pd.Series) -> np.ndarray:
    """Each transaction's customer score (a customer without one scores 0: never flagged)."""
    mapped = test["customer_id"].astype(str).map(customer_scores)
    return mapped.fillna(0.0).to_numpy(dtype="float64")


def render(table: pd.DataFrame, k: int, fmt: str = "text") -> str:
    titles = [title.replace("@k", f"@{k}") for _, title in COLUMNS]
    cells = [[_cell(row[key]) for key, _ in COLUMNS] for row in table.to_dict(orient="records")]
    if fmt == "markdown":
        lines = ["| " + " | ".join(titles) + " |", "|" + "|".join("---" for _ in titles) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(t), *(len(r[i]) for r in cells)) for i, t in enumerate(titles)]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, float | np.floating):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int | np.integer) else str(value)


# ---------------------------------------------------------------------------------------------
# Reading the registry and the warehouse
# ---------------------------------------------------------------------------------------------


class NothingToCompare(Exception):
    """The transaction classifier has no registered version: there is no test window."""


def not_registered_note(name: str) -> str:
    """The line printed under the table for a model without a registered version."""
    return (
        f"{name}: no registered version (its training was skipped or never ran; the "
        "model's ml_models.*_training_runs row says why): left out of the table"
    )


def _selected(client: Any, name: str, alias: str) -> tuple[int, dict[str, str]] | None:
    selection = registry.ModelSelection(model_names=(name,), alias=alias)
    chosen = registry.select_version(selection, client, fallback_name=name)
    if chosen is None:
        return None
    params = dict(client.get_run(chosen.run_id).data.params) if chosen.run_id else {}
    return chosen.version, params


def load_and_compare(
    warehouse: Any, client: Any, alias: str = registry.CHAMPION_ALIAS, k: int | None = None
) -> tuple[pd.DataFrame, int, list[str]]:
    """The side-by-side table on the selected versions (``alias``, else the latest), k, and
    the names of the models left out for want of a registered version."""
    tc = _selected(client, tm.MODEL_NAME, alias)
    if tc is None:
        raise NothingToCompare(
            f"{tm.MODEL_NAME} has no registered version (its training was skipped or never "
            "ran): no test window to compare on"
        )
    tc_version, tc_params = tc
    k = k or int(tc_params.get("card_precision_k", 100))
    features = warehouse.relation("gold", "transaction_risk_features")
    cleaned = warehouse.relation("silver", "transactions_cleaned")
    test = warehouse.query(
        f"select f.*, c.is_fraud from {features} as f inner join {cleaned} as c "
        "on f.transaction_id = c.transaction_id "
        "where f.transaction_at >= ? and f.transaction_at <= ? "
        "order by f.transaction_at, f.transaction_id",
        [pd.Timestamp(tc_params["split_cutoff"]), pd.Timestamp(tc_params["split_end"])],
    )
    tc_pipeline = registry.load_sklearn_model(tm.MODEL_NAME, tc_version)
    scores = {
        "transaction_classifier": (
            tc_version,
            tm.fraud_probability(tc_pipeline, tm.feature_matrix(test)),
            float(tc_params[tm.THRESHOLD_KEY]),
        )
    }
    missing: list[str] = []
    rf = _selected(client, registry.RANDOM_FOREST_MODEL, alias)
    if rf is None:
        missing.append(registry.RANDOM_FOREST_MODEL)
    else:
        scores["random_forest (customer score)"] = _customer_model_scores(warehouse, test, *rf)
    return compare(test, scores, k), k, missing


def _customer_model_scores(
    warehouse: Any, test: pd.DataFrame, version: int, params: Mapping[str, str]
) -> tuple[int, np.ndarray, float]:
    """The random forest's customer score given to each test transaction."""
    from ml.features import feature_matrix as customer_feature_matrix
    from ml.scores import score_function

    customer_features = warehouse.relation("gold", "transaction_features")
    customers = warehouse.query(f"select * from {customer_features}")
    pipeline = registry.load_sklearn_model(registry.RANDOM_FOREST_MODEL, version)
    per_customer = pd.Series(
        score_function(pipeline)(customer_feature_matrix(customers)),
        index=customers["customer_id"].astype(str),
    )
    threshold = float(params.get("decision_threshold", 0.5))
    return version, customer_scores_per_transaction(test, per_customer), threshold


def main(argv: Sequence[str] | None = None) -> int:
    from mlflow.tracking import MlflowClient

    from ml import warehouse as wh_mod

    parser = argparse.ArgumentParser(
        prog="fraud-metrics side-by-side",
        description="Transaction classifier vs customer-level random forest on the same "
        "test transactions.",
    )
    parser.add_argument("--target", default=None, help="dbt target (default: the profile's)")
    parser.add_argument("--alias", default=registry.CHAMPION_ALIAS)
    parser.add_argument("--k", type=int, default=None, help="cards per day (default: the run's)")
    parser.add_argument("--format", choices=("text", "markdown"), default="text")
    args = parser.parse_args(argv)
    registry.configure()
    try:
        with wh_mod.connected(args.target, read_only=True) as warehouse:
            table, k, missing = load_and_compare(warehouse, MlflowClient(), args.alias, args.k)
    except NothingToCompare as exc:
        print(f"side-by-side: nothing to compare: {exc}", file=sys.stderr)
        return 3
    except (registry.RegistryError, KeyError) as exc:
        print(f"side-by-side: {exc}", file=sys.stderr)
        return 1
    print(render(table, k, args.format))
    for name in missing:
        print(not_registered_note(name))
    return 0
