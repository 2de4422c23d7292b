"""Tests for the synthetic transaction generator (simulator): real files, no mocks."""

import hashlib
import json
import re
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import PROJECT_ROOT

from simulator import batch, config
from simulator.config import (
    CATEGORIES,
    CURRENCIES,
    DEFECTS,
    FIXTURE_ARGS,
    SCENARIOS,
    TRANSACTION_TYPES,
    GeneratorConfig,
    dirty_split,
)
from simulator.generate import main

REPO = PROJECT_ROOT
FIXTURE_DIR = REPO / "tests" / "fixtures" / "small"
SMALL = [
    "--customers", "300", "--transactions", "6000", "--days", "30",
    "--fraud-rate", "0.05", "--dirty-rate", "0.02", "--seed", "3", "--quiet",
]  # fmt: skip
MODERATE = {
    "customers": 2000,
    "transactions": 60_000,
    "days": 45,
    "fraud_rate": 0.02,
    "dirty_rate": 0.01,
    "seed": 11,
}
END = datetime(2026, 11, 1)


def _args(options: dict, out: Path) -> list[str]:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    return [*args, "--out", str(out), "--quiet"]


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _read_batch(path: Path) -> pd.DataFrame:
    """Rows with DuckDB's file_row_number, exactly as the warehouse reads them."""
    con = duckdb.connect()
    df = con.execute(
        "select * from read_parquet(?, file_row_number = true) order by file_row_number",
        [str(path)],
    ).df()
    con.close()
    return df.set_index("file_row_number")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("moderate")
    assert main(_args(MODERATE, out)) == 0
    return out


@pytest.fixture(scope="module")
def loaded(dataset: Path) -> dict:
    manifest = json.loads((dataset / "manifest.json").read_text())
    tx = _read_batch(dataset / "transactions" / "batch_0000.parquet")
    customers = pq.read_table(dataset / "customers" / "customers.parquet").to_pandas()
    merchants = pq.read_table(dataset / "merchants" / "merchants.parquet").to_pandas()
    dirty = pd.DataFrame(manifest["dirty_rows"]["rows"]).set_index("row_number")
    return {
        "manifest": manifest,
        "tx": tx,
        "clean": tx.drop(index=dirty.index),
        "dirty": dirty,
        "customers": customers,
        "merchants": merchants,
    }


# --------------------------------------------------------------------------- determinism


def test_same_options_give_byte_identical_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*SMALL, "--out", str(a)]) == 0
    assert main([*SMALL, "--out", str(b)]) == 0
    digests = _digests(a)
    assert set(digests) == {
        "customers/customers.parquet",
        "merchants/merchants.parquet",
        "transactions/batch_0000.parquet",
        "fraud_reports/batch_0000.parquet",
        "manifest.json",
    }  # no temp files left behind
    assert digests == _digests(b)
    # a different seed gives different data
    c = tmp_path / "c"
    assert main([*SMALL[:-2], "4", "--quiet", "--out", str(c)]) == 0
    batch = "transactions/batch_0000.parquet"
    assert _digests(c)[batch] != digests[batch]


def test_committed_fixture_matches_regenerated(tmp_path: Path) -> None:
    args = list(FIXTURE_ARGS)
    args[args.index("--out") + 1] = str(tmp_path)
    assert main(args) == 0
    committed = _digests(FIXTURE_DIR)
    assert committed, f"missing fixture {FIXTURE_DIR}; regenerate with python -m simulator"
    assert committed == _digests(tmp_path)
    assert sum(p.stat().st_size for p in FIXTURE_DIR.rglob("*") if p.is_file()) < 1_000_000


def test_api_table_equals_written_file(dataset: Path) -> None:
    data = batch.generate(GeneratorConfig(**MODERATE))
    written = pq.read_table(dataset / "transactions" / "batch_0000.parquet")
    assert data.transactions_table().equals(written)
    assert data.customers.equals(pq.read_table(dataset / "customers" / "customers.parquet"))


# --------------------------------------------------------------------------- schema


