"""fraud-metrics side-by-side: both models on the same rows with the same metrics; each
transaction carries its customer's score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.validation.side_by_side import compare, customer_scores_per_transaction, render


def test_customer_score_is_given_to_each_of_its_transactions() -> None:
    test = pd.DataFrame({"customer_id": ["A", "B", "A", "Z"]})
    scores = pd.Series({"A": 0.9, "B": 0.1})
    assert customer_scores_per_transaction(test, scores).tolist() == [0.9, 0.1, 0.9, 0.0]


def test_both_models_are_measured_on_the_same_rows() -> None:
    test = pd.DataFrame(
        {
            "customer_id": ["A", "A", "B", "C"],
            "transaction_at": pd.to_datetime(["2026-01-01"] * 2 + ["2026-01-02"] * 2),
            "is_fraud": [True, False, False, True],
        }
    )
    exact = np.array([0.9, 0.1, 0.2, 0.8])  # separates the frauds
    customer = customer_scores_per_transaction(test, pd.Series({"A": 0.7, "B": 0.3, "C": 0.6}))
    table = compare(test, {"tx": (1, exact, 0.5), "customer": (2, customer, 0.5)}, k=1)
    tx, cust = table.iloc[0], table.iloc[1]
    assert tx["precision"] == 1.0 and tx["recall"] == 1.0 and tx["roc_auc"] == 1.0
    # the customer score flags A's legitimate transaction too: 2 of 3 flags are frauds
    assert cust["precision"] == pytest.approx(2 / 3) and cust["recall"] == 1.0
    assert tx["card_precision_at_k"] == 1.0 and cust["card_precision_at_k"] == 1.0
    assert (table["n_test"] == 4).all() and (table["n_fraud_test"] == 2).all()
    assert "card precision@1" in render(table, 1, "markdown")


def test_an_empty_registry_is_nothing_to_compare_not_a_crash(fresh_mlflow_dir) -> None:
    """At a data size where every supervised training is skipped there is no test window:
    the command says so (exit 3, tolerated by ``make run``) instead of failing the job."""
    from mlflow.tracking import MlflowClient

    from ml import registry
    from ml.validation.side_by_side import NothingToCompare, load_and_compare

    registry.configure()
    with pytest.raises(NothingToCompare, match="no test window"):
        load_and_compare(warehouse=None, client=MlflowClient())


def test_a_model_without_version_is_named_under_the_table() -> None:
    from ml import registry
    from ml.validation.side_by_side import not_registered_note

    note = not_registered_note(registry.RANDOM_FOREST_MODEL)
    assert note.startswith(f"{registry.RANDOM_FOREST_MODEL}: no registered version")
    assert "left out of the table" in note
