"""ml.monitoring.realised: realised precision and card precision@k per day on hand-computed
rows, maturity of days, and the warn-only judgement against the training figures."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from ml.monitoring import realised as rz

# Two days: day 1 has 3 transactions (2 flagged, 1 of them a known fraud), day 2 has 2
# (1 flagged, not a fraud; the other is a fraud the model missed).
SCORES = pd.DataFrame(
    {
        "transaction_id": ["t1", "t2", "t3", "t4", "t5"],
        "customer_id": ["a", "b", "c", "a", "d"],
        "transaction_timestamp": pd.to_datetime(
            [
                "2026-10-01 10:00",
                "2026-10-01 11:00",
                "2026-10-01 12:00",
                "2026-10-20 09:00",
                "2026-10-20 10:00",
            ]
        ),
        "fraud_probability": [0.9, 0.8, 0.1, 0.7, 0.2],
        "is_flagged": [True, True, False, True, False],
    }
)
FRAUDS = {"t1", "t5"}


def test_daily_realised_by_hand() -> None:
    daily = rz.daily_realised(SCORES, FRAUDS, k=1, as_of=datetime(2026, 10, 25), maturity_days=14)
    assert daily["transactions"].tolist() == [3, 2]
    assert daily["flagged"].tolist() == [2, 1]
    assert daily["flagged_fraud"].tolist() == [1, 0]
    assert daily["precision"].tolist() == [0.5, 0.0]
    assert daily["known_frauds"].tolist() == [1, 1]
    # k=1: day 1 reviews card a (0.9, fraud) -> 1.0; day 2 card a was detected, so d (0.2,
    # fraud) beats nothing else -> 1.0
    assert daily["card_precision"].tolist() == [1.0, 1.0]
    # matured: the day ended at least 14 days before 2026-10-25
    assert daily["is_matured"].tolist() == [True, False]


def test_no_flag_gives_null_precision_and_empty_scores_an_empty_table() -> None:
    none = SCORES.assign(is_flagged=False)
    daily = rz.daily_realised(none, FRAUDS, k=2, as_of=datetime(2026, 12, 1), maturity_days=7)
    assert daily["precision"].isna().all()
    empty = rz.daily_realised(SCORES.iloc[:0], FRAUDS, 2, datetime(2026, 12, 1), 7)
    assert empty.empty and "card_precision" in empty.columns


def test_judge_warns_below_the_training_floor_and_skips_without_data() -> None:
    realised = rz.Realised(
        matured_precision=0.5,
        matured_card_precision=0.3,
        training_precision=0.9,
        training_card_precision=0.32,
        k=100,
    )
    checks = {c.name: c for c in rz.judge(realised, max_drop=0.2)}
    assert checks["realised_precision"].status == "warn"  # 0.5 < 0.72
    assert checks["realised_card_precision_at_100"].status == "ok"  # 0.3 >= 0.256
    assert checks["realised_precision"].value == pytest.approx(0.5)
    skipped = rz.judge(rz.Realised(note="labels still arriving"))
    assert {c.status for c in skipped} == {"skipped"}
    assert "labels still arriving" in skipped[0].message
    assert all(c.status != "breach" for c in checks.values())