def test_schemas_and_formats(dataset: Path, loaded: dict) -> None:
    def schema(name: str) -> pa.Schema:
        return pq.read_schema(next((dataset / name).glob("*.parquet")))

    assert schema("customers").equals(config.CUSTOMERS_SCHEMA)
    assert schema("merchants").equals(config.MERCHANTS_SCHEMA)
    assert schema("transactions").equals(config.TRANSACTIONS_SCHEMA)
    assert [f.type for f in config.TRANSACTIONS_SCHEMA] == [
        pa.string(), pa.string(), pa.string(), pa.timestamp("us"), pa.float64(), pa.string(),
        pa.string(), pa.string(), pa.string(), pa.string(), pa.bool_(),
    ]  # fmt: skip

    cust, merch, clean = loaded["customers"], loaded["merchants"], loaded["clean"]
    n_c = MODERATE["customers"]
    assert len(cust) == n_c and cust.customer_id.is_unique
    assert cust.customer_id.tolist() == [f"C{i:07d}" for i in range(1, n_c + 1)]
    assert cust.email.str.fullmatch(r"[a-z]+\.[a-z]+\d+@[a-z]+\.[a-z]+").all()
    assert cust.email.is_unique
    assert cust.phone.str.fullmatch(r"\+\d{1,2}-\d{3}-\d{3}-\d{4}").all()
    assert cust[["first_name", "last_name", "city", "state"]].notna().all().all()
    assert (cust.country == "US").mean() > 0.8
    created = pd.to_datetime(cust.created_date)
    assert created.min() >= END - timedelta(days=5 * 365)
    assert created.max() <= END - timedelta(days=30)

    assert len(merch) == max(50, n_c // 20) and merch.merchant_id.is_unique
    assert merch.merchant_id.str.fullmatch(r"M\d{6}").all()
    assert set(merch.merchant_category) == set(CATEGORIES)

    assert clean.transaction_id.str.fullmatch(r"T\d{10}").all()
    assert set(clean.transaction_type) == set(TRANSACTION_TYPES)
    assert set(clean.currency) == set(CURRENCIES)
    assert (clean.currency == "USD").mean() > 0.8
    assert clean.ip_address.str.fullmatch(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})").all()
    assert clean.device_id.str.fullmatch(r"dev-[0-9a-f]{12}").all()
    assert (clean.amount > 0).all()
    assert np.allclose(clean.amount * 100, np.round(clean.amount * 100), atol=1e-6)
    start = END - timedelta(days=MODERATE["days"])
    assert clean.transaction_timestamp.min() >= start
    assert clean.transaction_timestamp.max() < END
    assert clean.transaction_timestamp.is_monotonic_increasing
    category = merch.set_index("merchant_id").merchant_category
    assert (clean.merchant_category == clean.merchant_id.map(category)).all()
    # transactions happen after the customer relationship started
    joined = clean.merge(cust[["customer_id", "created_date"]], on="customer_id")
    assert (joined.transaction_timestamp >= pd.to_datetime(joined.created_date)).all()


# --------------------------------------------------------------------------- dirty rows


def _is_valid(df: pd.DataFrame, customers: set[str], merchants: set[str]) -> pd.Series:
    return (
        df.transaction_id.notna()
        & df.customer_id.isin(customers)
        & df.merchant_id.isin(merchants)
        & (df.amount > 0)
        & df.currency.isin(CURRENCIES)
        & (df.transaction_timestamp < END)
    )


