"""The delayed label feed (simulator.label_feed): pure functions on a real generated batch."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from simulator import batch as datagen
from simulator import label_feed
from simulator.config import FIXTURE_ARGS, GeneratorConfig

REPORTS = label_feed.REPORT_TYPES
FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "small"


@pytest.fixture(scope="module")
def batch() -> datagen.GeneratedData:
    return datagen.generate(GeneratorConfig(customers=600, transactions=12_000, fraud_rate=0.04))


def _frame(batch: datagen.GeneratedData) -> tuple:
    reports = label_feed.for_batch(batch).to_pandas()
    tx = batch.transactions_table().to_pandas()
    return reports, tx


def test_deterministic_and_independent_of_the_other_streams(
    batch: datagen.GeneratedData,
) -> None:
    assert label_feed.for_batch(batch).equals(label_feed.for_batch(batch))
    again = datagen.generate(batch.config)
    assert again.transactions_table().equals(batch.transactions_table())
    other = GeneratorConfig(customers=600, transactions=12_000, fraud_rate=0.04, seed=43)
    other_seed = datagen.generate(other)
    assert not label_feed.for_batch(other_seed).equals(label_feed.for_batch(batch))


def test_reports_arrive_late_before_the_extract_and_cover_the_fraud(
    batch: datagen.GeneratedData,
) -> None:
    reports, tx = _frame(batch)
    end = np.datetime64(batch.config.end_date.isoformat())
    assert (reports.reported_at.dropna() < end).all()
    joined = reports.merge(tx.drop_duplicates("transaction_id"), on="transaction_id")
    valid = joined[joined.report_type.isin(REPORTS)].dropna(subset=["reported_at"])
    delay_days = (valid.reported_at - valid.transaction_timestamp).dt.total_seconds() / 86_400
    on_time = delay_days[delay_days > 0]
    # days to weeks, by who noticed
    medians = (
        valid[delay_days > 0]
        .groupby("report_type")
        .apply(
            lambda g: (
                (g.reported_at - g.transaction_timestamp).dt.total_seconds() / 86_400
            ).median(),
            include_groups=False,
        )
    )
    assert medians["issuer_alert"] < medians["customer_claim"] < medians["chargeback"]
    assert 0.2 < medians["issuer_alert"] < 3 and 10 < medians["chargeback"] < 40
    assert on_time.max() <= label_feed.MAX_DELAY_DAYS + 1
    # most frauds reported (the newest ones not yet), some false claims on legitimate ones
    fraud_ids = set(tx.transaction_id[tx.is_fraud])
    reported = set(valid.transaction_id)
    assert 0.6 < len(reported & fraud_ids) / len(fraud_ids) < 1.0
    assert reported - fraud_ids
    assert reports.transaction_id.duplicated().any()  # follow-up chargebacks


def test_bad_reports_of_every_kind(batch: datagen.GeneratedData) -> None:
    reports, tx = _frame(batch)
    assert reports.reported_at.isna().sum() >= 1
    assert (~reports.report_type.isin(REPORTS)).sum() >= 1
    unknown = ~reports.transaction_id.isin(tx.transaction_id)
    assert unknown.sum() >= 1 and (reports.transaction_id[unknown].str.len() == 12).all()
    joined = reports.merge(tx.drop_duplicates("transaction_id"), on="transaction_id")
    assert (joined.reported_at < joined.transaction_timestamp).sum() >= 1


def test_committed_fixture_holds_the_feed_of_its_own_transactions() -> None:
    def arg(name: str) -> str:
        return FIXTURE_ARGS[FIXTURE_ARGS.index(name) + 1]

    config = GeneratorConfig(
        customers=int(arg("--customers")),
        transactions=int(arg("--transactions")),
        days=int(arg("--days")),
        fraud_rate=float(arg("--fraud-rate")),
        dirty_rate=float(arg("--dirty-rate")),
        seed=int(arg("--seed")),
        end_date=date(2026, 11, 1),
    )
    committed = pq.read_table(FIXTURE / "fraud_reports" / "batch_0000.parquet")
    assert committed.equals(label_feed.for_batch(datagen.generate(config)))
    assert pc.count(committed.column("transaction_id")).as_py() > 100


def test_the_feed_writes_only_report_types_of_the_reference_seed() -> None:
    """seeds/report_types.csv is what silver accepts: a type the simulator writes but the seed
    lacks would be rejected row by row (and a seed type the simulator never writes is untested)."""
    import csv

    from ml.settings import PROJECT_ROOT

    with open(PROJECT_ROOT / "seeds" / "report_types.csv", newline="") as handle:
        seeded = {row["report_type"] for row in csv.DictReader(handle)}
    assert set(label_feed.REPORT_TYPES) == seeded
