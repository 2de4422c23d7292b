"""fraud-shadow-report's comparison, card precision@k per day and latency on hand-built
decisions."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.serving.shadow_report import compare, latency


def test_compare_by_hand() -> None:
    pairs = pd.DataFrame(
        {
            "transaction_id": ["a", "b", "c", "d"],
            "customer_id": ["c1", "c2", "c3", "c4"],
            "transaction_at": pd.to_datetime(["2026-01-01 10:00"] * 4),
            "champion_version": [1, 1, 1, 1],
            "challenger_version": [2, 2, 2, 2],
            "champion_score": [0.9, 0.8, 0.1, 0.2],
            "challenger_score": [0.9, 0.3, 0.7, 0.2],
            "champion_flagged": [True, True, False, False],
            "challenger_flagged": [True, False, True, False],
            "is_reported_fraud": [True, False, True, False],
        }
    )
    report = compare(pairs)
    assert report["pairs"] == 4 and report["agreement"] == 0.5
    assert report["champion_flag_rate"] == 0.5 and report["challenger_flag_rate"] == 0.5
    assert report["champion_precision"] == 0.5 and report["challenger_precision"] == 1.0
    assert report["champion_recall"] == 0.5 and report["challenger_recall"] == 1.0
    assert report["max_score_difference"] == pytest.approx(0.6)
    # k = 100 (the default) reviews all four cards of the day: 2 frauds / 4 cards either way
    assert report["card_precision_k"] == 100
    assert report["champion_card_precision_at_k"] == 0.5
    assert report["card_precision_per_day"] == [
        {"day": "2026-01-01", "champion": 0.5, "challenger": 0.5}
    ]
    assert compare(pairs.iloc[:0]) == {"pairs": 0}


# Two days, four cards (customers). Day 1: a c1 fraud, b c2, c c3 fraud; day 2: d c1, e c4
# fraud, f c2. A card reviewed with a fraud is dropped from later days (c1 for the champion,
# c3 for the challenger).
TWO_DAYS = pd.DataFrame(
    {
        "transaction_id": list("abcdef"),
        "customer_id": ["c1", "c2", "c3", "c1", "c4", "c2"],
        "transaction_at": pd.to_datetime(
            [
                *("2026-01-01 09:00", "2026-01-01 12:00", "2026-01-01 23:59"),
                *("2026-01-02 00:00", "2026-01-02 08:00", "2026-01-02 20:00"),
            ]
        ),
        "champion_version": [1] * 6,
        "challenger_version": [2] * 6,
        "champion_score": [0.9, 0.8, 0.1, 0.3, 0.6, 0.2],
        "challenger_score": [0.2, 0.7, 0.95, 0.4, 0.1, 0.9],
        "champion_flagged": [True, True, False, False, True, False],
        "challenger_flagged": [False, True, True, False, False, True],
        "is_reported_fraud": [True, False, True, False, True, False],
    }
)


def test_card_precision_per_day_by_hand() -> None:
    # k = 1. Champion: day 1 reviews c1 (0.9, fraud) = 1; day 2 without c1 reviews c4 (0.6,
    # fraud) = 1. Challenger: day 1 reviews c3 (0.95, fraud) = 1; day 2 without c3 reviews c2
    # (0.9, no fraud) = 0.
    report = compare(TWO_DAYS, k=1)
    assert report["agreement"] == pytest.approx(2 / 6)
    assert report["champion_card_precision_at_k"] == 1.0
    assert report["challenger_card_precision_at_k"] == 0.5
    assert report["card_precision_per_day"] == [
        {"day": "2026-01-01", "champion": 1.0, "challenger": 1.0},
        {"day": "2026-01-02", "champion": 1.0, "challenger": 0.0},
    ]
    # k = 2. Champion: day 1 c1, c2 = 1/2; day 2 c4, c2 = 1/2. Challenger: day 1 c3, c2 =
    # 1/2; day 2 c2 (0.9), c1 (0.4) = 0.
    report = compare(TWO_DAYS, k=2)
    assert report["champion_card_precision_at_k"] == 0.5
    assert report["challenger_card_precision_at_k"] == 0.25
    assert [d["challenger"] for d in report["card_precision_per_day"]] == [0.5, 0.0]


def test_latency_nearest_rank_by_hand() -> None:
    decisions = pd.DataFrame(
        {
            "model_role": ["champion"] * 100 + ["challenger"] * 4,
            # champion 10, 20, ..., 1000 (shuffled); challenger 30, 10, 20 and one unrecorded
            "decision_us": [10 * ((i * 37) % 100 + 1) for i in range(100)] + [30, 10, 20, None],
        }
    )
    report = latency(decisions)
    # p50 of 100 values: the 50th smallest (500); p99: the 99th (990)
    assert report["champion"] == {"decisions": 100, "p50_us": 500, "p99_us": 990}
    # of 3 values: p50 the 2nd smallest (ceil(1.5)), p99 the 3rd (ceil(2.97))
    assert report["challenger"] == {"decisions": 3, "p50_us": 20, "p99_us": 30}
    assert latency(decisions[decisions.model_role == "champion"]).keys() == {"champion"}