def test_dirty_rows_match_manifest(loaded: dict) -> None:
    manifest, tx, dirty, clean = loaded["manifest"], loaded["tx"], loaded["dirty"], loaded["clean"]
    n_dirty = round(MODERATE["dirty_rate"] * MODERATE["transactions"])
    expected = dirty_split(n_dirty)
    assert sum(expected.values()) == n_dirty
    assert max(expected.values()) - min(expected.values()) <= 1
    assert manifest["dirty_rows"]["by_defect"] == expected
    assert manifest["dirty_rows"]["total"] == n_dirty == len(dirty)
    assert dirty.defect.value_counts().to_dict() == {k: v for k, v in expected.items() if v}
    assert len(tx) == MODERATE["transactions"] + n_dirty
    assert manifest["row_counts"]["transactions"] == {"batch_0000.parquet": len(tx)}
    assert (dirty.file == "batch_0000.parquet").all()
    assert dirty.index.is_unique and dirty.index.max() < len(tx)

    customers = set(loaded["customers"].customer_id)
    merchants = set(loaded["merchants"].merchant_id)
    valid = _is_valid(tx, customers, merchants)
    assert valid[clean.index].all(), "a clean row has a defect"
    assert clean.transaction_id.is_unique

    rows = tx.loc[dirty.index]
    assert not rows.is_fraud.any()

    def ids(values: pd.Series) -> list:
        return [None if pd.isna(v) else v for v in values]

    assert ids(rows.transaction_id) == ids(dirty.transaction_id)
    first_pos = {tid: pos for pos, tid in zip(clean.index, clean.transaction_id, strict=True)}
    id_counts = tx.transaction_id.value_counts()
    originals = []
    columns = list(tx.columns)
    for pos, row in rows.iterrows():
        defect = dirty.loc[pos, "defect"]
        tid = row.transaction_id
        checks = {
            "missing_transaction_id": pd.isna(tid),
            "missing_customer_id": pd.isna(row.customer_id),
            "missing_merchant_id": pd.isna(row.merchant_id),
            "non_positive_amount": row.amount <= 0,
            "unknown_currency": row.currency not in CURRENCIES,
            "future_timestamp": row.transaction_timestamp >= END,
            "orphan_customer_id": pd.notna(row.customer_id) and row.customer_id not in customers,
        }
        if defect in ("exact_duplicate", "conflicting_duplicate"):
            orig = first_pos[tid]
            assert orig < pos, "duplicate must come after its original"
            original = tx.loc[orig]
            assert not original.is_fraud
            same = [c for c in columns if original[c] == row[c]]
            if defect == "exact_duplicate":
                assert same == columns
            else:
                assert set(columns) - set(same) == {"amount"} and row.amount > 0
            originals.append(orig)
            assert not any(checks.values()), (pos, defect, checks)
        else:
            assert [k for k, v in checks.items() if v] == [defect], (pos, defect, checks)
            if defect != "missing_transaction_id":  # fresh id, unique in the file
                assert id_counts[tid] == 1
            if defect == "future_timestamp":
                delta = row.transaction_timestamp - END
                assert timedelta(days=1) <= delta <= timedelta(days=401)
            if defect == "orphan_customer_id":
                assert re.fullmatch(r"C9\d{6}", row.customer_id)
            if defect == "non_positive_amount":
                assert np.isclose(row.amount * 100, round(row.amount * 100))
    assert len(set(originals)) == len(originals), "each duplicate copies a distinct clean row"
    assert not set(originals) & set(dirty.index)


# --------------------------------------------------------------------------- fraud


def test_fraud_rate_and_scenarios(loaded: dict) -> None:
    manifest, clean, customers = loaded["manifest"], loaded["clean"], loaded["customers"]
    fraud = manifest["fraud"]
    n_expected = round(MODERATE["customers"] * MODERATE["fraud_rate"])
    assert fraud["customers"] == n_expected
    fraud_customers = set(clean.loc[clean.is_fraud, "customer_id"])
    assert len(fraud_customers) == n_expected
    assert abs(len(fraud_customers) / len(customers) - MODERATE["fraud_rate"]) < 0.005
    assert fraud["transactions"] == int(clean.is_fraud.sum())
    by = fraud["by_scenario"]
    assert set(by) == set(SCENARIOS)
    assert sum(s["customers"] for s in by.values()) == n_expected
    assert sum(s["transactions"] for s in by.values()) == fraud["transactions"]
    for name in SCENARIOS:
        assert by[name]["customers"] > 0 and by[name]["transactions"] >= 2 * by[name]["customers"]
    assert by["card_testing"]["customers"] == by["account_takeover"]["customers"]
    # card testing: 8-30 tiny probes each
    n_ct = by["card_testing"]["customers"]
    probes = int((clean.is_fraud & (clean.amount <= 5)).sum())
    assert 8 * n_ct <= probes <= 30 * n_ct
    # fraudulent customers keep their ordinary (unlabelled) transactions
    of_fraudsters = clean[clean.customer_id.isin(fraud_customers)]
    assert (~of_fraudsters.is_fraud).sum() > of_fraudsters.is_fraud.sum()
    assert fraud["compromised_merchant_ids"][0] in set(loaded["merchants"].merchant_id)
    # not trivially separable: legitimate customers also make tiny and very large purchases
    legit = clean[~clean.customer_id.isin(fraud_customers)]
    per = legit.groupby("customer_id").amount.agg(["min", "max"])
    assert (per["min"] <= 5).sum() >= n_ct
    assert (per["max"] >= 1000).sum() >= by["account_takeover"]["customers"]


