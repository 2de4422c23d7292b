"""``RedisState`` (a real redis-server on loopback, ``redis_process``) behaves as
``InMemoryState``: the fixture's transactions and reports replayed through both give identical
feature rows and report outcomes; a random stream over 200 days (out-of-order times, retries,
reports late, early and duplicated, unknown ids; read-then-add as one call or two) keeps them
identical through pruning and retention, stats included; two clients adding the same
transactions concurrently count each once, and racing reports leave the earliest as the label."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace

import pandas as pd
import pytest
from redis_process import redis_url  # noqa: F401
from serving_fixtures import fixture_events, replayed_features, serving_build  # noqa: F401

from ml.serving.bootstrap import replay, transactions_from_frame
from ml.serving.online_features import MICROS_PER_DAY, Transaction, compute_features
from ml.serving.redis_state import RedisState
from ml.serving.state import REPORT_ACCEPTED, REPORT_DUPLICATE, InMemoryState

START = 1_790_000_000 * 1_000_000  # 2026-09-21, µs
COUNTER = iter(range(1_000_000))


@pytest.fixture
def redis_state(redis_url: str) -> Iterator[RedisState]:  # noqa: F811
    state = RedisState(redis_url, prefix=f"test-{next(COUNTER)}", report_retention_days=40)
    state.clear()
    yield state
    state.clear()
    state.close()


def test_fixture_replay_identical_to_in_memory(serving_build, redis_url) -> None:  # noqa: F811
    memory_rows, memory_outcomes, memory_state = replayed_features(serving_build, InMemoryState())
    state = RedisState(redis_url, prefix="test-fixture-replay")
    state.clear()
    try:
        redis_rows, redis_outcomes, _ = replayed_features(serving_build, state)
        assert len(redis_rows) == len(memory_rows) >= 8000
        pd.testing.assert_frame_equal(redis_rows, memory_rows, check_exact=True)
        assert redis_outcomes == memory_outcomes
        assert {o.status for o in redis_outcomes} >= {REPORT_ACCEPTED, REPORT_DUPLICATE}
        assert state.stats() == memory_state.stats()
    finally:
        state.clear()
        state.close()


def test_batched_bootstrap_replay_identical(serving_build, redis_url) -> None:  # noqa: F811
    """The bootstrap's path (no look between transactions: pipelined batches into Redis) leaves
    the same state: same report outcomes and stats, same features for a transaction of each
    customer and merchant of the last 300 arriving after everything."""
    memory, state = InMemoryState(), RedisState(redis_url, prefix="test-batched")
    state.clear()
    try:
        results = []
        for store in (memory, state):
            transactions, reports = fixture_events(serving_build, store)
            results.append(replay(store, transactions, reports))
        assert results[0] == results[1] and results[0][0] >= 8000
        assert state.stats() == memory.stats()
        last = sorted(transactions_from_frame(transactions), key=lambda t: t.at)[-300:]
        for txn in last:
            probe = replace(txn, transaction_id="probe", at=memory.clock + 1)
            assert compute_features(probe, state.history(probe)) == compute_features(
                probe, memory.history(probe)
            )
    finally:
        state.clear()
        state.close()


def random_stream(seed: int, n: int) -> list[tuple[str, object]]:
    """Transactions over 200 days of few customers/merchants (times up to half a day out of order,
    some retried ids) and reports (by the stream's time: late, dated before the transaction,
    duplicated, unknown ids)."""
    rng = random.Random(seed)
    events: list[tuple[str, object]] = []
    seen: list[tuple[str, int]] = []
    for i in range(n):
        at = START + i * (200 * MICROS_PER_DAY // n) - rng.randrange(0, MICROS_PER_DAY // 2)
        if seen and rng.random() < 0.03:  # a retry: same id, replayed as sent
            events.append(("retry", seen[rng.randrange(len(seen))][0]))
        txn = Transaction(
            transaction_id=f"T{i}",
            customer_id=f"C{rng.randrange(15)}",
            merchant_id=f"M{rng.randrange(6)}",
            at=at - at % 1_000_000 if rng.random() < 0.2 else at,  # equal times happen
            cents=rng.randrange(1, 500_000),
            currency="EUR",
            transaction_type="purchase",
            merchant_category="grocery",
            device_id=rng.choice([None, "d1", "d2", f"d{i}"]),
            ip_address=rng.choice([None, "i1", f"i{i % 7}"]),
        )
        seen.append((txn.transaction_id, txn.at))
        events.append(("txn", txn))
        if rng.random() < 0.15:
            tid, tat = seen[rng.randrange(max(0, len(seen) - 300), len(seen))]
            # reported by now (the service refuses future reports), maybe before the txn
            events.append(("report", (tid, rng.randrange(tat - MICROS_PER_DAY, max(at, tat) + 1))))
        if rng.random() < 0.02:
            events.append(("report", ("NOPE", at)))
    return events


def play(state, events) -> list[object]:
    txns = {e[1].transaction_id: e[1] for e in events if e[0] == "txn"}
    out: list[object] = []
    for kind, value in events:
        if kind == "txn" and len(out) % 2:  # the service's one-trip path
            history, added = state.history_and_add(value)
            out += [compute_features(value, history), added]
        elif kind == "txn":
            out.append(compute_features(value, state.history(value)))
            out.append(state.add_transaction(value))
        elif kind == "retry":
            out.append(state.add_transaction(txns[value]))
        else:
            out.append(state.add_report(*value))
        if len(out) % 500 == 0:
            out.append(state.stats())
    out.append(state.stats())
    return out


def test_random_stream_identical_through_pruning(redis_state: RedisState) -> None:
    events = random_stream(7, 3000)
    memory = InMemoryState(report_retention_days=40)
    expected = play(memory, events)
    got = play(redis_state, events)
    assert len(got) == len(expected)
    for i, (left, right) in enumerate(zip(got, expected, strict=True)):
        assert left == right, (i, left, right)
    # pruning happened (200 days, 30-day lookback, 40-day retention) and both agree on it
    assert 0 < memory.stats()["transactions"] < 3000 * 40 / 200 * 1.2
    assert redis_state.clock == memory.clock


def test_dedupe_is_atomic_across_two_clients(redis_state: RedisState, redis_url) -> None:  # noqa: F811
    other = RedisState(redis_url, prefix=redis_state.prefix, report_retention_days=40)
    txns = [
        Transaction(f"D{i}", "C1", "M1", START + i, 100, "EUR", "purchase", "grocery", "d", "i")
        for i in range(400)
    ]
    results: dict[str, list[bool]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def add(name: str, state: RedisState) -> None:
        barrier.wait()
        results[name] = [state.add_transaction(t) for t in txns]

    threads = [
        threading.Thread(target=add, args=("a", redis_state)),
        threading.Thread(target=add, args=("b", other)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # each id added exactly once, by one client or the other
    assert [a + b for a, b in zip(results["a"], results["b"], strict=True)] == [1] * len(txns)
    assert redis_state.stats()["transactions"] == len(txns)
    probe = Transaction("P", "C1", "M1", START + 10_000, 1, "EUR", "purchase", "grocery", "d", "i")
    features = compute_features(probe, other.history(probe))
    assert features["customer_txn_count_1h"] == len(txns)
    assert features["merchant_txn_count_1d"] == len(txns)
    # racing reports of one transaction: the earliest becomes the label, whoever sent it
    reports = [START + 5 * MICROS_PER_DAY - k for k in range(50)]
    outcomes: dict[str, list] = {}

    def report(name: str, state: RedisState, times: list[int]) -> None:
        outcomes[name] = [state.add_report("D0", r) for r in times]

    threads = [
        threading.Thread(target=report, args=("a", redis_state, reports[0::2])),
        threading.Thread(target=report, args=("b", other, reports[1::2])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = redis_state.add_report("D0", START + 9 * MICROS_PER_DAY)
    assert final.status == REPORT_DUPLICATE and final.label_known_at == min(reports)
    assert redis_state.stats()["labels"] == 1
    other.close()
