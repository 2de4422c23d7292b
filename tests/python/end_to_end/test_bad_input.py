"""Hostile input never wedges, bypasses or silently shrinks the pipeline (issue 11).

A property-based test (hypothesis) appends batches to a private copy of the committed fixture,
mixing every kind of bad row (inf / NaN / text amounts, $0, text and year-1900 timestamps, a
type, category or currency outside the reference seeds, a label that is not a boolean) with
good rows, and now and then a bad file (a 0-row file, a same-name file with new content, a file
missing a required column, a file that is not Parquet). After every build it asserts:

- the build succeeded, or (bad file) failed naming the file and the missing column, with no
  table written; once the file is removed the next build succeeds (nothing wedged);
- every bad row is in silver.transactions_rejected with exactly its reason, every good row in
  silver.transactions_cleaned; raw rows = cleaned + rejected + superseded (none lost);
- every file is in bronze.load_log (0-row files included; a redelivery as `redelivered`);
- a rerun changes nothing.

At the end it prints the table the issue asks for (kinds of bad input, rows injected, rows
rejected with their reason, rows lost, builds wedged). A separate test builds the SQL layers
with a production as_of_date (2018-08-01), unit tests included.

    .venv/bin/pytest tests/python/test_bad_input.py
"""

from __future__ import annotations

import collections
import itertools
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SMALL_FIXTURE_DIR, DbtProject, lost_transaction_rows
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

SQL_LAYERS = (
    "+transaction_features",
    "+customer_fraud_labels",
    "+transactions_rejected",
    "load_log",
    "--indirect-selection",
    "cautious",
)

# kind of bad row -> (column, delivered value, the one reason silver must give)
BAD_ROWS: dict[str, tuple[str, str, str]] = {
    "inf amount": ("amount", "inf", "non_finite_amount"),
    "-inf amount": ("amount", "-Infinity", "non_finite_amount"),
    "NaN amount": ("amount", "NaN", "non_finite_amount"),
    "text amount": ("amount", "twelve dollars", "unparseable_amount"),
    "amount beyond decimal(18, 2)": ("amount", "1e30", "unparseable_amount"),
    "$0 authorisation": ("amount", "0.00", "non_positive_amount"),
    "text timestamp": ("transaction_timestamp", "yesterday", "unparseable_timestamp"),
    "year-1900 timestamp": (
        "transaction_timestamp",
        "1900-01-01 12:00:00",
        "implausible_timestamp",
    ),
    "year-1 timestamp": ("transaction_timestamp", "0001-01-01 00:00:00", "implausible_timestamp"),
    "type outside the seed": ("transaction_type", "refund", "unknown_transaction_type"),
    "category outside the seed": ("merchant_category", "casino", "unknown_merchant_category"),
    "currency outside the seed": ("currency", "BTC", "unknown_currency"),
    "label not a boolean": ("is_fraud", "maybe", "unparseable_is_fraud"),
}
BAD_FILES = ("0-row file", "same name, new content", "missing required column", "not Parquet")
REQUIRED_COLUMN = "amount"


@dataclass
class Tally:
    injected: int = 0
    rejected_with_reason: int = 0
    lost: int = 0
    wedged: int = 0


@dataclass
class Run:
    """One warehouse on a private copy of the fixture; batches are appended to it."""

    project: DbtProject
    raw: Path
    template: pd.DataFrame
    ids: Iterator[int] = field(default_factory=lambda: itertools.count())
    batches: list[str] = field(default_factory=list)
    tallies: dict[str, Tally] = field(default_factory=lambda: collections.defaultdict(Tally))

    def build(self, check: bool = True) -> object:
        return self.project.run("build", "--select", *SQL_LAYERS, check=check)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        return self.project.query(sql, params)


def _valid_template(raw: Path) -> pd.DataFrame:
    """Rows of the fixture that pass validation (no injected defect, unique id), as text."""
    manifest = json.loads((raw / "manifest.json").read_text())
    dirty = manifest["dirty_rows"]["rows"]
    dirty_rows = {row["row_number"] for row in dirty}
    dirty_ids = {row["transaction_id"] for row in dirty}
    frame = pq.read_table(raw / "transactions" / "batch_0000.parquet").to_pandas()
    frame = frame[~frame.index.isin(dirty_rows) & ~frame.transaction_id.isin(dirty_ids)]
    frame = frame.head(200).copy()
    frame["transaction_timestamp"] = frame.transaction_timestamp.dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["amount"] = frame.amount.map(lambda value: f"{value:.2f}")
    frame["is_fraud"] = frame.is_fraud.map(lambda value: "true" if value else "false")
    return frame.reset_index(drop=True).astype(str)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Run:
    root = tmp_path_factory.mktemp("bad_input")
    raw = root / "raw"
    shutil.copytree(SMALL_FIXTURE_DIR, raw)
    state = Run(DbtProject(root, {"raw_data_path": str(raw)}), raw, _valid_template(raw))
    state.build()
    yield state
    _print_table(request, state.tallies)


