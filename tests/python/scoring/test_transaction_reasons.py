"""ml.scoring.transaction_reasons: the reason rule on hand-computed rows, the wording table's
coverage, and the batch entry point giving the per-row entry point's words."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.scoring import transaction_reasons as tr
from ml.transaction_model import CATEGORICAL_COLUMNS, FEATURE_COLUMNS, feature_matrix

# A customer with 12 transactions (1,560.00) in the last 30 days: average 130.00, and this
# transaction of 4,950.00 is 4950 / 130 = 38.08 times it.
REGULAR = {
    "amount": 4950.0,
    "transaction_hour": 3,
    "is_night": True,
    "is_weekend": False,
    "transaction_type": "online",
    "merchant_category": "electronics",
    "customer_txn_count_1h": 0,
    "customer_amount_sum_1h": 0.0,
    "customer_amount_avg_1h": 0.0,
    "customer_txn_count_1d": 1,
    "customer_amount_sum_1d": 42.5,
    "customer_amount_avg_1d": 42.5,
    "customer_txn_count_7d": 4,
    "customer_amount_sum_7d": 480.0,
    "customer_amount_avg_7d": 120.0,
    "customer_txn_count_30d": 12,
    "customer_amount_sum_30d": 1560.0,
    "customer_amount_avg_30d": 130.0,
    "amount_to_customer_avg_7d": 4950.0 / 120.0,
    "amount_to_customer_avg_30d": 4950.0 / 130.0,
    "seconds_since_previous_txn": 5400,
    "is_new_device_30d": True,
    "is_new_ip_30d": False,
    "is_new_merchant_for_customer_30d": True,
    "distinct_devices_1d": 1,
    "distinct_ips_1d": 2,
    "merchant_txn_count_1d": 6,
    "merchant_fraud_count_1d": 0,
    "merchant_fraud_rate_1d": 0.0,
    "merchant_txn_count_7d": 40,
    "merchant_fraud_count_7d": 5,
    "merchant_fraud_rate_7d": 5 / 40,
    "merchant_txn_count_30d": 150,
    "merchant_fraud_count_30d": 9,
    "merchant_fraud_rate_30d": 9 / 150,
    "customer_tenure_days": 400,
    "is_new_customer": False,
    "is_new_merchant": False,
}

# No history at all: the documented defaults of gold.transaction_risk_features.
NEW = {
    **{c: 0 for c in FEATURE_COLUMNS},
    "amount": 75.0,
    "transaction_hour": 14,
    "is_night": False,
    "is_weekend": True,
    "transaction_type": "atm_withdrawal",
    "merchant_category": "grocery",
    "amount_to_customer_avg_7d": 1.0,
    "amount_to_customer_avg_30d": 1.0,
    "seconds_since_previous_txn": 30 * 86400,
    "is_new_device_30d": True,
    "is_new_ip_30d": True,
    "is_new_merchant_for_customer_30d": True,
    "is_new_customer": True,
    "is_new_merchant": True,
}


def contributions(**positive: float) -> dict[str, float]:
    out = dict.fromkeys(FEATURE_COLUMNS, -0.01)
    out.update(positive)
    return out


def test_wording_covers_every_feature_with_an_unconditional_last_case() -> None:
    assert set(tr.WORDING) == set(FEATURE_COLUMNS)
    for feature, cases in tr.WORDING.items():
        assert cases and cases[-1].when is None, feature
        for case in cases:
            assert set(case.fields) <= set(FEATURE_COLUMNS), (feature, case.template)


@pytest.mark.parametrize("row", [REGULAR, NEW], ids=["regular", "new"])
def test_every_feature_renders_on_real_rows(row: dict) -> None:
    for feature in FEATURE_COLUMNS:
        text = tr.render(feature, {k: tr._scalar(k, v) for k, v in row.items()})
        assert text and "{" not in text and "nan" not in text, (feature, text)


def test_top_three_positive_in_words_with_the_rows_values() -> None:
    reasons = tr.reasons_for_row(
        REGULAR,
        contributions(amount=1.9, is_new_device_30d=0.8, merchant_fraud_rate_7d=1.2, is_night=0.3),
    )
    assert reasons == [
        "amount 4,950.00 is 38 times this customer's 30-day average of 130.00",
        "merchant's 7-day fraud rate 12% over 40 transactions",
        "first use of this device (not used by this customer in the last 30 days)",
    ]


def test_value_dependent_wording() -> None:
    row = {**REGULAR, "is_new_device_30d": False, "customer_txn_count_1h": 1}
    reasons = tr.reasons_for_row(
        row,
        contributions(
            is_new_device_30d=0.5, customer_txn_count_1h=0.4, seconds_since_previous_txn=0.3
        ),
    )
    assert reasons == [
        "device used by this customer in the last 30 days",
        "1 transaction by this customer in the last hour",
        "1.5 hours since this customer's previous transaction",
    ]


def test_new_customer_gets_defaults_in_words_and_the_note() -> None:
    reasons = tr.reasons_for_row(NEW, contributions(amount_to_customer_avg_30d=0.7))
    assert reasons == [
        "amount 75.00 with no earlier transaction of this customer in 30 days to compare",
        tr.NEW_CUSTOMER_NOTE,
        tr.NEW_MERCHANT_NOTE,
    ]


def test_a_note_is_not_repeated_when_its_feature_is_a_reason() -> None:
    reasons = tr.reasons_for_row(NEW, contributions(is_new_customer=0.9))
    assert reasons == [tr.NEW_CUSTOMER_NOTE, tr.NEW_MERCHANT_NOTE, tr.NO_FURTHER_INDICATOR]


def test_nothing_positive_gives_neutral_reasons_never_null() -> None:
    assert tr.reasons_for_row(REGULAR, contributions()) == [
        tr.NO_RISK_INDICATOR,
        tr.NO_FURTHER_INDICATOR,
        tr.NO_FURTHER_INDICATOR,
    ]
    one = tr.reasons_for_row(REGULAR, contributions(is_weekend=0.2))
    assert one == ["made on a weekday", tr.NO_FURTHER_INDICATOR, tr.NO_FURTHER_INDICATOR]


def test_ties_keep_feature_order_and_nan_or_zero_never_counts() -> None:
    contrib = contributions(customer_tenure_days=0.5, amount=0.5, is_weekend=0.5, is_night=0.5)
    contrib["transaction_hour"] = math.nan
    contrib["merchant_category"] = 0.0
    reasons = tr.reasons_for_row(REGULAR, contrib)
    assert reasons == [
        tr.render("amount", REGULAR),
        "made at night (03:00-03:59 UTC)",
        "made on a weekday",
    ]


def test_formats() -> None:
    assert tr.formatter("duration")(59) == "59 seconds"
    assert tr.formatter("duration")(1) == "1 second"
    assert tr.formatter("duration")(120) == "2 minutes"
    assert tr.formatter("duration")(86400 * 3.5) == "3.5 days"
    assert tr.formatter("percent")(0.004) == "0.4%"
    assert tr.formatter("percent")(0.0) == "0%"
    assert tr.formatter("ratio")(math.inf) == "n/a"
    assert tr.formatter("n:IP address")(2) == "2 IP addresses"
    assert tr.formatter("n:fraud")(1) == "1 fraud"
    assert tr.formatter("money")(1234567.891) == "1,234,567.89"
    with pytest.raises(KeyError, match="unknown reason format"):
        tr.formatter("nope")


def test_missing_inputs_are_named() -> None:
    with pytest.raises(KeyError, match="amount"):
        tr.reasons_for_row({k: v for k, v in REGULAR.items() if k != "amount"}, contributions())
    frame = pd.DataFrame([REGULAR]).drop(columns=["is_night"])
    with pytest.raises(KeyError, match="is_night"):
        tr.reason_columns(frame, pd.DataFrame([contributions()]))
    with pytest.raises(ValueError, match="2 contribution rows for 1 feature rows"):
        tr.reason_columns(pd.DataFrame([REGULAR]), pd.DataFrame([contributions()] * 2))


def _random_rows(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        base = dict(REGULAR if i % 3 else NEW)
        base["amount"] = float(np.round(rng.exponential(200.0), 2))
        base["customer_txn_count_1h"] = int(rng.integers(0, 3))
        base["is_new_ip_30d"] = bool(rng.random() < 0.5)
        base["seconds_since_previous_txn"] = int(rng.integers(0, 30 * 86400 + 1))
        rows.append(base)
    features = pd.DataFrame(rows, index=pd.RangeIndex(100, 100 + n))
    values = rng.normal(-0.2, 0.5, size=(n, len(FEATURE_COLUMNS)))
    values[rng.random(values.shape) < 0.5] = -1.0  # many rows with < 3 positive
    values[: n // 10] = -1.0  # and some with none
    values[n // 10 : n // 5, :4] = 0.25  # exact ties
    contrib = pd.DataFrame(values, columns=list(FEATURE_COLUMNS), index=features.index)
    return features, contrib


def test_batch_equals_per_row_and_is_never_null() -> None:
    features, contrib = _random_rows(600, seed=7)
    batch = tr.reason_columns(features, contrib)
    assert list(batch.columns) == ["reason_1", "reason_2", "reason_3"]
    assert batch.index.equals(features.index)
    assert batch.notna().all().all()
    for i in range(len(features)):
        expected = tr.reasons_for_row(features.iloc[i].to_dict(), contrib.iloc[i].to_dict())
        assert list(batch.iloc[i]) == expected, i


def test_batch_accepts_the_model_matrix_and_shuffled_contribution_columns() -> None:
    features, contrib = _random_rows(60, seed=3)
    matrix = feature_matrix(features)
    assert all(str(matrix[c].dtype) == "category" for c in CATEGORICAL_COLUMNS)
    shuffled = contrib[list(reversed(FEATURE_COLUMNS))]
    assert tr.reason_columns(matrix, shuffled).equals(tr.reason_columns(features, contrib))
    row = tr.reason_columns(
        feature_matrix(pd.DataFrame([NEW])),
        pd.DataFrame([contributions(transaction_type=0.4)]),
    )
    assert row.iloc[0, 0] == "transaction type atm withdrawal"


def test_empty_batch() -> None:
    out = tr.reason_columns(
        pd.DataFrame(columns=list(FEATURE_COLUMNS)), pd.DataFrame(columns=list(FEATURE_COLUMNS))
    )
    assert list(out.columns) == list(tr.REASON_COLUMNS) and len(out) == 0
