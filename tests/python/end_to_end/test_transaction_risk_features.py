"""gold.transaction_risk_features and the label feed on a real DuckDB warehouse.

* the hand-written reference query over the Parquet files gives the same table;
* point in time: changing or deleting later transactions and labels leaves every earlier
  transaction's features unchanged;
* incremental builds over several time-ordered batches equal one full refresh;
* every fraud report is either a label or rejected with its reason; label_delay mode and its
  validated setting.
"""

from __future__ import annotations

import shutil
import string
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import PROJECT_ROOT, SMALL_FIXTURE_DIR, DbtProject

from simulator.label_feed import BAD_KINDS

REFERENCE_SQL = PROJECT_ROOT / "tests" / "reference" / "transaction_risk_features_reference.sql"
AS_OF_DATE = "2026-11-01"
# the features with everything they read, and the rejected tables (reconciliation tests)
SELECT_FEATURES = "+transaction_risk_features load_log transactions_rejected fraud_reports_rejected"
# models and the reference seeds they join, without tests (dbt run would skip the seeds)
RUN = ("build", "--resource-type", "model", "--resource-type", "seed")
KEYS = ["transaction_id"]


def reference_features(raw: Path, as_of: str = AS_OF_DATE) -> pd.DataFrame:
    """Run the hand-written reference query on the landing files in ``raw``."""
    sql = string.Template(REFERENCE_SQL.read_text()).substitute(raw=str(raw), as_of=as_of)
    with duckdb.connect() as con:
        return con.execute(sql).df()


def features(project: DbtProject) -> pd.DataFrame:
    frame = project.query("select * from gold.transaction_risk_features")
    return frame.sort_values(KEYS).reset_index(drop=True)