def _print_table(request: pytest.FixtureRequest, tallies: dict[str, Tally]) -> None:
    if not tallies:
        return
    header = ("kind of bad input", "rows injected", "rejected with reason", "rows lost", "wedged")
    rows = [
        (kind, t.injected, t.rejected_with_reason, t.lost, t.wedged)
        for kind, t in sorted(tallies.items())
    ]
    totals = [sum(row[i] for row in rows) for i in range(1, 5)]
    rows.append(("total", *totals))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(5)]
    lines = [
        " | ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row))
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    lines.append(
        "(bad files: 'rejected with reason' = the build refused them naming the file and column,"
        " or bronze.load_log recorded them; rows lost and wedged builds are asserted 0)"
    )
    text = "\n".join(["", "", "Bad input tried (tests/python/test_bad_input.py):", *lines, ""])
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(text)


def _write(path: Path, frame: pd.DataFrame, drop: str | None = None) -> None:
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    if drop:
        table = table.drop_columns([drop])
    pq.write_table(table, path)


def _snapshot(state: Run) -> dict[str, list[tuple]]:
    relations = {
        "bronze.transactions_raw": "source_file_name, source_row_number, loaded_at",
        "bronze.load_log": "file_name, loaded_at",
        "silver.transactions_cleaned": "transaction_id",
        "silver.transactions_rejected": "rejection_id",
        "gold.transaction_features": "customer_id",
    }
    return {
        relation: list(
            map(tuple, state.query(f"select * from {relation} order by {order}").astype(str).values)
        )
        for relation, order in relations.items()
    }


rows_strategy = st.lists(st.sampled_from(sorted(BAD_ROWS)), min_size=1, max_size=8)
file_strategy = st.one_of(st.none(), st.sampled_from(BAD_FILES))


@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(bad_rows=sorted(BAD_ROWS), bad_file=None, good_rows=5)
@example(
    bad_rows=["inf amount", "type outside the seed"], bad_file="same name, new content", good_rows=3
)
@example(bad_rows=["NaN amount"], bad_file="0-row file", good_rows=2)
@example(bad_rows=["text amount"], bad_file="missing required column", good_rows=2)
@example(bad_rows=["year-1900 timestamp"], bad_file="not Parquet", good_rows=2)
@given(bad_rows=rows_strategy, bad_file=file_strategy, good_rows=st.integers(0, 5))
def test_bad_rows_and_files_never_wedge_or_drop(
    run: Run, bad_rows: list[str], bad_file: str | None, good_rows: int
) -> None:
    state = run
    batch_number = len(state.batches) + 1
    name = f"batch_{batch_number:04d}.parquet"
    frame = state.template.sample(
        len(bad_rows) + good_rows, replace=True, random_state=batch_number
    )
    frame = frame.reset_index(drop=True)
    frame["transaction_id"] = [f"T_H{next(state.ids):07d}" for _ in range(len(frame))]
    expected: dict[str, tuple[str, str]] = {}  # transaction_id -> (kind, reason)
    for row, kind in enumerate(bad_rows):
        column, value, reason = BAD_ROWS[kind]
        frame.loc[row, column] = value
        expected[frame.transaction_id[row]] = (kind, reason)
    good_ids = list(frame.transaction_id[len(bad_rows) :])
    _write(state.raw / "transactions" / name, frame)
    state.batches.append(name)

    bad_path: Path | None = None
    redelivered: str | None = None
    if bad_file == "0-row file":
        bad_path = state.raw / "transactions" / f"empty_{batch_number:04d}.parquet"
        _write(bad_path, frame.head(0))
    elif bad_file == "same name, new content" and len(state.batches) > 1:
        # the previous batch again, same name: one good row gets a corrected amount
        redelivered = state.batches[-2]
        old = pq.read_table(state.raw / "transactions" / redelivered).to_pandas()
        corrected_id = old.transaction_id.iloc[-1]
        old.loc[old.index[-1], "amount"] = "4321.00"
        old.loc[old.index[-1], "transaction_type"] = "online"
        old.loc[old.index[-1], "currency"] = "USD"
        old.loc[old.index[-1], "transaction_timestamp"] = "2026-10-01 12:00:00"
        old.loc[old.index[-1], "merchant_category"] = "grocery"
        old.loc[old.index[-1], "is_fraud"] = "false"
        _write(state.raw / "transactions" / redelivered, old)
    elif bad_file == "missing required column":
        bad_path = state.raw / "transactions" / f"broken_{batch_number:04d}.parquet"
        _write(bad_path, frame.head(1), drop=REQUIRED_COLUMN)
    elif bad_file == "not Parquet":
        bad_path = state.raw / "transactions" / f"garbage_{batch_number:04d}.parquet"
        bad_path.write_bytes(b"this is not a parquet file\n")

    file_kind = bad_file
    if bad_file in ("missing required column", "not Parquet"):
        assert bad_path is not None
        before = _snapshot(state)
        result = state.build(check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, "a build with a bad file must fail"
        assert str(bad_path) in output, f"the error must name the file:\n{output[-3000:]}"
        if bad_file == "missing required column":
            assert f"lacks required column(s) {REQUIRED_COLUMN}" in output
        assert _snapshot(state) == before, "a failed load must not write any table"
        bad_path.unlink()
        state.tallies[bad_file].injected += 1
        state.tallies[bad_file].rejected_with_reason += 1  # refused with a message naming it
        file_kind = None
    result = state.build(check=False)
    if result.returncode != 0:
        for kind in [*bad_rows, *([bad_file] if bad_file else [])]:
            state.tallies[kind].wedged += 1
        pytest.fail("build wedged:\n" + (result.stdout + result.stderr)[-6000:])

    rejected = state.query(
        "select transaction_id, rejection_reasons from silver.transactions_rejected "
        "where source_file_name = ?",
        [name],
    )
    got = dict(zip(rejected.transaction_id, rejected.rejection_reasons, strict=True))
    lost = lost_transaction_rows(state)
    cleaned = set(
        state.query("select transaction_id from silver.transactions_cleaned").transaction_id
    )
    for transaction_id, (kind, reason) in expected.items():
        state.tallies[kind].injected += 1
        if got.get(transaction_id) == reason:
            state.tallies[kind].rejected_with_reason += 1
        elif transaction_id not in got and transaction_id not in cleaned:
            state.tallies[kind].lost += 1
    assert {tid: got.get(tid) for tid in expected} == {t: r for t, (_, r) in expected.items()}
    assert set(good_ids) <= cleaned
    assert lost == 0
    logged = state.query("select file_name, row_count, rows_loaded, status from bronze.load_log")
    assert name in set(logged.file_name)
    if file_kind == "0-row file":
        assert bad_path is not None
        entry = logged[logged.file_name == bad_path.name]
        assert list(entry.row_count) == [0] and list(entry.status) == ["empty"]
        state.tallies[bad_file].injected += 1
        state.tallies[bad_file].rejected_with_reason += 1  # logged, nothing to load
    if file_kind == "same name, new content" and redelivered:
        entries = logged[logged.file_name == redelivered]
        assert list(entries.status)[-1:] == ["redelivered"] and len(entries) >= 2
        amount = state.query(
            "select amount, source_file_name from silver.transactions_cleaned "
            "where transaction_id = ?",
            [corrected_id],
        )
        assert float(amount.amount[0]) == pytest.approx(4321.00), "the redelivery must supersede"
        state.tallies[bad_file].injected += 1
        state.tallies[bad_file].rejected_with_reason += 1  # loaded as a new delivery, logged

    before = _snapshot(state)
    state.build()
    assert _snapshot(state) == before, "a rerun must change nothing"


def test_production_as_of_date_builds_with_every_test_passing(tmp_path: Path) -> None:
    """--vars '{as_of_date: "2018-08-01"}': unit tests pin their vars, so they pass for any date;
    the fixture's 2026 rows are all rejected as future_timestamp, and every data test passes."""
    project = DbtProject(tmp_path, {"as_of_date": "2018-08-01"})
    project.run("build", "--select", *SQL_LAYERS)
    reasons = project.query(
        "select distinct primary_rejection_reason as reason from silver.transactions_rejected"
    )
    assert "future_timestamp" in set(reasons.reason)
