"""The transaction classifier through dbt on the committed small fixture: the training model
appends a row (trained and registered, or skipped with its reason), a guard on too few labels
is a clear skipped row, and promotion answers with its gate table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ml import transaction_model as tm

pytestmark = pytest.mark.e2e

SELECT = ("+transaction_classifier_training_runs", "model_promotions")
RUNS = "ml_models.transaction_classifier_training_runs"
PROMOTE = ("--model", tm.SHORT_NAME, "--candidate", "latest")


def test_training_in_dbt_then_a_label_guard_skip(dbt_project_factory) -> None:
    project = dbt_project_factory("tc")
    # cautious: only the tests whose every parent is built (some tests join tables outside)
    project.run("build", "--select", *SELECT, "--indirect-selection", "cautious")
    first = project.query(f"select * from {RUNS}")
    assert len(first) == 1
    row = first.iloc[0]
    assert row["model_name"] == tm.MODEL_NAME
    if row["status"] == "trained":
        client = project.mlflow_client()
        version = client.get_model_version(tm.MODEL_NAME, str(int(row["model_version"])))
        run = client.get_run(version.run_id)
        assert float(run.data.params["decision_threshold"]) == pytest.approx(
            row["decision_threshold"]
        )
        assert row["label_cutoff"] > row["train_end"] > row["validation_start"]
        assert run.data.params["split_cutoff"] == str(row["label_cutoff"])
        promote = subprocess.run(
            [sys.executable, "-m", "ml.promotion.cli", *PROMOTE],
            env=project.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert promote.returncode in (0, 1), promote.stdout + promote.stderr  # 1 = refused
        assert "card_precision_at_k" in promote.stdout
    else:
        assert row["skip_reason"]

    # Too few labels for the settings: a skipped row that names the setting, not a crash.
    project.run(
        "run",
        "--select",
        "transaction_classifier_training_runs",
        vars={"tc_min_fraud_transactions": 10_000_000},
    )
    runs = project.query(f"select * from {RUNS} order by trained_at")
    assert len(runs) == 2
    last = runs.iloc[-1]
    assert last["status"] == "skipped"
    assert "tc_min_fraud_transactions" in last["skip_reason"]
