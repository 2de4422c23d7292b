"""The medallion layers on the committed fixture: what silver rejects, that the
reconciliation test can fail, idempotent rebuilds, late corrections merged in place, masked
emails, the feature table's shape, and clear failures for missing or empty source files.

SQL layers only (no training): each test module builds its own warehouse with dbt.
"""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SMALL_FIXTURE_DIR, DbtProject

from ml.features import FEATURE_COLUMNS

# Every SQL model; tests only when all their parents are selected (not the ML models' tests).
SQL_LAYERS = (
    "+transaction_features",
    "+customer_fraud_labels",
    "+customers_masked",
    "+transactions_cleaned_no_pii",
    "+transactions_rejected",
    "--indirect-selection",
    "cautious",
)


@pytest.fixture(scope="module")
def sql_build(tmp_path_factory: pytest.TempPathFactory) -> DbtProject:
    """bronze → silver → gold on a private copy of the fixture (tests append batches to it)."""
    root = tmp_path_factory.mktemp("pipeline")
    raw = root / "raw"
    shutil.copytree(SMALL_FIXTURE_DIR, raw)
    project = DbtProject(root, {"raw_data_path": str(raw)})
    project.run("build", "--select", *SQL_LAYERS)
    return project


def _manifest_rows(raw: Path) -> collections.Counter[tuple[str, int, str]]:
    manifest = json.loads((raw / "manifest.json").read_text())
    return collections.Counter(
        (row["file"], row["row_number"], row["defect"]) for row in manifest["dirty_rows"]["rows"]
    )


def _content(project: DbtProject, relation: str) -> list[tuple]:
    """Every row of a relation as text, without load metadata (loaded_at is the run's time)."""
    frame = project.query(f"select * from {relation}")
    frame = frame.drop(columns=[c for c in frame.columns if c == "loaded_at"])
    return sorted(map(tuple, frame.astype(str).itertuples(index=False)))


def test_rejected_holds_exactly_the_injected_bad_rows(sql_build: DbtProject) -> None:
    raw = Path(sql_build.vars["raw_data_path"])
    rejected = sql_build.query(
        "select source_file_name, source_row_number, rejection_reasons "
        "from silver.transactions_rejected"
    )
    got = collections.Counter(map(tuple, rejected.itertuples(index=False)))
    expected = _manifest_rows(raw)
    assert got == expected
    by_reason = sql_build.query(
        "select primary_rejection_reason as reason, count(*) as n "
        "from silver.transactions_rejected group by all"
    )
    manifest = json.loads((raw / "manifest.json").read_text())
    assert dict(zip(by_reason.reason, by_reason.n, strict=True)) == {
        defect: n for defect, n in manifest["dirty_rows"]["by_defect"].items() if n
    }


def test_raw_rows_reconcile(sql_build: DbtProject) -> None:
    counts = sql_build.query(
        "select (select count(*) from bronze.transactions_raw) as raw_rows, "
        "(select count(*) from silver.transactions_cleaned) as cleaned, "
        "(select count(*) from silver.transactions_rejected) as rejected"
    ).iloc[0]
    assert counts.raw_rows == counts.cleaned + counts.rejected
    assert counts.rejected > 0


def test_reconciliation_test_fails_when_a_row_goes_missing(
    sql_build: DbtProject, tmp_path: Path
) -> None:
    """Copy the warehouse, delete one cleaned row and one rejected row: the test must fail."""
    broken = DbtProject(tmp_path, dict(sql_build.vars))
    broken.warehouse_dir.mkdir(parents=True)
    shutil.copy(sql_build.warehouse_path, broken.warehouse_path)
    with duckdb.connect(str(broken.warehouse_path)) as con:
        con.execute(
            "delete from silver.transactions_cleaned where transaction_id = "
            "(select min(transaction_id) from silver.transactions_cleaned)"
        )
    select = ["--select", "transactions_cleaned,test_name:raw_rows_reconcile"]
    result = broken.run("test", *select, check=False)
    assert result.returncode != 0
    assert "raw_rows_reconcile" in result.stdout and "FAIL 1" in result.stdout

    with duckdb.connect(str(broken.warehouse_path)) as con:
        con.execute("delete from silver.transactions_rejected where true")
    result = broken.run("test", *select, check=False)
    assert result.returncode != 0


