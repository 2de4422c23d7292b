"""Validation of request bodies: a JSON value in, a typed ``Transaction`` / ``FraudReport`` out,
or ``RequestError`` naming the field and what is wrong (the service answers 422 with it).

The rules are the batch validation's (models/silver/transactions_validated.sql) where they
apply to one row: ids present, amount a finite number > 0 that fits decimal(18, 2) (and at most
``Limits.max_amount``), currency / transaction type / merchant category from the seeds, a
parseable timestamp; plus what only a live service needs: no unknown fields, and a timestamp
neither far in the future (``max_future_seconds`` past the wall clock) nor older than the
state can feature correctly (``max_past_seconds`` before the newest transaction the state has
seen: the windows of older ones were pruned).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache
from typing import Any

from ml.serving.online_features import Transaction, epoch_micros
from ml.transaction_model import SEEDS_DIR, categories

TRANSACTION_FIELDS: tuple[str, ...] = (
    "transaction_id",
    "customer_id",
    "merchant_id",
    "transaction_timestamp",
    "amount",
    "currency",
    "transaction_type",
    "merchant_category",
    "device_id",
    "ip_address",
)
OPTIONAL_FIELDS = frozenset({"device_id", "ip_address"})  # present, may be null
REPORT_FIELDS: tuple[str, ...] = ("transaction_id", "reported_at", "report_type")
# = simulator/label_feed.py REPORT_TYPES and models/silver/fraud_reports_validated.sql
REPORT_TYPES: tuple[str, ...] = ("issuer_alert", "customer_claim", "chargeback")
MAX_ID_LENGTH = 128
DECIMAL_18_2_MAX = Decimal("9999999999999999.99")
CENT = Decimal("0.01")


class RequestError(ValueError):
    """A rejected body: ``field`` (or ``"body"``) and the reason, for a 4xx answer."""

    def __init__(self, field: str, message: str, index: int | None = None) -> None:
        self.field = field
        self.message = message
        self.index = index
        where = field if index is None else f"[{index}].{field}"
        super().__init__(f"{where}: {message}")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "error": self.message}
        if self.index is not None:
            out["index"] = self.index
        return out


@dataclass(frozen=True)
class Limits:
    """Validated settings of what a request may contain (``ml.serving.config``)."""

    max_amount: float = 1_000_000.0
    max_future_seconds: int = 300
    max_past_seconds: int = 86400
    max_batch: int = 1000


@dataclass(frozen=True)
class FraudReport:
    transaction_id: str
    reported_at: int  # microseconds since the epoch, UTC
    report_type: str


@cache
def currencies() -> frozenset[str]:
    with (SEEDS_DIR / "accepted_currencies.csv").open(newline="") as handle:
        return frozenset(row["currency_code"].strip() for row in csv.DictReader(handle))


def _object(value: Any, allowed: tuple[str, ...], optional: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError("body", f"expected a JSON object, got {type(value).__name__}")
    extra = sorted(set(value) - set(allowed))
    if extra:
        raise RequestError(extra[0], f"unexpected field (allowed: {', '.join(allowed)})")
    missing = [f for f in allowed if f not in value and f not in optional]
    if missing:
        raise RequestError(missing[0], "missing required field")
    return value


def _identifier(body: dict[str, Any], name: str, nullable: bool = False) -> str | None:
    value = body.get(name)
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise RequestError(name, f"expected a string, got {type(value).__name__}")
    value = value.strip()
    if not value:
        raise RequestError(name, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise RequestError(name, f"longer than {MAX_ID_LENGTH} characters")
    return value


def _timestamp(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, str):
        raise RequestError(name, f"expected an ISO 8601 string, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(name, f"not an ISO 8601 timestamp: {value[:40]!r}") from None
    return epoch_micros(parsed)


def _cents(body: dict[str, Any], limits: Limits) -> int:
    value = body.get("amount")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError("amount", f"expected a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise RequestError("amount", "must be finite (not NaN or infinity)")
    if value <= 0:
        raise RequestError("amount", "must be greater than 0")
    if value > limits.max_amount:
        raise RequestError("amount", f"above the maximum {limits.max_amount:,.2f}")
    try:
        amount = Decimal(repr(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise RequestError("amount", "does not fit decimal(18, 2)") from None
    if amount > DECIMAL_18_2_MAX or amount <= 0:
        raise RequestError("amount", "does not fit decimal(18, 2) or rounds to 0")
    return int(amount * 100)


def _member(body: dict[str, Any], name: str, allowed: frozenset[str] | tuple[str, ...]) -> str:
    value = _identifier(body, name)
    assert value is not None
    if value not in allowed:
        raise RequestError(name, f"unknown value {value[:40]!r}")
    return value


def parse_transaction(
    value: Any, limits: Limits, now: int, clock: int, index: int | None = None
) -> Transaction:
    """A ``Transaction`` from one JSON object; ``now``: wall clock, ``clock``: the newest
    transaction the state has seen (both microseconds since the epoch)."""
    try:
        body = _object(value, TRANSACTION_FIELDS, OPTIONAL_FIELDS)
        at = _timestamp(body, "transaction_timestamp")
        if at > now + limits.max_future_seconds * 1_000_000:
            raise RequestError(
                "transaction_timestamp",
                f"more than {limits.max_future_seconds} s in the future",
            )
        if clock and at < clock - limits.max_past_seconds * 1_000_000:
            raise RequestError(
                "transaction_timestamp",
                f"more than {limits.max_past_seconds} s before the newest transaction seen "
                "(its feature windows are no longer kept)",
            )
        transaction_id = _identifier(body, "transaction_id")
        customer_id = _identifier(body, "customer_id")
        merchant_id = _identifier(body, "merchant_id")
        assert transaction_id and customer_id and merchant_id
        return Transaction(
            transaction_id=transaction_id,
            customer_id=customer_id,
            merchant_id=merchant_id,
            at=at,
            cents=_cents(body, limits),
            currency=_member(body, "currency", currencies()),
            transaction_type=_member(body, "transaction_type", categories("transaction_type")),
            merchant_category=_member(body, "merchant_category", categories("merchant_category")),
            device_id=_identifier(body, "device_id", nullable=True),
            ip_address=_identifier(body, "ip_address", nullable=True),
        )
    except RequestError as exc:
        if index is not None:
            raise RequestError(exc.field, exc.message, index) from None
        raise


def parse_report(value: Any, limits: Limits, now: int) -> FraudReport:
    body = _object(value, REPORT_FIELDS, frozenset())
    transaction_id = _identifier(body, "transaction_id")
    assert transaction_id is not None
    reported_at = _timestamp(body, "reported_at")
    if reported_at > now + limits.max_future_seconds * 1_000_000:
        raise RequestError("reported_at", f"more than {limits.max_future_seconds} s in the future")
    return FraudReport(transaction_id, reported_at, _member(body, "report_type", REPORT_TYPES))
