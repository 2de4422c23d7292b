"""Request-time transaction features, equal to gold.transaction_risk_features.

The feature of a transaction at time t is a pure function (``compute_features``) of the
transaction and a ``History`` snapshot: the customer's transactions and the merchant's
transactions and known fraud labels of the lookback before t, and the customer's creation
day. Every window is [t - N, t) (``ml.serving.feature_spec``): a transaction exactly N earlier
counts, the current one and any other at exactly t never do (bisect on the timestamp, so the
result does not depend on the order transactions arrived in). A label counts when its
label_known_at (= max(reported_at, transaction_at), earliest report) is < t.

Amounts are integer cents (decimal(18, 2) in silver): window sums are exact, then one
conversion to a double, as the SQL does. Timestamps are integer microseconds since the Unix
epoch, UTC. Tolerance against the batch table: integers and flags exact, doubles to 1e-9
relative (the parity test).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from ml.serving import feature_spec as spec

MICROS_PER_DAY = 86400 * spec.MICROS_PER_SECOND
LOOKBACK_SECONDS = spec.LOOKBACK_DAYS * 86400
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Record(NamedTuple):
    """One transaction of a customer, as the customer's history keeps it."""

    at: int  # microseconds since the epoch, UTC
    cents: int
    device_id: str | None
    ip_address: str | None
    merchant_id: str


@dataclass(frozen=True)
class Transaction:
    """A validated incoming transaction (``ml.serving.requests`` builds it from JSON)."""

    transaction_id: str
    customer_id: str
    merchant_id: str
    at: int
    cents: int
    currency: str
    transaction_type: str
    merchant_category: str
    device_id: str | None
    ip_address: str | None

    def record(self) -> Record:
        return Record(self.at, self.cents, self.device_id, self.ip_address, self.merchant_id)


@dataclass(frozen=True)
class History:
    """What the state knows before t: sorted by time (records by ``at``)."""

    customer: Sequence[Record] = ()
    merchant_transactions: Sequence[int] = ()
    merchant_labels: Sequence[int] = ()
    customer_created_day: int | None = None  # days since the epoch; None = unknown customer
    is_known_merchant: bool = True
    notes: tuple[str, ...] = field(default=())
    # a store that counts in place (RedisState): merchant window name -> (transactions, labels)
    # in [t - N, t); when given, merchant_transactions / merchant_labels are not read
    merchant_counts: Mapping[str, tuple[int, int]] | None = None


def epoch_micros(value: datetime) -> int:
    """Microseconds since the epoch of a timestamp (naive = UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * spec.MICROS_PER_SECOND + delta.microseconds


def _count_between(times: Sequence[int], start: int, end: int) -> int:
    """How many sorted ``times`` lie in [start, end)."""
    return bisect_left(times, end) - bisect_left(times, start)


def _hour_and_weekday(at: int) -> tuple[int, int]:
    seconds = at // spec.MICROS_PER_SECOND
    day, second_of_day = divmod(seconds, 86400)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return second_of_day // 3600, weekday


def compute_features(txn: Transaction, history: History) -> dict[str, float | int | bool | str]:
    """The 38 model inputs of ``txn`` (names and order of ``feature_spec.feature_names()``)."""
    t = txn.at
    amount = txn.cents / 100
    hour, weekday = _hour_and_weekday(t)
    out: dict[str, float | int | bool | str] = {
        "amount": amount,
        "transaction_hour": hour,
        "is_night": hour < spec.NIGHT_BEFORE_HOUR,
        "is_weekend": weekday >= 5,
        "transaction_type": txn.transaction_type,
        "merchant_category": txn.merchant_category,
    }
    records = history.customer
    times = [r.at for r in records]
    end = bisect_left(times, t)  # records before t
    windows: dict[str, tuple[int, int]] = {}
    for window in spec.CUSTOMER_WINDOWS:
        start = bisect_left(times, t - window.micros, 0, end)
        count = end - start
        cents = sum(r.cents for r in records[start:end])
        total = cents / 100
        windows[window.name] = (count, cents)
        out[f"customer_txn_count_{window.name}"] = count
        out[f"customer_amount_sum_{window.name}"] = total
        out[f"customer_amount_avg_{window.name}"] = total / count if count > 0 else 0.0
    for name in spec.RELATIVE_AMOUNT_WINDOWS:
        count, cents = windows[name]
        out[f"amount_to_customer_avg_{name}"] = amount * count / (cents / 100) if count > 0 else 1.0
    lookback_start = bisect_left(times, t - spec.LOOKBACK.micros, 0, end)
    recent = records[lookback_start:end]
    if end > 0:
        # date_diff('second'): whole-second boundaries crossed
        previous = times[end - 1] // spec.MICROS_PER_SECOND
        seconds = min(t // spec.MICROS_PER_SECOND - previous, LOOKBACK_SECONDS)
    else:
        seconds = LOOKBACK_SECONDS
    out["seconds_since_previous_txn"] = seconds
    out["is_new_device_30d"] = all(r.device_id != txn.device_id for r in recent)
    out["is_new_ip_30d"] = all(r.ip_address != txn.ip_address for r in recent)
    out["is_new_merchant_for_customer_30d"] = all(r.merchant_id != txn.merchant_id for r in recent)
    day_start = bisect_left(times, t - spec.DISTINCT_WINDOW.micros, 0, end)
    last_day = records[day_start:end]
    out[f"distinct_devices_{spec.DISTINCT_WINDOW.name}"] = len(
        {r.device_id for r in last_day if r.device_id is not None}
    )
    out[f"distinct_ips_{spec.DISTINCT_WINDOW.name}"] = len(
        {r.ip_address for r in last_day if r.ip_address is not None}
    )
    for window in spec.MERCHANT_WINDOWS:
        if history.merchant_counts is not None:
            n_txn, n_fraud = history.merchant_counts[window.name]
        else:
            start = t - window.micros
            n_txn = _count_between(history.merchant_transactions, start, t)
            n_fraud = _count_between(history.merchant_labels, start, t)
        out[f"merchant_txn_count_{window.name}"] = n_txn
        out[f"merchant_fraud_count_{window.name}"] = n_fraud
        out[f"merchant_fraud_rate_{window.name}"] = n_fraud / n_txn if n_txn > 0 else 0.0
    created = history.customer_created_day
    day_of_t = t // MICROS_PER_DAY
    out["customer_tenure_days"] = max(day_of_t - created, 0) if created is not None else 0
    out["is_new_customer"] = windows[spec.LOOKBACK.name][0] == 0
    out["is_new_merchant"] = out[f"merchant_txn_count_{spec.LOOKBACK.name}"] == 0
    return out


def cold_start_notes(history: History) -> tuple[str, ...]:
    """Reasons to add for documented cold-start defaults (README "Real-time scoring")."""
    notes: list[str] = []
    if history.customer_created_day is None:
        notes.append("unknown customer: no profile, tenure 0 and no history (cold-start defaults)")
    if not history.is_known_merchant:
        notes.append("unknown merchant: no history or fraud rate yet (cold-start defaults)")
    return tuple(notes)
