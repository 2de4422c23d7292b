"""Online feature state: per customer the transactions of the lookback, per merchant the
transaction times and the times fraud labels became known, the customer profile (creation
day), the known merchants, and per transaction what a late fraud report needs (its merchant and
time). ``InMemoryState`` keeps it in the process (the embedded default, one worker);
``ml.serving.redis_state.RedisState`` implements the same ``FeatureState`` protocol in Redis
for several workers; ``ml.serving.bootstrap`` fills either from the warehouse.

Old entries are pruned: windows older than the lookback (plus ``slack``, for transactions that
arrive out of order) are dropped as the clock (newest event seen) advances; transactions stay
addressable by fraud reports for ``report_retention_days``.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ml.serving import feature_spec as spec
from ml.serving.online_features import MICROS_PER_DAY, History, Record, Transaction

REPORT_ACCEPTED = "accepted"
REPORT_DUPLICATE = "duplicate_report"
REPORT_UNKNOWN_TRANSACTION = "unknown_transaction_id"
DEFAULT_REPORT_RETENTION_DAYS = 120
PRUNE_SLACK_MICROS = MICROS_PER_DAY


@dataclass(frozen=True)
class ReportOutcome:
    status: str  # REPORT_ACCEPTED, REPORT_DUPLICATE or REPORT_UNKNOWN_TRANSACTION
    label_known_at: int | None = None
    merchant_id: str | None = None


class FeatureState(Protocol):
    def history(self, txn: Transaction) -> History: ...

    def add_transaction(self, txn: Transaction) -> bool: ...

    def history_and_add(self, txn: Transaction) -> tuple[History, bool]: ...

    def add_transactions(self, txns: Sequence[Transaction]) -> list[bool]: ...

    def add_report(self, transaction_id: str, reported_at: int) -> ReportOutcome: ...

    def set_customers(self, created_days: Iterable[tuple[str, int]]) -> None: ...

    def set_merchants(self, merchant_ids: Iterable[str]) -> None: ...

    def stats(self) -> dict[str, int]: ...


def label_known_at(reported_at: int, transaction_at: int) -> int:
    """When a report's label became known: never before its transaction (silver.fraud_labels)."""
    return max(reported_at, transaction_at)


class InMemoryState:
    """The embedded state (one process; the event loop is its only writer)."""

    def __init__(self, report_retention_days: int = DEFAULT_REPORT_RETENTION_DAYS) -> None:
        self.customers: dict[str, list[Record]] = {}
        self.merchant_transactions: dict[str, list[int]] = {}
        self.merchant_labels: dict[str, list[int]] = {}
        self.created_days: dict[str, int] = {}
        self.merchants: set[str] = set()
        # transaction_id -> (merchant_id, transaction_at); labels: transaction_id -> known_at
        self.transactions: dict[str, tuple[str, int]] = {}
        self.labels: dict[str, int] = {}
        self.clock = 0
        self.retention_micros = report_retention_days * MICROS_PER_DAY
        self._pruned_at = 0

    # -- reads --------------------------------------------------------------------------------
    def history(self, txn: Transaction) -> History:
        return History(
            customer=self.customers.get(txn.customer_id, ()),
            merchant_transactions=self.merchant_transactions.get(txn.merchant_id, ()),
            merchant_labels=self.merchant_labels.get(txn.merchant_id, ()),
            customer_created_day=self.created_days.get(txn.customer_id),
            is_known_merchant=txn.merchant_id in self.merchants,
        )

    def stats(self) -> dict[str, int]:
        return {
            "customers": len(self.customers),
            "merchants": len(self.merchant_transactions),
            "transactions": len(self.transactions),
            "labels": len(self.labels),
        }

    # -- writes -------------------------------------------------------------------------------
    def set_customers(self, created_days: Iterable[tuple[str, int]]) -> None:
        self.created_days.update(created_days)

    def set_merchants(self, merchant_ids: Iterable[str]) -> None:
        self.merchants.update(merchant_ids)

    def add_transaction(self, txn: Transaction) -> bool:
        """Record a scored transaction; False (nothing changed) when its id was seen before
        (a client's retry must not count twice)."""
        if txn.transaction_id in self.transactions:
            return False
        self.transactions[txn.transaction_id] = (txn.merchant_id, txn.at)
        insort(self.customers.setdefault(txn.customer_id, []), txn.record())
        insort(self.merchant_transactions.setdefault(txn.merchant_id, []), txn.at)
        self._advance(txn.at)
        return True

    def add_transactions(self, txns: Sequence[Transaction]) -> list[bool]:
        """``add_transaction`` of each, in order (the bootstrap's batches)."""
        return [self.add_transaction(txn) for txn in txns]

    def history_and_add(self, txn: Transaction) -> tuple[History, bool]:
        """``history(txn)``, then ``add_transaction(txn)`` (what a scored transaction does). The
        history shares the live lists, which the add changes only at t: outside every window."""
        history = self.history(txn)
        return history, self.add_transaction(txn)

    def add_report(self, transaction_id: str, reported_at: int) -> ReportOutcome:
        """A fraud report: the earliest report of a transaction is its label (a later one is a
        duplicate; an earlier one arriving late moves the label)."""
        known = self.transactions.get(transaction_id)
        if known is None:
            return ReportOutcome(REPORT_UNKNOWN_TRANSACTION)
        merchant_id, transaction_at = known
        at = label_known_at(reported_at, transaction_at)
        previous = self.labels.get(transaction_id)
        times = self.merchant_labels.setdefault(merchant_id, [])
        if previous is not None:
            if previous <= at:
                return ReportOutcome(REPORT_DUPLICATE, previous, merchant_id)
            index = bisect_left(times, previous)
            if index < len(times) and times[index] == previous:
                del times[index]
        self.labels[transaction_id] = at
        insort(times, at)
        self._advance(at)
        return ReportOutcome(REPORT_ACCEPTED, at, merchant_id)

    # -- pruning ------------------------------------------------------------------------------
    def _advance(self, at: int) -> None:
        if at > self.clock:
            self.clock = at
        if self.clock - self._pruned_at >= MICROS_PER_DAY:
            self.prune()

    def prune(self) -> None:
        """Drop window entries older than the lookback (+ slack) and transactions older than
        the report retention."""
        self._pruned_at = self.clock
        horizon = self.clock - spec.LOOKBACK.micros - PRUNE_SLACK_MICROS
        for key, records in list(self.customers.items()):
            if records and records[0].at < horizon:
                keep = records[bisect_left([r.at for r in records], horizon) :]
                if keep:
                    self.customers[key] = keep
                else:
                    del self.customers[key]
        for table in (self.merchant_transactions, self.merchant_labels):
            for key, times in list(table.items()):
                if times and times[0] < horizon:
                    table[key] = times[bisect_left(times, horizon) :]
        retention = self.clock - self.retention_micros
        for txn_id, (_, at) in list(self.transactions.items()):
            if at < retention:
                del self.transactions[txn_id]
                self.labels.pop(txn_id, None)
