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


def test_maturity_is_judged_from_the_newest_label_not_the_clock(tmp_path, monkeypatch) -> None:
    """A label feed extracted on 2026-10-31, monitored on 2026-12-02: the days are as mature as
    the time since the feed's newest label. Judged from the clock, 2026-10-25 would count as
    matured and its flag, whose fraud is not reported yet, as a false one."""
    import duckdb

    from ml import warehouse as wh_mod

    monkeypatch.setenv("FRAUD_WAREHOUSE_DIR", str(tmp_path))
    duckdb.connect(str(tmp_path / "fraud.duckdb")).close()  # an empty warehouse file
    scores = pd.concat(
        [
            SCORES,
            pd.DataFrame(
                {
                    "transaction_id": ["t6"],
                    "customer_id": ["e"],
                    "transaction_timestamp": pd.to_datetime(["2026-10-25 08:00"]),
                    "fraud_probability": [0.95],
                    "is_flagged": [True],
                }
            ),
        ],
        ignore_index=True,
    ).assign(model_name="m", model_version=3)
    labels = pd.DataFrame(  # t1 reported 2026-10-05, t5 on 2026-10-31 (the extract's end)
        {
            "transaction_id": ["t1", "t5"],
            "label_known_at": pd.to_datetime(["2026-10-05 00:00", "2026-10-31 12:00"]),
        }
    )
    with wh_mod.connected("local") as wh:
        for schema, name, frame in (
            ("gold", "transaction_fraud_scores", scores),
            ("silver", "fraud_labels", labels),
        ):
            wh.execute(f"create schema if not exists {wh.schema_ref(schema)}")
            wh.connection.register("frame", frame)
            wh.execute(f"create table {wh.relation(schema, name)} as select * from frame")
            wh.connection.unregister("frame")
        out = rz.read_realised(
            wh,
            "m",
            "3",
            window_start=datetime(2026, 11, 2),
            window_end=datetime(2026, 12, 2),
            training={"precision": 0.9},
            maturity_days=14,
        )
    assert out.labels_known_by == datetime(2026, 10, 31, 12)
    daily = out.per_day.set_index("day")
    assert bool(daily.loc[pd.Timestamp("2026-10-01"), "is_matured"])
    assert not daily.loc[pd.Timestamp("2026-10-20") :, "is_matured"].any()
    assert out.matured_precision == pytest.approx(0.5)  # day 1 only: t1 of t1, t2
