"""bench's transaction-level parts on tiny data: the hand-written query of
gold.transaction_risk_features equals the table dbt built (and the comparison catches a changed
value), the targets are in targets.yml, scoring with reason codes is measured on a LightGBM
pipeline fitted here (tiny data trains no registered transaction classifier)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest

from bench import harness
from bench.targets import load_targets
from bench.workers_transactions import TX_FEATURES_TABLE, compare_with_table, measure_tx_scoring

TINY = ["--transactions", "3000", "--customers", "120", "--days", "30"]


def test_transaction_targets_are_data() -> None:
    specs = load_targets()
    assert {"tx_features_ratio", "tx_incremental_share", "tx_scoring_rate"} <= set(specs)
    assert specs["tx_features_ratio"].maximum == 3
    assert specs["tx_incremental_share"].maximum == 0.10
    assert specs["tx_scoring_rate"].minimum == 200_000
    # judged only at 10M where the issue sets them (ratio, +1 %); the rate at every size
    assert specs["tx_features_ratio"].judge(2.0, "", "", at_large=False).met is None
    assert specs["tx_features_ratio"].judge(3.5, "", "", at_large=True).met is False
    assert specs["tx_scoring_rate"].judge(250_000, "", "", at_large=False).met is True
    assert {"tx_limit", "tx_scoring"} <= set(harness.PARTS)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    out = tmp_path_factory.mktemp("bench_tx") / "out"
    assert harness.main([*TINY, "--parts", "tx_limit,tx_scoring", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    yield out, results
    shutil.rmtree(out / "work", ignore_errors=True)


@pytest.mark.e2e
def test_reference_query_equals_the_table_dbt_built(tiny_run: tuple[Path, dict]) -> None:
    _, results = tiny_run
    assert results["status"] == "ok"
    tx = results["details"]["tx_limit"]
    assert tx["rows"] > 1000
    assert tx["rows"] == tx["table_rows"] == tx["matched_rows"]
    assert tx["columns_compared"] >= 40 and not tx["columns_missing_from_query"]
    assert tx["equal_to_table"], (
        tx["per_column_max_relative_difference"],
        tx["per_column_rows_different"],
    )
    assert tx["max_relative_difference"] <= 1e-9
    assert tx["query_seconds"] > 0 and tx["dbt_wall_seconds"] > tx["query_seconds"]
    names = {t["name"]: t for t in results["targets"]}
    ratio = names["transaction features within 3x of one hand-written query"]
    assert ratio["met"] is None  # set at 10M
    assert "query equal to the table: True" in ratio["limited_by"]
    # tiny data registers no transaction classifier: said, not a crash
    scoring = [r for r in results["rows"] if r["part"] == "tx_scoring"]
    assert scoring and "no registered version" in scoring[0]["note"]


@pytest.mark.e2e
def test_the_comparison_catches_a_changed_value(
    tiny_run: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = tiny_run
    work = out / "work"
    warehouse = tmp_path / "changed.duckdb"
    shutil.copy2(work / "warehouse-tx" / "fraud.duckdb", warehouse)
    with duckdb.connect(str(warehouse)) as con:
        first = con.execute(f"select min(transaction_id) from {TX_FEATURES_TABLE}").fetchall()
        con.execute(
            f"update {TX_FEATURES_TABLE} set customer_amount_sum_7d = customer_amount_sum_7d + 1,"
            " transaction_type = 'changed' where transaction_id = ?",
            [first[0][0]],
        )
    with duckdb.connect(str(work / "tx_limit.duckdb"), read_only=True) as con:
        con.execute(f"attach '{warehouse}' as wh (read_only)")
        result = compare_with_table(con, "tx_limit", f"wh.{TX_FEATURES_TABLE}")
    assert not result["equal_to_table"]
    assert result["per_column_max_relative_difference"]["customer_amount_sum_7d"] > 1e-9
    assert result["per_column_rows_different"]["transaction_type"] == 1
    assert result["matched_rows"] == result["table_rows"]


@pytest.mark.e2e
def test_scoring_with_reasons_is_measured(tiny_run: tuple[Path, dict]) -> None:
    from ml.training.transaction_model.families import fit_pipeline
    from ml.training.transaction_model.params import TransactionClassifierParams
    from ml.transaction_model import feature_matrix

    out, _ = tiny_run
    with duckdb.connect(str(out / "work" / "warehouse-tx" / "fraud.duckdb"), read_only=True) as con:
        frame = con.execute(
            f"select f.*, t.is_fraud from {TX_FEATURES_TABLE} as f "
            "inner join silver.transactions_cleaned as t using (transaction_id)"
        ).df()
    labels = frame.pop("is_fraud").to_numpy(dtype=int)
    assert 0 < labels.sum() < len(labels)
    params = TransactionClassifierParams(n_estimators=20, min_child_samples=5, n_jobs=1)
    pipeline = fit_pipeline(params, feature_matrix(frame), labels)
    result = measure_tx_scoring(pipeline, frame, 1, "fitted in the test")
    assert result["classifier"] == "LGBMClassifier"
    assert result["rows"] == len(frame) == result["reason_rows"]
    assert result["reasons_non_null"]
    steps = ("encode", "scores", "transform", "kernel", "reasons", "reference_predict")
    for step in (*steps, "reference_contributions"):
        assert result[f"{step}_seconds"] > 0
    total = result["scores_seconds"] + result["reasons_seconds"]
    assert np.isclose(result["seconds"], total)
    assert np.isclose(result["rows_per_s"], len(frame) / total)
    reference = (
        result["reference_predict_seconds"]
        + result["reference_contributions_seconds"]
        + result["reasons_seconds"]
    )
    assert np.isclose(result["reference_rows_per_s"], len(frame) / reference)
    # the compiled path gives the reference's numbers
    assert result["same_flags"]
    assert result["max_probability_difference"] <= 1e-9
    assert result["max_contribution_difference"] <= 1e-9
