"""The one home of the transaction features' windows for the online path.

gold.transaction_risk_features (models/gold/transaction_risk_features.sql) declares the same
windows in its ``customer_windows`` / ``merchant_windows`` / ``lookback_days`` Jinja sets and
lists the model inputs in its YAML ``meta.feature_columns``. ``feature_names()`` generates the
feature list from the windows below; tests/python/serving/test_feature_spec.py reads the SQL
and the YAML and fails when either disagrees with this module (a window changed in one place
only), and the parity test (test_online_parity.py) replays the fixture and compares values.
"""

from __future__ import annotations

from dataclasses import dataclass

MICROS_PER_SECOND = 1_000_000
SECONDS = {"hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Window:
    """One window [t - length, t): its name suffix and its length."""

    name: str
    number: int
    unit: str

    @property
    def micros(self) -> int:
        return self.number * SECONDS[self.unit] * MICROS_PER_SECOND


# = the Jinja sets of models/gold/transaction_risk_features.sql (test_feature_spec.py)
CUSTOMER_WINDOWS: tuple[Window, ...] = (
    Window("1h", 1, "hour"),
    Window("1d", 1, "day"),
    Window("7d", 7, "day"),
    Window("30d", 30, "day"),
)
MERCHANT_WINDOWS: tuple[Window, ...] = (
    Window("1d", 1, "day"),
    Window("7d", 7, "day"),
    Window("30d", 30, "day"),
)
LOOKBACK_DAYS = 30
LOOKBACK = Window(f"{LOOKBACK_DAYS}d", LOOKBACK_DAYS, "day")
# windows of the relative-amount features (amount_to_customer_avg_<name>)
RELATIVE_AMOUNT_WINDOWS: tuple[str, ...] = ("7d", "30d")
# distinct devices / IPs of the customer over this window
DISTINCT_WINDOW = Window("1d", 1, "day")
NIGHT_BEFORE_HOUR = 6  # is_night: hour 0-5 UTC
NOVELTY_FAMILIES: tuple[tuple[str, str], ...] = (
    ("device", "is_new_device_30d"),
    ("ip", "is_new_ip_30d"),
    ("merchant", "is_new_merchant_for_customer_30d"),
)
TRANSACTION_FEATURES: tuple[str, ...] = (
    "amount",
    "transaction_hour",
    "is_night",
    "is_weekend",
    "transaction_type",
    "merchant_category",
)


def feature_names() -> tuple[str, ...]:
    """The model inputs in order, generated from the windows (equal to
    ``ml.transaction_model.FEATURE_COLUMNS`` and the YAML's meta.feature_columns)."""
    names = list(TRANSACTION_FEATURES)
    for window in CUSTOMER_WINDOWS:
        names += [
            f"customer_txn_count_{window.name}",
            f"customer_amount_sum_{window.name}",
            f"customer_amount_avg_{window.name}",
        ]
    names += [f"amount_to_customer_avg_{name}" for name in RELATIVE_AMOUNT_WINDOWS]
    names.append("seconds_since_previous_txn")
    names += [feature for _, feature in NOVELTY_FAMILIES]
    names += [f"distinct_devices_{DISTINCT_WINDOW.name}", f"distinct_ips_{DISTINCT_WINDOW.name}"]
    for window in MERCHANT_WINDOWS:
        names += [
            f"merchant_txn_count_{window.name}",
            f"merchant_fraud_count_{window.name}",
            f"merchant_fraud_rate_{window.name}",
        ]
    names += ["customer_tenure_days", "is_new_customer", "is_new_merchant"]
    return tuple(names)
