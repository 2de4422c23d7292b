"""The delayed label feed: fraud reports as a bank's investigators receive them.

``fraud_reports`` turns one generated transactions batch into the landing table
``fraud_reports/<batch-name>.parquet`` (transaction_id, reported_at, report_type). It is a pure
function of the batch's coded columns and the seed, drawn from its own RNG stream
(``SeedSequence(seed, spawn_key=(2, batch_index))``), so every other generated file stays
byte-identical whether or not the feed is written.

What the feed holds (``is_fraud`` on the transactions stays the ground truth for evaluation):

* every fraudulent transaction gets a first report; its type and delay depend on who noticed:
  ``issuer_alert`` (the issuer's own monitoring, hours to a few days), ``customer_claim`` (the
  customer reads the statement, about a week) or ``chargeback`` (the dispute process, weeks);
* a share of reported frauds gets a second, later ``chargeback`` (the dispute that follows a
  claim or alert), so one transaction can be reported more than once;
* false claims: a small share of legitimate transactions is claimed by the customer (friendly
  fraud, forgotten purchases). Investigators receive those too, so the label feed is noisier
  than ``is_fraud``, as in a bank;
* only reports received before the end of the generated window are in the feed (the extract is
  taken at ``--end-date``): recent frauds are not labelled yet;
* a few bad reports, as real feeds have: an id no transaction has (12 characters, never
  generated), a missing ``reported_at``, an unknown ``report_type`` and a report dated before its
  transaction (clock skew in the reporting system). Silver rejects or handles each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

if TYPE_CHECKING:  # simulator.output imports this module for its write hook
    from simulator.batch import GeneratedData

REPORT_TYPES: tuple[str, ...] = ("issuer_alert", "customer_claim", "chargeback")
REPORTS_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("reported_at", pa.timestamp("us")),
        ("report_type", pa.string()),
    ]
)
HOUR_US = 3_600 * 1_000_000
DAY_US = 24 * HOUR_US
# first report of a fraud: who noticed, and the median / log-sigma of the delay in days
FIRST_REPORT_SHARE = (0.30, 0.45, 0.25)
DELAY_MEDIAN_DAYS = (1.0, 6.0, 25.0)
DELAY_SIGMA = (0.8, 0.6, 0.4)
MAX_DELAY_DAYS = 120.0
FOLLOW_UP_SHARE = 0.25  # reported frauds that also get a later chargeback
FALSE_CLAIM_SHARE = 0.002  # legitimate transactions claimed as fraud by the customer
BAD_REPORT_SHARE = 0.002  # per kind of bad report, at least one each when there are reports
BAD_KINDS: tuple[str, ...] = (
    "unknown_transaction_id",
    "missing_reported_at",
    "unknown_report_type",
    "reported_before_transaction",
)


@dataclass(frozen=True)
class BatchColumns:
    """The coded transaction columns the feed needs (one entry per row of the batch file)."""

    transaction_number: NDArray[np.int64]  # -1 = null id
    transaction_us: NDArray[np.int64]  # microseconds since the epoch, UTC
    is_fraud: NDArray[np.bool_]
    is_clean: NDArray[np.bool_]  # False for the injected dirty rows


def _delays_us(rng: np.random.Generator, kind: NDArray[np.int64]) -> NDArray[np.int64]:
    median = np.asarray(DELAY_MEDIAN_DAYS)[kind]
    sigma = np.asarray(DELAY_SIGMA)[kind]
    days = np.minimum(median * np.exp(sigma * rng.standard_normal(kind.size)), MAX_DELAY_DAYS)
    return (days * DAY_US).astype(np.int64) + HOUR_US // 4  # never instantaneous


def fraud_reports(cols: BatchColumns, seed: int, batch_index: int, end_us: int) -> pa.Table:
    """The fraud reports received by ``end_us`` for one batch (see the module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, batch_index)))
    valid = cols.is_clean & (cols.transaction_number >= 0)
    fraud = np.flatnonzero(valid & cols.is_fraud)
    legit = np.flatnonzero(valid & ~cols.is_fraud)

    kind = rng.choice(len(REPORT_TYPES), size=fraud.size, p=FIRST_REPORT_SHARE)
    first_at = cols.transaction_us[fraud] + _delays_us(rng, kind)
    follow = np.flatnonzero((rng.random(fraud.size) < FOLLOW_UP_SHARE) & (kind != 2))
    follow_at = first_at[follow] + _delays_us(rng, np.full(follow.size, 2))
    claimed = legit[rng.random(legit.size) < FALSE_CLAIM_SHARE]
    claim_at = cols.transaction_us[claimed] + _delays_us(rng, np.ones(claimed.size, np.int64))

    row = np.concatenate([fraud, fraud[follow], claimed])
    number = cols.transaction_number[row]
    at = np.concatenate([first_at, follow_at, claim_at])
    rtype = np.concatenate([kind, np.full(follow.size, 2), np.ones(claimed.size, np.int64)])
    names = np.array(REPORT_TYPES, dtype=object)[rtype]
    ids = np.array([f"T{n:010d}" for n in number], dtype=object)
    received = at < end_us
    ids, at, names, row = ids[received], at[received], names[received], row[received]

    # bad reports: replace fields of a few distinct reports (first reports of frauds only)
    n_bad = max(1, round(BAD_REPORT_SHARE * ids.size)) if ids.size >= 2 * len(BAD_KINDS) else 0
    null_at = np.zeros(ids.size, dtype=bool)
    first_reports = np.arange(int(np.count_nonzero(received[: fraud.size])))
    if n_bad and first_reports.size >= n_bad * len(BAD_KINDS):
        picked = rng.choice(first_reports, size=n_bad * len(BAD_KINDS), replace=False)
        unknown, missing, bad_type, early = picked.reshape(len(BAD_KINDS), n_bad)
        ids[unknown] = [f"T9{n:010d}" for n in rng.integers(0, 10**10, n_bad)]
        null_at[missing] = True
        names[bad_type] = "fraud_suspected"
        at[early] = cols.transaction_us[row[early]] - rng.integers(HOUR_US, 2 * DAY_US, n_bad)

    # delivery order: by time received (missing times last), then id
    order = np.lexsort((ids.astype(str), np.where(null_at, np.iinfo(np.int64).max, at)))
    return pa.table(
        [
            pa.array(ids[order], pa.string()),
            pa.array(at[order], type=pa.timestamp("us"), mask=null_at[order]),
            pa.array(names[order], pa.string()),
        ],
        schema=REPORTS_SCHEMA,
    )


def for_batch(data: GeneratedData) -> pa.Table:
    """The reports of one generated batch (the ``simulator.output`` write hook)."""
    cols = data.transactions
    is_clean = np.ones(cols.n_rows, dtype=bool)
    is_clean[[r["row_number"] for r in data.batch["dirty_rows"]["rows"]]] = False
    end_us = (data.config.end_date - date(1970, 1, 1)).days * DAY_US
    batch = BatchColumns(cols.tid, cols.ts_us, cols.fraud, is_clean)
    return fraud_reports(batch, data.config.seed, data.batch_index, end_us)