def test_features_one_row_per_valid_customer_with_the_16_columns(sql_build: DbtProject) -> None:
    columns = sql_build.query("select * from gold.transaction_features limit 0").columns
    assert list(columns) == ["customer_id", *FEATURE_COLUMNS]
    check = sql_build.query(
        "select count(*) as n, count(distinct customer_id) as ids, "
        "(select count(distinct customer_id) from silver.transactions_cleaned) as valid "
        "from gold.transaction_features"
    ).iloc[0]
    assert check.n == check.ids == check.valid


def test_customers_masked_shows_no_full_email(sql_build: DbtProject) -> None:
    leaked = sql_build.query(
        "select count(*) as n from silver.customers_masked masked "
        "join silver.customers full_row using (customer_id) "
        "where masked.email = full_row.email or masked.email not like '%***@%'"
    ).n[0]
    assert leaked == 0
    sample = sql_build.query(
        "select masked.email as masked, full_row.email as original "
        "from silver.customers_masked masked join silver.customers full_row using (customer_id) "
        "limit 20"
    )
    for masked, original in sample.itertuples(index=False):
        local, domain = original.split("@", 1)
        assert masked == f"{local[:2]}***@{domain}"


def test_rebuild_on_the_same_data_changes_nothing(sql_build: DbtProject) -> None:
    relations = [
        "silver.transactions_cleaned",
        "silver.transactions_rejected",
        "gold.transaction_features",
        "gold.customer_fraud_labels",
    ]
    before = {relation: _content(sql_build, relation) for relation in relations}
    sql_build.run("build", "--select", *SQL_LAYERS)
    after = {relation: _content(sql_build, relation) for relation in relations}
    assert before == after


def test_late_correction_updates_in_place_and_still_reconciles(sql_build: DbtProject) -> None:
    """A new landing file re-delivers one transaction with a corrected amount and brings one new
    bad row: the cleaned row is updated (not duplicated), the bad row is rejected, the old
    version counts as superseded, and the reconciliation test passes."""
    raw = Path(sql_build.vars["raw_data_path"])
    original = sql_build.query(
        "select * from silver.transactions_cleaned order by transaction_id limit 1"
    )
    transaction_id = original.transaction_id[0]
    source = pq.read_table(raw / "transactions" / "batch_0000.parquet")
    row = source.filter(pa.compute.equal(source["transaction_id"], transaction_id)).slice(0, 1)
    corrected = row.set_column(row.schema.get_field_index("amount"), "amount", pa.array([1234.56]))
    bad = row.set_column(
        row.schema.get_field_index("transaction_id"), "transaction_id", pa.array(["T_BAD_1"])
    )
    bad = bad.set_column(bad.schema.get_field_index("currency"), "currency", pa.array(["ZZZ"]))
    pq.write_table(pa.concat_tables([corrected, bad]), raw / "transactions" / "batch_0001.parquet")
    before = sql_build.query("select count(*) as n from silver.transactions_cleaned").n[0]

    sql_build.run("build", "--select", *SQL_LAYERS)

    updated = sql_build.query(
        "select amount, source_file_name from silver.transactions_cleaned where transaction_id = ?",
        [transaction_id],
    )
    assert len(updated) == 1
    assert float(updated.amount[0]) == pytest.approx(1234.56)
    assert updated.source_file_name[0] == "batch_0001.parquet"
    assert sql_build.query("select count(*) as n from silver.transactions_cleaned").n[0] == before
    new_rejects = sql_build.query(
        "select transaction_id, rejection_reasons from silver.transactions_rejected "
        "where source_file_name = 'batch_0001.parquet'"
    )
    rejected_rows = list(map(tuple, new_rejects.itertuples(index=False)))
    assert rejected_rows == [("T_BAD_1", "unknown_currency")]
    assert sql_build.query("select count(*) as n from bronze.transactions_raw").n[0] == before + (
        sum(_manifest_rows(raw).values()) + 2
    )


def test_missing_source_file_fails_naming_it(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(SMALL_FIXTURE_DIR, raw)
    shutil.rmtree(raw / "merchants")
    project = DbtProject(tmp_path / "dbt", {"raw_data_path": str(raw)})
    result = project.run("run", "--select", "merchants_raw", check=False)
    assert result.returncode != 0
    assert f"{raw}/merchants/*.parquet" in result.stdout


def test_empty_source_file_fails_naming_it(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(SMALL_FIXTURE_DIR, raw)
    path = raw / "customers" / "customers.parquet"
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    project = DbtProject(tmp_path / "dbt", {"raw_data_path": str(raw)})
    result = project.run("run", "--select", "customers_raw", check=False)
    assert result.returncode != 0
    assert "is empty" in result.stdout and "customers" in result.stdout
