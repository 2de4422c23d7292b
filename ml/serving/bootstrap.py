"""Fill the online state from the warehouse, so the first request after a start sees the
history the batch tables saw: the customers' creation days (silver.customers), the known
merchants (bronze.merchants_raw), the valid transactions (silver.transactions_cleaned) of the
report retention before the newest one, and the reports of those transactions
(silver.fraud_reports_validated, valid or duplicate: the earliest is the label, as in
silver.fraud_labels). ``replay`` applies them in time order: the same path requests take, so
the parity test replays the fixture through it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml.serving.online_features import MICROS_PER_DAY, Transaction
from ml.serving.state import FeatureState, ReportOutcome

TRANSACTION_COLUMNS = (
    "transaction_id, customer_id, merchant_id, transaction_at, amount, currency, "
    "transaction_type, merchant_category, device_id, ip_address"
)


@dataclass(frozen=True)
class BootstrapSummary:
    transactions: int
    reports: int
    customers: int
    merchants: int
    newest_at: int


def micros(series: pd.Series) -> pd.Series:
    """Microseconds since the epoch of a naive-UTC timestamp column."""
    return series.astype("datetime64[us]").astype("int64")


def transactions_from_frame(frame: pd.DataFrame) -> Iterator[Transaction]:
    """``Transaction`` objects from rows shaped like silver.transactions_cleaned."""
    at = micros(frame["transaction_at"]).tolist()
    cents = (frame["amount"].astype("float64") * 100).round().astype("int64").tolist()
    columns = [
        frame[c].tolist()
        for c in (
            "transaction_id",
            "customer_id",
            "merchant_id",
            "currency",
            "transaction_type",
            "merchant_category",
            "device_id",
            "ip_address",
        )
    ]
    for i, (tid, cid, mid, cur, ttype, cat, dev, ip) in enumerate(zip(*columns, strict=True)):
        yield Transaction(
            transaction_id=str(tid),
            customer_id=str(cid),
            merchant_id=str(mid),
            at=int(at[i]),
            cents=int(cents[i]),
            currency=str(cur),
            transaction_type=str(ttype),
            merchant_category=str(cat),
            device_id=None if pd.isna(dev) else str(dev),
            ip_address=None if pd.isna(ip) else str(ip),
        )


def replay(
    state: FeatureState,
    transactions: pd.DataFrame,
    reports: pd.DataFrame,
    before_add: Callable[[Transaction], None] | None = None,
) -> tuple[int, list[ReportOutcome]]:
    """Apply transactions (silver.transactions_cleaned rows) and reports (transaction_id,
    reported_at) in time order; ``before_add(txn)`` runs just before each transaction is
    added (the parity test computes its features there). A report is applied when its label
    becomes known, max(reported_at, transaction_at), after its transaction."""
    txns = sorted(transactions_from_frame(transactions), key=lambda t: t.at)
    report_ids = reports["transaction_id"].astype(str).tolist() if len(reports) else []
    reported = micros(reports["reported_at"]).tolist() if len(reports) else []
    # applied when the label becomes known (never before its transaction is in the state)
    at_of = {t.transaction_id: t.at for t in txns}
    report_at = [max(r, at_of.get(i, r)) for i, r in zip(report_ids, reported, strict=True)]
    order = sorted(range(len(report_at)), key=lambda i: report_at[i])
    outcomes: list[ReportOutcome] = []
    pending: list[Transaction] = []  # added in batches when nothing looks in between
    j = 0
    for txn in txns:
        # reports known by now whose transaction is already in the state
        if j < len(order) and report_at[order[j]] < txn.at:
            state.add_transactions(pending)
            pending = []
        while j < len(order) and report_at[order[j]] < txn.at:
            k = order[j]
            outcomes.append(state.add_report(report_ids[k], reported[k]))
            j += 1
        if before_add is not None:
            before_add(txn)
            state.add_transaction(txn)
        else:
            pending.append(txn)
    state.add_transactions(pending)
    for k in order[j:]:
        outcomes.append(state.add_report(report_ids[k], reported[k]))
    return len(txns), outcomes


def set_reference(state: FeatureState, customers: pd.DataFrame, merchants: pd.DataFrame) -> None:
    """Customer creation days (silver.customers rows) and known merchant ids."""
    created = pd.to_datetime(customers["created_date"]).astype("datetime64[us]").astype("int64")
    days = (created // MICROS_PER_DAY).tolist()
    state.set_customers(zip(customers["customer_id"].astype(str), days, strict=True))
    state.set_merchants(merchants["merchant_id"].astype(str))


def bootstrap(state: FeatureState, warehouse: Any, retention_days: int) -> BootstrapSummary:
    """Load the state from a ``ml.warehouse.Warehouse`` (module docstring)."""
    customers = warehouse.query(
        f"select customer_id, created_date from {warehouse.relation('silver', 'customers')}"
    )
    merchants = warehouse.query(
        f"select distinct merchant_id from {warehouse.relation('bronze', 'merchants_raw')}"
    )
    set_reference(state, customers, merchants)
    cleaned = warehouse.relation("silver", "transactions_cleaned")
    newest = warehouse.query(f"select max(transaction_at) as newest from {cleaned}")["newest"][0]
    if pd.isna(newest):
        return BootstrapSummary(0, 0, len(customers), len(merchants), 0)
    since = pd.Timestamp(newest) - pd.Timedelta(days=retention_days)
    transactions = warehouse.query(
        f"select {TRANSACTION_COLUMNS} from {cleaned} where transaction_at >= ?",
        [since.to_pydatetime()],
    )
    reports = warehouse.query(
        "select reports.transaction_id, reports.reported_at "
        f"from {warehouse.relation('silver', 'fraud_reports_validated')} as reports "
        f"inner join {cleaned} as cleaned on reports.transaction_id = cleaned.transaction_id "
        "where (reports.rejection_reasons is null "
        "or reports.rejection_reasons = 'duplicate_report') and cleaned.transaction_at >= ?",
        [since.to_pydatetime()],
    )
    n, outcomes = replay(state, transactions, reports)
    newest_at = int(micros(pd.Series([pd.Timestamp(newest)]))[0])
    return BootstrapSummary(n, len(outcomes), len(customers), len(merchants), newest_at)