def test_transaction_ids_unique(loaded: dict) -> None:
    tx, dirty = loaded["tx"], loaded["dirty"]
    ids = tx.transaction_id.dropna()
    dup_rows = dirty.index[dirty.defect.isin(["exact_duplicate", "conflicting_duplicate"])]
    assert ids.drop(index=dup_rows, errors="ignore").is_unique
    assert ids.str.fullmatch(r"T\d{10}").all()
    assert loaded["manifest"]["next_transaction_number"] > int(ids.str[1:].astype(int).max())


# --------------------------------------------------------------------------- append


def test_append_adds_a_batch(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    assert main([*SMALL, "--out", str(out)]) == 0
    before = _digests(out)
    m0 = json.loads((out / "manifest.json").read_text())
    assert [b["batch_name"] for b in m0["batches"]] == ["batch_0000"]

    # per-batch options: this batch uses the default --fraud-rate 0.01 and --dirty-rate 0.005
    append = ["--append", "--transactions", "3000", "--seed", "3", "--out", str(out), "--quiet"]
    assert main(append) == 0
    after = _digests(out)
    for name, digest in before.items():
        if name != "manifest.json":
            assert after[name] == digest, f"{name} changed"
    assert "transactions/batch_0001.parquet" in after

    m1 = json.loads((out / "manifest.json").read_text())
    assert [b["batch_name"] for b in m1["batches"]] == ["batch_0000", "batch_0001"]
    assert m1["batches"][0] == m0["batches"][0]
    assert m1["options"] == m0["options"]
    b1 = m1["batches"][1]
    assert b1["options"]["transactions"] == 3000 and b1["batch_index"] == 1

    t0 = _read_batch(out / "transactions" / "batch_0000.parquet")
    t1 = _read_batch(out / "transactions" / "batch_0001.parquet")
    assert len(t1) == 3000 + round(0.005 * 3000) == b1["row_counts"]["total"]
    assert not set(t0.transaction_id.dropna()) & set(t1.transaction_id.dropna())
    customers_file = out / "customers" / "customers.parquet"
    customers = set(pq.read_table(customers_file)["customer_id"].to_pylist())
    dirty1 = pd.DataFrame(b1["dirty_rows"]["rows"]).set_index("row_number")
    assert (dirty1.file == "batch_0001.parquet").all()
    clean1 = t1.drop(index=dirty1.index)
    assert set(clean1.customer_id) <= customers and clean1.transaction_id.is_unique
    for pos, defect in dirty1.defect.items():
        row = t1.loc[pos]
        if defect == "missing_customer_id":
            assert pd.isna(row.customer_id)
        if defect == "orphan_customer_id":
            assert row.customer_id not in customers
    # a different stream than batch 0, and new fraud victims
    assert not np.array_equal(t0.amount.to_numpy()[:100], t1.amount.to_numpy()[:100])
    f0 = set(t0.customer_id[t0.is_fraud])
    f1 = set(t1.customer_id[t1.is_fraud])
    assert f1 and not f0 & f1

    # top-level summary covers both batches
    assert m1["row_counts"]["transactions"] == {
        "batch_0000.parquet": len(t0),
        "batch_0001.parquet": len(t1),
    }
    assert m1["row_counts"]["transactions_total"] == len(t0) + len(t1)
    assert m1["fraud"]["customers"] == len(f0 | f1)
    assert m1["fraud"]["transactions"] == int(t0.is_fraud.sum() + t1.is_fraud.sum())
    assert len(m1["dirty_rows"]["rows"]) == m1["dirty_rows"]["total"] == len(t0) + len(t1) - 9000
    for d in DEFECTS:
        assert m1["dirty_rows"]["by_defect"][d] == sum(
            b["dirty_rows"]["by_defect"][d] for b in m1["batches"]
        )
    assert m1["next_transaction_number"] > m0["next_transaction_number"]

    # the same batch name again is refused without touching anything
    snapshot = _digests(out)
    assert main(["--append", "--batch-name", "batch_0001", "--out", str(out), "--quiet"]) == 2
    assert _digests(out) == snapshot


def test_append_needs_an_existing_dataset(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--append", "--out", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert "--append" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()


def test_fresh_run_removes_batches_of_previous_manifest(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    assert main([*SMALL, "--out", str(out)]) == 0
    assert main(["--append", "--transactions", "1000", "--out", str(out), "--quiet"]) == 0
    assert main([*SMALL, "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "transactions").iterdir()) == ["batch_0000.parquet"]
    assert len(json.loads((out / "manifest.json").read_text())["batches"]) == 1


# --------------------------------------------------------------------------- drift


def test_shift_changes_distribution(tmp_path: Path) -> None:
    base_args = ["--customers", "500", "--transactions", "20000", "--seed", "5", "--quiet"]
    assert main([*base_args, "--out", str(tmp_path / "base")]) == 0
    assert main([*base_args, "--shift", "--out", str(tmp_path / "shift")]) == 0

    def stats(folder: Path) -> dict[str, float]:
        df = pq.read_table(folder / "transactions" / "batch_0000.parquet").to_pandas()
        df = df[~df.is_fraud & (df.amount > 0) & (df.transaction_timestamp < END)]
        ts = df.transaction_timestamp
        return {
            "median": df.amount.median(),
            "weekend": (ts.dt.dayofweek >= 5).mean(),
            "night": (ts.dt.hour < 6).mean(),
            "high": (df.amount >= 1000).mean(),
        }

    base, shift = stats(tmp_path / "base"), stats(tmp_path / "shift")
    assert shift["median"] > 2.5 * base["median"]
    assert shift["weekend"] > base["weekend"] + 0.2
    assert shift["night"] > base["night"] + 0.15
    assert shift["high"] > base["high"] + 0.1
    manifest = json.loads((tmp_path / "shift" / "manifest.json").read_text())
    assert manifest["options"]["shift"] is True


def test_end_date_sets_the_window(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    assert main([*SMALL, "--end-date", "2025-03-15", "--out", str(out)]) == 0
    tx = pq.read_table(out / "transactions" / "batch_0000.parquet").to_pandas()
    manifest = json.loads((out / "manifest.json").read_text())
    clean = tx.drop(index=[r["row_number"] for r in manifest["dirty_rows"]["rows"]])
    assert clean.transaction_timestamp.min() >= datetime(2025, 3, 15) - timedelta(days=30)
    assert clean.transaction_timestamp.max() < datetime(2025, 3, 15)
    assert manifest["batches"][0]["window"] == {
        "start": "2025-02-13T00:00:00",
        "end": "2025-03-15T00:00:00",
    }
    assert manifest["options"]["end_date"] == date(2025, 3, 15).isoformat()


# --------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customers", "0"], "--customers must be a positive integer"),
        (["--customers", "9"], "--customers must be >= 10"),
        (["--transactions", "-5"], "--transactions must be a positive integer"),
        (["--days", "0"], "--days must be a positive integer"),
        (["--fraud-rate", "0.6"], "--fraud-rate must be within [0, 0.5]"),
        (["--fraud-rate", "-0.01"], "--fraud-rate must be within [0, 0.5]"),
        (["--dirty-rate", "0.51"], "--dirty-rate must be within [0, 0.5]"),
        (["--dirty-rate", "nan"], "--dirty-rate must be within [0, 0.5]"),
        (["--transactions", "1000"], "too small for 200 fraudulent customers"),
        (["--batch-name", "../evil"], "--batch-name"),
        (["--end-date", "2026-13-01"], "invalid date"),
        (["--customers", "many"], "invalid int value"),
    ],
)
def test_bad_options_exit_2_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main([*args, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unwritable_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for out in (blocker, blocker / "sub"):
        assert main([*SMALL, "--out", str(out)]) == 2
        assert "is not a folder" in capsys.readouterr().err
    assert blocker.read_text() == "not a folder"


def test_module_entry_point_exit_code(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "--customers", "3", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "--customers must be >= 10" in proc.stderr
    assert not out.exists()