def assert_same_features(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal row for row and column for column (floats to 1e-9 relative)."""
    actual = actual.sort_values(KEYS).reset_index(drop=True)
    expected = expected.sort_values(KEYS).reset_index(drop=True)[list(actual.columns)]
    assert len(actual) == len(expected)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, rtol=1e-9, atol=1e-9)


def copy_fixture(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(SMALL_FIXTURE_DIR, raw)
    return raw


@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    project = DbtProject(tmp_path_factory.mktemp("risk_features"))
    project.run("build", "--select", *SELECT_FEATURES.split(), "--exclude", "transaction_features+")
    return project


def test_one_row_per_valid_transaction_and_no_nulls(fixture_build: DbtProject) -> None:
    table = features(fixture_build)
    cleaned = fixture_build.query("select transaction_id from silver.transactions_cleaned")
    assert sorted(table.transaction_id) == sorted(cleaned.transaction_id)
    assert not table.isna().any().any()
    # the defaults and flags are there on the fixture, not only in the unit test
    assert table.is_new_customer.any() and table.is_new_merchant.any()
    assert (table.merchant_fraud_count_30d > 0).any()


def test_reference_query_equals_the_table(fixture_build: DbtProject) -> None:
    table = features(fixture_build).drop(columns=["loaded_at"])
    assert_same_features(table, reference_features(SMALL_FIXTURE_DIR))


def test_every_report_is_a_label_or_rejected_with_its_reason(fixture_build: DbtProject) -> None:
    raw = pq.read_table(SMALL_FIXTURE_DIR / "fraud_reports").num_rows
    counts = fixture_build.query(
        "select (select count(*) from silver.fraud_labels) as labels,"
        " (select count(*) from silver.fraud_reports_rejected) as rejected"
    )
    assert counts.labels[0] + counts.rejected[0] == raw
    reasons = set(
        fixture_build.query(
            "select primary_rejection_reason from silver.fraud_reports_rejected"
        ).primary_rejection_reason
    )
    # the feed's bad reports: unknown id, missing time, unknown type; follow-ups are duplicates
    assert {"unknown_transaction_id", "missing_reported_at", "unknown_report_type"} <= reasons
    assert "duplicate_report" in reasons
    assert "reported_before_transaction" in BAD_KINDS
    early = fixture_build.query(
        "select * from silver.fraud_labels where is_reported_before_transaction"
    )
    assert len(early) >= 1
    assert (early.label_known_at == early.transaction_at).all()
    assert (early.reported_at < early.transaction_at).all()


def _perturb_after(raw: Path, cut: pd.Timestamp, seed: int) -> None:
    """Delete or change transactions after ``cut`` and fraud reports received after it."""
    rng = np.random.default_rng(seed)
    path = next((raw / "transactions").glob("*.parquet"))
    table = pq.read_table(path)
    frame = table.to_pandas()
    later = (frame.transaction_timestamp > cut).to_numpy()
    drop = later & (rng.random(len(frame)) < 0.3)
    change = later & ~drop & (rng.random(len(frame)) < 0.5)
    frame.loc[change, "amount"] = frame.loc[change, "amount"] * 3 + 1
    frame.loc[change, "device_id"] = "dev-changed"
    frame.loc[change, "merchant_id"] = frame.merchant_id.dropna().iloc[0]
    frame = frame[~drop]
    pq.write_table(pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False), path)

    reports_path = next((raw / "fraud_reports").glob("*.parquet"))
    reports = pq.read_table(reports_path)
    at = reports.column("reported_at")
    later_report = pc.fill_null(pc.greater(at, pa.scalar(cut.to_pydatetime(), at.type)), False)
    keep = pc.or_(pc.invert(later_report), pa.array(rng.random(reports.num_rows) < 0.5))
    shifted = pc.if_else(later_report, pc.add(at, pa.scalar(pd.Timedelta(days=3))), at)
    reports = reports.set_column(1, "reported_at", shifted).filter(keep)
    pq.write_table(reports, reports_path)


@pytest.mark.parametrize("cut", ["2026-09-20 12:00:00", "2026-10-15 00:00:00"])
def test_later_transactions_and_labels_never_change_earlier_features(
    fixture_build: DbtProject, tmp_path: Path, cut: str
) -> None:
    raw = copy_fixture(tmp_path)
    cut_at = pd.Timestamp(cut)
    _perturb_after(raw, cut_at, seed=len(cut))
    changed = DbtProject(tmp_path / "dbt", {"raw_data_path": str(raw)})
    changed.run(*RUN, "--select", *SELECT_FEATURES.split(), "--exclude", "transaction_features+")
    before = features(fixture_build).drop(columns=["loaded_at"])
    after = features(changed).drop(columns=["loaded_at"])
    earlier = before[before.transaction_at <= cut_at]
    assert len(earlier) > 1000
    assert_same_features(after[after.transaction_at <= cut_at], earlier)
    # the perturbation did reach the later rows (the test can fail)
    later_before = before[before.transaction_at > cut_at].set_index("transaction_id")
    later_after = after[after.transaction_at > cut_at].set_index("transaction_id")
    assert len(later_after) < len(later_before)
    common = later_after.index.intersection(later_before.index)
    assert not later_after.loc[common].equals(later_before.loc[common])


def _in_range(col: pa.ChunkedArray, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> pa.Array:
    """lo <= col < hi (open ends when None); nulls go to the last range."""
    mask = pa.array(np.ones(len(col), dtype=bool))
    if lo is not None:
        mask = pc.and_(mask, pc.greater_equal(col, pa.scalar(lo.to_pydatetime(), col.type)))
    if hi is not None:
        mask = pc.and_(mask, pc.less(col, pa.scalar(hi.to_pydatetime(), col.type)))
    return pc.fill_null(mask, hi is None)


def _write_batches(source: Path, raw: Path, cuts: list[pd.Timestamp]) -> list[Callable[[], None]]:
    """Steps that deliver the fixture in time-ordered batches: transactions before each cut
    (the last batch also gets the rest) and the reports received by then."""
    for sub in ("customers", "merchants"):
        shutil.copytree(source / sub, raw / sub)
    tx = pq.read_table(next((source / "transactions").glob("*.parquet")))
    reports = pq.read_table(next((source / "fraud_reports").glob("*.parquet")))
    tx_at = tx.column("transaction_timestamp")
    rep_at = reports.column("reported_at")
    bounds = [None, *cuts, None]
    steps = []
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]

        def step(i: int = i, lo: pd.Timestamp | None = lo, hi: pd.Timestamp | None = hi) -> None:
            deliveries = (("transactions", tx, tx_at), ("fraud_reports", reports, rep_at))
            for sub, table, col in deliveries:
                (raw / sub).mkdir(parents=True, exist_ok=True)
                part = table.filter(_in_range(col, lo, hi))
                pq.write_table(part, raw / sub / f"batch_{i:04d}.parquet")

        steps.append(step)
    return steps


def test_incremental_batches_equal_one_full_refresh(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    cuts = [pd.Timestamp("2026-09-25"), pd.Timestamp("2026-10-10"), pd.Timestamp("2026-10-22")]
    project = DbtProject(tmp_path / "dbt", {"raw_data_path": str(raw)})
    sizes = []
    for step in _write_batches(SMALL_FIXTURE_DIR, raw, cuts):
        step()
        project.run(
            *RUN, "--select", *SELECT_FEATURES.split(), "--exclude", "transaction_features+"
        )
        sizes.append(len(features(project)))
    incremental = features(project)
    # each run added only its batch (one load batch per run)
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes) == len(cuts) + 1
    assert incremental.loaded_at.nunique() == len(cuts) + 1
    project.run(*RUN, "--select", "transaction_risk_features", "--full-refresh")
    assert_same_features(features(project), incremental)
    assert_same_features(incremental.drop(columns=["loaded_at"]), reference_features(raw))


def test_label_delay_mode_for_data_without_a_report_feed(tmp_path: Path) -> None:
    raw = copy_fixture(tmp_path)
    shutil.rmtree(raw / "fraud_reports")  # no feed at all: the source is not read
    project = DbtProject(
        tmp_path / "dbt",
        {"raw_data_path": str(raw), "label_source": "label_delay", "label_delay_days": 2.5},
    )
    project.run(*RUN, "--select", "+transaction_risk_features", "+fraud_reports_rejected")
    labels = project.query("select * from silver.fraud_labels")
    fraud = project.query("select transaction_id from silver.transactions_cleaned where is_fraud")
    assert sorted(labels.transaction_id) == sorted(fraud.transaction_id)
    assert (labels.label_known_at - labels.transaction_at == pd.Timedelta(hours=60)).all()
    assert (labels.report_type == "label_delay").all()
    assert project.query("select count(*) as n from bronze.fraud_reports_raw").n[0] == 0
    assert project.query("select count(*) as n from silver.fraud_reports_rejected").n[0] == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [("label_delay_days", "7; drop table x"), ("label_delay_days", -1), ("label_source", "nope")],
)
def test_label_settings_are_validated_values(tmp_path: Path, setting: str, value: object) -> None:
    project = DbtProject(tmp_path / "dbt", {"label_source": "label_delay", setting: value})
    result = project.run("compile", "--select", "fraud_labels", check=False)
    assert result.returncode != 0
    assert f"var {setting} must be" in result.stdout


def test_missing_and_empty_report_feed_fail_naming_it(tmp_path: Path) -> None:
    raw = copy_fixture(tmp_path)
    path = raw / "fraud_reports" / "batch_0000.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    project = DbtProject(tmp_path / "dbt", {"raw_data_path": str(raw)})
    result = project.run("run", "--select", "fraud_reports_raw", check=False)
    assert result.returncode != 0
    assert "is empty" in result.stdout and "fraud_reports" in result.stdout
    shutil.rmtree(raw / "fraud_reports")
    result = project.run("run", "--select", "fraud_reports_raw", check=False)
    assert result.returncode != 0
    assert f"{raw}/fraud_reports/*.parquet" in result.stdout
