"""No train/serve skew: the fixture's transactions and fraud reports, replayed in time order
through the online state (ml.serving.bootstrap.replay, the path requests take), give features
equal to gold.transaction_risk_features row for row (integers, flags and categories exact;
doubles to 1e-9 relative or absolute), and the one-row model path gives the batch pipeline's
probability (1e-9) and reasons for the same model version. Plus hand-computed window edges."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from serving_fixtures import replayed_features, serving_build, serving_env  # noqa: F401

from ml import registry
from ml.serving.model import alias_version, load_model
from ml.serving.online_features import (
    MICROS_PER_DAY,
    History,
    Record,
    Transaction,
    compute_features,
    epoch_micros,
)
from ml.serving.state import REPORT_ACCEPTED, REPORT_DUPLICATE, InMemoryState
from ml.transaction_model import FEATURE_COLUMNS

TOLERANCE = 1e-9
HOUR = 3600 * 1_000_000


@pytest.fixture(scope="module")
def parity(serving_build):  # noqa: F811
    online, _, _ = replayed_features(serving_build, InMemoryState())
    batch = serving_build.query("select * from gold.transaction_risk_features")
    return online, batch.set_index("transaction_id")


def test_features_equal_the_batch_table_row_for_row(parity) -> None:
    online, batch = parity
    assert sorted(online.index) == sorted(batch.index)
    batch = batch.loc[online.index, list(FEATURE_COLUMNS)]
    for column in FEATURE_COLUMNS:
        left, right = online[column], batch[column]
        if right.dtype == object or str(right.dtype) in ("string", "category"):
            mismatch = left.astype(str) != right.astype(str)
        elif right.dtype == bool:
            mismatch = left.astype(bool) != right.astype(bool)
        else:
            mismatch = ~np.isclose(
                left.astype(float), right.astype(float), rtol=TOLERANCE, atol=TOLERANCE
            )
        assert not mismatch.any(), (
            f"{column}: {int(mismatch.sum())} rows differ, e.g. "
            f"{list(zip(left[mismatch][:3], right[mismatch][:3], strict=True))}"
        )
    # the fixture exercises the label-derived and novelty features, not only defaults
    assert (online.merchant_fraud_count_30d > 0).sum() > 100
    assert online.is_new_customer.any() and (~online.is_new_device_30d).any()


def test_scores_and_reasons_equal_gold_transaction_fraud_scores(
    parity,
    serving_build,  # noqa: F811
    serving_env,  # noqa: F811
) -> None:
    """The online decision of each replayed transaction equals its row in the batch table:
    probability to TOLERANCE, flag, and the three reasons word for word (flagged rows by exact
    TreeSHAP, the rest by the path attribution, in both paths)."""
    online, _ = parity
    version = alias_version(registry.CHAMPION_ALIAS)
    assert version is not None
    model = load_model(registry.CHAMPION_ALIAS, version, parity[1].reset_index().iloc[:50])
    gold = serving_build.query(
        "select transaction_id, fraud_probability, is_flagged, reason_1, reason_2, reason_3, "
        "model_version from gold.transaction_fraud_scores"
    ).set_index("transaction_id")
    assert (gold["model_version"] == model.version).all()
    flagged = [t for t in gold.index[gold["is_flagged"]] if t in online.index]
    assert len(flagged) >= 20, "the fixture should flag some transactions"
    ids = list(dict.fromkeys([*online.index[:300], *flagged[:150]]))
    for tid in ids:
        decision = model.decide(online.loc[tid].to_dict())
        row = gold.loc[tid]
        assert abs(decision.fraud_probability - row["fraud_probability"]) <= TOLERANCE, tid
        assert decision.is_flagged == bool(row["is_flagged"]), tid
        assert decision.reasons == [row["reason_1"], row["reason_2"], row["reason_3"]], tid
    # a request's transactions are decided in one model call: each equals its row alone
    rows = [online.loc[tid].to_dict() for tid in ids]
    notes = [("cold start note",) if i % 7 == 0 else () for i in range(len(rows))]
    together = model.decide_many(rows, notes)
    for features, note, decision in zip(rows, notes, together, strict=True):
        alone = model.decide(features, note)
        assert decision.fraud_probability == alone.fraud_probability
        assert (decision.is_flagged, decision.risk_band) == (alone.is_flagged, alone.risk_band)
        assert decision.reasons == alone.reasons
        assert decision.contributions == alone.contributions


def at(text: str) -> int:
    return epoch_micros(datetime.fromisoformat(text))


def txn(when: str, **kw) -> Transaction:
    values = dict(
        transaction_id="t",
        customer_id="C1",
        merchant_id="M1",
        at=at(when),
        cents=10_000,
        currency="EUR",
        transaction_type="purchase",
        merchant_category="grocery",
        device_id="d1",
        ip_address="i1",
    )
    values.update(kw)
    return Transaction(**values)


def test_window_edges_by_hand() -> None:
    t = "2026-10-01 12:00:00"
    history = History(
        customer=(
            Record(at(t) - HOUR, 2_000, "d1", "i1", "M1"),  # exactly 1 h earlier: counts
            Record(at(t) - 10, 3_000, "d2", "i2", "M2"),
            Record(at(t), 5_000, "d3", "i3", "M3"),  # same instant: never counts
        ),
        merchant_transactions=(at(t) - 7 * MICROS_PER_DAY, at(t) - 1, at(t)),
        merchant_labels=(at(t) - 1, at(t)),  # a label known at t does not count yet
        customer_created_day=at("2026-09-01 23:59:00") // MICROS_PER_DAY,
    )
    out = compute_features(txn(t), history)
    assert out["customer_txn_count_1h"] == 2 and out["customer_amount_sum_1h"] == 50.0
    assert out["amount_to_customer_avg_7d"] == 100.0 * 2 / 50.0
    assert out["seconds_since_previous_txn"] == 1  # 11:59:59.99999 → 12:00:00 boundary
    assert out["is_new_device_30d"] is False and out["distinct_devices_1d"] == 2
    assert out["merchant_txn_count_7d"] == 2 and out["merchant_txn_count_1d"] == 1
    assert out["merchant_fraud_count_1d"] == 1 and out["merchant_fraud_rate_1d"] == 1.0
    assert out["customer_tenure_days"] == 30
    assert out["is_new_customer"] is False and out["is_weekend"] is False
    empty = compute_features(txn(t), History(customer_created_day=None))
    assert empty["seconds_since_previous_txn"] == 30 * 86400
    assert empty["amount_to_customer_avg_30d"] == 1.0 and empty["is_new_merchant"] is True


def test_reports_earliest_wins_and_unknown_is_said() -> None:
    state = InMemoryState()
    state.add_transaction(txn("2026-10-01 12:00:00", transaction_id="t1"))
    assert state.add_report("t9", at("2026-10-02 00:00:00")).status == "unknown_transaction_id"
    first = state.add_report("t1", at("2026-10-05 00:00:00"))
    assert first.status == REPORT_ACCEPTED
    assert state.add_report("t1", at("2026-10-06 00:00:00")).status == REPORT_DUPLICATE
    # an earlier report arriving late moves the label; before the transaction → its time
    moved = state.add_report("t1", at("2026-09-30 00:00:00"))
    assert moved.label_known_at == at("2026-10-01 12:00:00")
    assert state.merchant_labels["M1"] == [at("2026-10-01 12:00:00")]
    # a retried transaction id does not count twice
    assert state.add_transaction(txn("2026-10-01 12:00:00", transaction_id="t1")) is False
