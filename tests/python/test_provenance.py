"""ml.provenance: the dbt glue (relations as pandas), the clock and the git commit."""

from __future__ import annotations

from datetime import UTC

import duckdb

from ml.provenance import head_commit, recorded_commit, to_pandas, utc_now, utc_now_naive


def test_to_pandas_reads_a_duckdb_relation() -> None:
    con = duckdb.connect()
    relation = con.sql("select 'C1' as customer_id, 12.5::decimal(18, 2) as total_spend")
    out = to_pandas(relation)
    assert out.to_dict("records") == [{"customer_id": "C1", "total_spend": 12.5}]
    assert to_pandas(out) is out


def test_clock_is_utc() -> None:
    assert utc_now().tzinfo is UTC
    assert utc_now_naive().tzinfo is None


def test_recorded_commit_is_head_or_the_configured_value(monkeypatch) -> None:
    monkeypatch.delenv("FRAUD_GIT_COMMIT", raising=False)
    head = head_commit()
    assert recorded_commit().split("+")[0] == head
    monkeypatch.setenv("FRAUD_GIT_COMMIT", "0123abc")
    assert recorded_commit() == "0123abc"
